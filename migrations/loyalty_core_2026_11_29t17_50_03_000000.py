"""Staging rows of a legacy member merged into another keep that member's own legacy id (`owner`): a delta that merges
a member an earlier import kept separate is refused with all of that member's rows, not counted on the survivor."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:50:03:000000"
VERSION = "1.38.0"
DESCRIPTION = "import staging: owner of merged members' rows"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)

    async def run():
        from loyalty_core.piccolo_conf import DB

        for table in ("import_card", "import_lot", "import_tier", "import_receipt"):
            await DB.run_ddl(f"ALTER TABLE {table} ADD COLUMN owner varchar(64)")

    manager.add_raw(run)
    return manager
