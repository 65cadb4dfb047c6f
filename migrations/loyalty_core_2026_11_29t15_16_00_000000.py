"""Drop the outbox's foreign keys (notification -> customer, notification -> card): the ledger writer writes a
message in the statement that stamps the card's pass, and the checks cost a third of the confirm's write with the
others (docs/benchmarks.md). `kopilka ledger verify` checks "every message's customer and card exist"; nothing
deletes customers or cards (a shopper's deletion anonymises), so no cascade is lost. Raw SQL, its own file."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T15:16:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "drop the outbox foreign keys notification -> customer/card (checked by ledger verify)"

FORWARDS = [
    "ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_customer_fkey",
    "ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_card_fkey",
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
