from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-23T09:44:25:031665"
VERSION = "1.38.0"
DESCRIPTION = "sale earning spend"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="loyalty_core", description=DESCRIPTION
    )

    manager.add_column(
        table_class_name="Sale",
        tablename="sale",
        column_name="earning_spend",
        db_column_name="earning_spend",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    manager.add_column(
        table_class_name="Sale",
        tablename="sale",
        column_name="returned_earning_spend",
        db_column_name="returned_earning_spend",
        column_class_name="BigInt",
        column_class=BigInt,
        params={
            "default": 0,
            "null": False,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    return manager
