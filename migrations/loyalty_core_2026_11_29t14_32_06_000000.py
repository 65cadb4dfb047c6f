"""A return is keyed by the till that took it back; receipts are found by what they print
(raw SQL runs before a migration's tables, hence its own file)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T14:32:06:000000"
VERSION = "1.38.0"
DESCRIPTION = "returns keyed by till, receipt look-up index"

FORWARDS = [
    # returns made before could only be made at the sale's own store: its till is the best we know
    "UPDATE sale_return r SET till = s.till FROM sale s WHERE s.id = r.sale AND r.till IS NULL",
    # a return_id is the returning till's own number: another till reusing it makes another return
    "DROP INDEX IF EXISTS sale_return_uq",
    "CREATE UNIQUE INDEX sale_return_uq ON sale_return (sale, till, return_id)",
    # one cancel per sale, whichever till of the store sends it
    "CREATE UNIQUE INDEX sale_return_cancel_uq ON sale_return (sale) WHERE return_id = 'cancel'",
    # a return at another store finds the sale by the printed store, business date and receipt number
    "CREATE INDEX sale_printed_receipt_idx ON sale (store, business_date, receipt_id)",
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
