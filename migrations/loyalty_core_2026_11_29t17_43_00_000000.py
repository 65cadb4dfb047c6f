"""The push tokens each customer registered: unique per customer and token, looked up by token (the referral check)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:43:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "push_device_seen: one row per customer and token, found by token"

FORWARDS = [
    "CREATE UNIQUE INDEX push_device_seen_key ON push_device_seen (customer, token_hash)",
    "CREATE INDEX push_device_seen_token_idx ON push_device_seen (token_hash)",
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
