"""Finance reports' aggregates (loyalty_core/reports, docs/back-office.md "Finance reports").

Derived data, kept by the `reports` job from the ledger (nothing else writes them), so they are plain tables
here rather than Piccolo tables: nothing in the domain reads or writes them through the ORM.
- report_ledger_day: the ledger's entries summed per program, day (in the program's time zone), store (the
  sale's; 0 for movements without a sale), kind and bucket.
- report_liability_aging: live lots summed per program, expiry month and state; one set of rows per refresh
  (readers take the latest `as_of`).
- report_liability_snapshot: the sum of account balances per program, read in the same snapshot.
- ledger_entry (created_at): the refresh re-sums only the days since its previous run.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:41:37:218406"
VERSION = "1.38.0"
DESCRIPTION = "finance reports: daily ledger aggregate, liability aging and snapshot"

FORWARDS = [
    "CREATE TABLE report_ledger_day (program integer NOT NULL, day date NOT NULL, store integer NOT NULL DEFAULT 0, "
    "kind varchar(24) NOT NULL, bucket varchar(8) NOT NULL, points bigint NOT NULL, entries integer NOT NULL, "
    "PRIMARY KEY (program, day, store, kind, bucket))",
    "CREATE TABLE report_liability_aging (program integer NOT NULL, expires_month date, "
    "state varchar(16) NOT NULL, points bigint NOT NULL, lots integer NOT NULL, as_of timestamptz NOT NULL)",
    "CREATE INDEX report_liability_aging_idx ON report_liability_aging (program, as_of)",
    "CREATE TABLE report_liability_snapshot (program integer PRIMARY KEY, active bigint NOT NULL, "
    "pending bigint NOT NULL, debt bigint NOT NULL, accounts integer NOT NULL, as_of timestamptz NOT NULL)",
    "CREATE INDEX ledger_entry_created_idx ON ledger_entry (created_at)",
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
