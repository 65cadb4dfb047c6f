"""The back office's member search: pg_trgm and trigram indexes for typo-tolerant names and e-mails; audit filters."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T15:34:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "back office: pg_trgm, trigram search indexes, audit and approval indexes"

FORWARDS = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # a misspelt name finds the customer (word similarity, loyalty_core/members/search.py) through this
    "CREATE INDEX customer_name_trgm_idx ON customer USING gin (lower(name) gin_trgm_ops)",
    # the auditor's filters: newest first, by actor, by subject
    "CREATE INDEX audit_event_created_idx ON audit_event (created_at DESC, id DESC)",
    "CREATE INDEX audit_event_actor_idx ON audit_event (actor, created_at DESC)",
    "CREATE INDEX pending_approval_open_idx ON pending_approval (requested_at) WHERE status = 'pending'",
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
