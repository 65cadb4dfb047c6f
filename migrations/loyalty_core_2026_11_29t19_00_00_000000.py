"""The dashboard's tier-up banner (issue 16) reads a shopper's latest `tier_changed` message on every render:
a partial index by customer and time, so it is one index probe, not a scan of the outbox. After the outbox became
partitioned (2026-11-29T18:40): an index on the partitioned parent is made on every partition, present and future."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T19:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification: the tier_changed messages by customer and time"

RAW = [
    "CREATE INDEX IF NOT EXISTS notification_tier_changed_idx ON notification (customer, created_at) "
    "WHERE kind = 'tier_changed'",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)
    for statement in RAW:
        manager.add_raw(_raw(statement))
    return manager


def _raw(statement: str):
    from loyalty_core.piccolo_conf import DB

    async def run():
        await DB.run_ddl(statement)

    return run
