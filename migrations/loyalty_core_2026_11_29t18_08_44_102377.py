"""Finance reports: the ledger's sums per store and month (the per-store report reads whole months from here and
only the partial first and last month from report_ledger_day), kept by the `reports` job (loyalty_core/reports)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T18:08:44:102377"
VERSION = "1.38.0"
DESCRIPTION = "finance reports: sums per store and month"

FORWARDS = [
    "CREATE TABLE report_ledger_store_month (program integer NOT NULL, month date NOT NULL, store integer NOT NULL, "
    "kind varchar(24) NOT NULL, bucket varchar(8) NOT NULL, points bigint NOT NULL, "
    "PRIMARY KEY (program, month, store, kind, bucket))",
    "INSERT INTO report_ledger_store_month (program, month, store, kind, bucket, points) "
    "SELECT program, date_trunc('month', day::timestamp)::date, store, kind, bucket, SUM(points) "
    "FROM report_ledger_day GROUP BY 1, 2, 3, 4, 5",
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
