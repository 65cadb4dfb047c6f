"""Campaigns: one target and one message per (campaign, member); the claim's and the frequency cap's indexes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:30:08:000000"
VERSION = "1.38.0"
DESCRIPTION = "campaigns: unique per member, claim and cap indexes"

FORWARDS = [
    "ALTER TABLE campaign_member ADD CONSTRAINT campaign_member_once UNIQUE (campaign, membership)",
    "ALTER TABLE campaign_message ADD CONSTRAINT campaign_message_once UNIQUE (campaign, membership)",
    # the worker claims due messages in this order; finished ones leave the index
    "CREATE INDEX campaign_message_due_idx ON campaign_message (next_attempt_at, id) "
    "WHERE status IN ('pending', 'sending')",
    # the frequency cap counts a shopper's recent campaign messages
    "CREATE INDEX campaign_message_customer_idx ON campaign_message (customer) "
    "WHERE status IN ('sending', 'sent', 'delivered', 'unknown')",
    "CREATE INDEX campaign_message_provider_idx ON campaign_message (provider_id) WHERE provider_id <> ''",
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
