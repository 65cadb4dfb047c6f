from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean, Timestamptz, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-29T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "card: confirm_needed, linked_via, linked_at (a card linked by someone else pays only once the member confirms it)"


def _params(**extra):
    return {"null": False, "primary_key": False, "unique": False, "index": False, "index_method": IndexMethod.btree,
            "choices": None, "db_column_name": None, "secret": False, **extra}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Card", tablename="card", column_name="confirm_needed", db_column_name="confirm_needed",
        column_class_name="Boolean", column_class=Boolean, params=_params(default=False), schema=None,
    )
    manager.add_column(
        table_class_name="Card", tablename="card", column_name="linked_via", db_column_name="linked_via",
        column_class_name="Varchar", column_class=Varchar, params=_params(default="", length=100), schema=None,
    )
    manager.add_column(
        table_class_name="Card", tablename="card", column_name="linked_at", db_column_name="linked_at",
        column_class_name="Timestamptz", column_class=Timestamptz, params=_params(default=None, null=True), schema=None,
    )
    return manager
