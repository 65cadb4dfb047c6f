"""Indexes for the push outbox and the PassKit web service (raw SQL runs before a migration's tables, hence its own file)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-23T10:23:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "push delivery and passkit indexes"

FORWARDS = [
    # a retried message skips devices it already reached
    "CREATE UNIQUE INDEX notification_delivery_target_uq ON notification_delivery (notification, target)",
    # points_expiring and similar messages are queued once per cause
    "CREATE UNIQUE INDEX notification_dedupe_uq ON notification (dedupe_key) WHERE dedupe_key IS NOT NULL",
    # claimed messages whose worker died are reclaimed when the lease (next_attempt_at) runs out
    "CREATE INDEX notification_lease_idx ON notification (next_attempt_at, id) WHERE status = 'sending'",
    # PassKit "which of my passes changed": by device
    "CREATE INDEX pass_registration_device_idx ON pass_registration (device_library_id)",
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
