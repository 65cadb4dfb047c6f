"""The import's second half (issue 13): a legacy tier's spend carried for a while, members keyed by their legacy
id (delta imports update them), and legacy purchase history (imported receipts).

- membership.carried_spend / carried_until: spend the legacy system counted, added to the tier's window while
  carried_until is in the future (the ledger writer's tier SQL, docs/import.md);
- membership.legacy_id: the member's id in the legacy system, unique per program: a later export of the same
  system finds the member by it;
- the indexes and the staging changes are raw SQL in the next migration (Piccolo runs raw steps before columns)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import BigInt, Timestamptz, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-29T17:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "import: carried tier spend, legacy ids (membership columns)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)
    for name, cls, params in (
        ("carried_spend", BigInt, {"default": 0, "null": False}),
        ("carried_until", Timestamptz, {"default": None, "null": True}),
        ("legacy_id", Varchar, {"length": 64, "default": None, "null": True}),
    ):
        manager.add_column(
            table_class_name="Membership", tablename="membership", column_name=name, db_column_name=name,
            column_class_name=cls.__name__, column_class=cls,
            params={**params, "primary_key": False, "unique": False, "index": False, "index_method": IndexMethod.btree,
                    "choices": None, "db_column_name": None, "secret": False},
            schema=None,
        )
    return manager
