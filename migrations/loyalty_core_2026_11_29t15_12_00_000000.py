"""Drop the foreign keys whose both rows one statement writes: a sale line and its sale (the confirm's statement),
a ledger entry and its lot (the ledger writer's statement). `kopilka ledger verify` checks the same thing
("every sale line belongs to a sale", "every ledger entry's lot is a lot of its account"); nothing deletes
sales or lots, so no cascade is lost. Raw SQL, hence its own file."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T15:12:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "drop sale_line -> sale and ledger_entry -> point_lot foreign keys (checked by ledger verify)"

FORWARDS = [
    "ALTER TABLE sale_line DROP CONSTRAINT IF EXISTS sale_line_sale_fkey",
    "ALTER TABLE ledger_entry DROP CONSTRAINT IF EXISTS ledger_entry_lot_fkey",
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
