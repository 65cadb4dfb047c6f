"""Welcome grants once per contact, audit look-ups by subject, and when existing birth dates became known
(raw SQL runs before a migration's tables, hence its own file)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T14:22:47:000000"
VERSION = "1.38.0"
DESCRIPTION = "welcome grant and audit indexes, birth_date_set_at backfill"

FORWARDS = [
    # the welcome bonus goes once per phone / e-mail per program, ever: concurrent registrations race here
    "CREATE UNIQUE INDEX welcome_grant_contact_uq ON welcome_grant (program, contact_hash)",
    # support reads a member's audit trail newest first
    "CREATE INDEX audit_event_subject_idx ON audit_event (subject, created_at)",
    # birth dates stored before this version count as known since the customer registered
    "UPDATE customer SET birth_date_set_at = created_at WHERE birth_date IS NOT NULL AND birth_date_set_at IS NULL",
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
