"""cache_version: one number that every change of what the workers cache moves, in the change's own transaction.

The workers keep the till key's principal (till_key, till, store, program) and the catalog facts (product,
category, brand) in memory (loyalty_core/cache.py). A statement-level trigger on each of those tables bumps the
row (once per transaction) before its first such statement touches any row, so a change and its version commit
together, and two changes take the version row first (no deadlock between a change that locked catalog rows and
one waiting on the version).
The till's statements read it as one more column; a worker whose cache is older drops it.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "cache_version and the triggers that bump it"

CACHED_TABLES = ("till_key", "till", "store", "program", "product", "category", "brand")

FORWARDS = [
    "CREATE TABLE cache_version (id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1), version bigint NOT NULL)",
    "INSERT INTO cache_version (id, version) VALUES (1, 1)",
    # once per transaction (a setting local to it remembers): a catalog import of 100 000 rows, one statement each,
    # must not pile 100 000 versions of the one row up in its transaction
    """CREATE FUNCTION bump_cache_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('kopilka.cache_version_bumped', true) IS DISTINCT FROM 'yes' THEN
        UPDATE cache_version SET version = version + 1 WHERE id = 1;
        PERFORM set_config('kopilka.cache_version_bumped', 'yes', true);
    END IF;
    RETURN NULL;
END $$""",
    *(f"CREATE TRIGGER {table}_bumps_cache_version BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
      "FOR EACH STATEMENT EXECUTE FUNCTION bump_cache_version()" for table in CACHED_TABLES),
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
