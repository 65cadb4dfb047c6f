"""The history's receipts by member (the tiers phase and the report ask, per member, whether history came)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:50:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "import_receipt (run, member) index"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)

    async def run():
        from loyalty_core.piccolo_conf import DB

        await DB.run_ddl("CREATE INDEX import_receipt_member_idx ON import_receipt (run, member)")

    manager.add_raw(run)
    return manager
