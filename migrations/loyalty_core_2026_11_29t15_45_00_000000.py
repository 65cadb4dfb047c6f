"""Staging tables of `kopilka import` (loyalty_core/imports): a run keyed by its files' hashes, the files it read,
the rows it accepted (COPYed in, then merged into customers, cards and lots by set-based SQL) and the rows it
rejected. Raw SQL, its own file: the tables are written only by COPY and raw statements, never by the ORM."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T15:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "import staging: import_run, import_file, import_member, import_card, import_lot, import_tier, import_reject"

FORWARDS = [
    """CREATE TABLE import_run (
        id varchar(64) PRIMARY KEY,
        program integer NOT NULL REFERENCES program(id),
        status varchar(16) NOT NULL DEFAULT 'staging',
        phases text[] NOT NULL DEFAULT '{}',
        default_rule text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        staged_at timestamptz,
        applied_at timestamptz)""",
    """CREATE TABLE import_file (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        name text NOT NULL,
        kind varchar(16) NOT NULL,
        sha256 varchar(64) NOT NULL,
        encoding varchar(16) NOT NULL DEFAULT '',
        delimiter varchar(8) NOT NULL DEFAULT '',
        rows_read integer NOT NULL DEFAULT 0,
        PRIMARY KEY (run, name))""",
    """CREATE TABLE import_member (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        file text NOT NULL, line integer NOT NULL,
        legacy_id varchar(64) NOT NULL,
        phone varchar(20), email varchar(254), name varchar(200) NOT NULL DEFAULT '',
        birth_date date, gender varchar(8) NOT NULL DEFAULT '', city varchar(100) NOT NULL DEFAULT '',
        consent_sms boolean, consent_sms_at timestamptz, consent_email boolean, consent_email_at timestamptz,
        registered_at timestamptz, channel varchar(16) NOT NULL DEFAULT '',
        merged_into varchar(64),
        rejected text,
        existing_customer integer,
        customer integer, membership integer, account integer,
        PRIMARY KEY (run, legacy_id))""",
    """CREATE TABLE import_card (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        file text NOT NULL, line integer NOT NULL,
        number varchar(32) NOT NULL, member varchar(64) NOT NULL, status varchar(16) NOT NULL,
        issued_at timestamptz, blocked_at timestamptz,
        rejected text,
        PRIMARY KEY (run, number))""",
    """CREATE TABLE import_lot (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        file text NOT NULL, line integer NOT NULL,
        member varchar(64) NOT NULL, points bigint NOT NULL, state varchar(16) NOT NULL,
        activates_at timestamptz NOT NULL, expires_at timestamptz, source varchar(32) NOT NULL DEFAULT '',
        by_rule boolean NOT NULL DEFAULT false,
        rejected text, lot bigint,
        PRIMARY KEY (run, file, line))""",
    """CREATE TABLE import_tier (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        file text NOT NULL, line integer NOT NULL,
        member varchar(64) NOT NULL, tier varchar(32) NOT NULL, spend bigint NOT NULL DEFAULT 0,
        rejected text,
        PRIMARY KEY (run, file, line))""",
    """CREATE TABLE import_reject (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        file text NOT NULL, line integer NOT NULL, field text NOT NULL DEFAULT '', reason text NOT NULL,
        action varchar(16) NOT NULL DEFAULT 'rejected')""",
    "CREATE INDEX import_reject_run_idx ON import_reject (run, file, line)",
    "CREATE INDEX import_member_imported_idx ON import_member (legacy_id) WHERE membership IS NOT NULL",
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
