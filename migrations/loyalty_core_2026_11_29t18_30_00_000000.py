"""States as Enums in the database too: a CHECK per state column (the values of loyalty_core.tables' Enums).

NOT VALID then VALIDATE: the constraint is added without holding an exclusive lock while existing rows are checked.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T18:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "state columns checked against their enums"

_CHECKS = {
    ("customer", "status"): ("active", "deleted"),
    ("membership", "status"): ("anonymous", "pending", "active", "closed"),
    ("card", "status"): ("emitted", "active", "blocked", "replaced"),
    ("coupon", "status"): ("active", "used", "cancelled"),
    ("point_lot", "state"): ("pending", "active", "expired", "spent"),
    ("sale", "status"): ("confirmed", "cancelled"),
}

FORWARDS = []
for (_table, _column), _values in _CHECKS.items():
    _name = f"{_table}_{_column}_allowed"
    _allowed = ", ".join(f"'{v}'" for v in _values)
    FORWARDS.append(f"ALTER TABLE {_table} ADD CONSTRAINT {_name} CHECK ({_column} IN ({_allowed})) NOT VALID")
    FORWARDS.append(f"ALTER TABLE {_table} VALIDATE CONSTRAINT {_name}")


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
