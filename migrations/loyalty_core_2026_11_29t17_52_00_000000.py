"""Campaigns: no foreign-key triggers on the million-row inserts (campaign_member, campaign_message -> campaign).

Queueing writes one row per targeted shopper in each table in one statement; the per-row constraint triggers
were a third of its time (EXPLAIN ANALYZE, 100 000 targets). Only queueing writes these rows, from the campaign
it holds locked, so the reference cannot be wrong; the indexes stay. As for notification (2026-11-29T15:16).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:52:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "campaigns: drop the campaign foreign keys of campaign_member and campaign_message"

FORWARDS = [
    "ALTER TABLE campaign_member DROP CONSTRAINT IF EXISTS campaign_member_campaign_fkey",
    "ALTER TABLE campaign_message DROP CONSTRAINT IF EXISTS campaign_message_campaign_fkey",
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
