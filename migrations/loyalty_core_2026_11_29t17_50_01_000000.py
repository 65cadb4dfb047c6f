"""The import's second half (issue 13), raw SQL: the indexes on the new membership columns, the staging changes of a
delta (import_member.known and changes: the member was imported before and this run updates it; import_card.card: the
card is already this member's), the purchase history's staging (import_receipt), and imported receipts exactly once
(a sale with channel 'import', unique per till and legacy receipt id)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:50:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "import: delta staging, purchase history, indexes"

RAW = [
    "CREATE UNIQUE INDEX membership_legacy_id_uq ON membership (program, legacy_id) WHERE legacy_id IS NOT NULL",
    # the tier pass finds the carries that ended since its last run
    "CREATE INDEX membership_carried_until_idx ON membership (carried_until) WHERE carried_until IS NOT NULL",
    "ALTER TABLE import_member ADD COLUMN known boolean NOT NULL DEFAULT false, ADD COLUMN changes text",
    "ALTER TABLE import_card ADD COLUMN card integer, ADD COLUMN changes text",
    """CREATE TABLE import_receipt (
        run varchar(64) NOT NULL REFERENCES import_run(id) ON DELETE CASCADE,
        file text NOT NULL, line integer NOT NULL,
        receipt varchar(64) NOT NULL, member varchar(64) NOT NULL, occurred_at timestamptz NOT NULL,
        store varchar(64) NOT NULL DEFAULT '', amount bigint NOT NULL, discount bigint NOT NULL DEFAULT 0,
        to_pay bigint NOT NULL, earning bigint NOT NULL, lines jsonb,
        rejected text, till integer, sale bigint,
        PRIMARY KEY (run, file, line))""",
    "CREATE UNIQUE INDEX import_receipt_uq ON import_receipt (run, store, receipt)",
    "CREATE UNIQUE INDEX sale_imported_receipt_uq ON sale (till, receipt_id) WHERE channel = 'import'",
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
