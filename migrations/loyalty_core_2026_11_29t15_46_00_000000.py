"""Indexes of the import staging tables: a run's cards, lots and tiers by member (the apply's joins and checks)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T15:46:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "import staging: cards, lots and tiers by (run, member)"

FORWARDS = [
    "CREATE INDEX import_card_member_idx ON import_card (run, member)",
    "CREATE INDEX import_lot_member_idx ON import_lot (run, member)",
    "CREATE INDEX import_tier_member_idx ON import_tier (run, member)",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)
    for statement in FORWARDS:
        manager.add_raw(_raw(statement))
    return manager


def _raw(statement: str):
    from loyalty_core.piccolo_conf import DB

    async def run():
        await DB.run_ddl(statement)

    return run
