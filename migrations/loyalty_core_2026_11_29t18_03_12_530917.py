"""Finance reports: the ledger's daily sums without the store (what the program-wide reports read: a few rows a day
instead of one per store), and a covering index so the per-store report reads only the index.

report_ledger_total is rolled up from report_ledger_day by the same `reports` job run (loyalty_core/reports).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T18:03:12:530917"
VERSION = "1.38.0"
DESCRIPTION = "finance reports: daily sums per program without the store"

FORWARDS = [
    "CREATE TABLE report_ledger_total (program integer NOT NULL, day date NOT NULL, kind varchar(24) NOT NULL, "
    "bucket varchar(8) NOT NULL, points bigint NOT NULL, entries integer NOT NULL, "
    "PRIMARY KEY (program, day, kind, bucket))",
    "INSERT INTO report_ledger_total (program, day, kind, bucket, points, entries) "
    "SELECT program, day, kind, bucket, SUM(points), SUM(entries) FROM report_ledger_day GROUP BY 1, 2, 3, 4",
    "CREATE INDEX report_ledger_day_cover_idx ON report_ledger_day (program, day) INCLUDE (store, kind, bucket, points)",
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
