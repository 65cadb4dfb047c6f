"""Connection pool lifecycle and migrations. The pools live in the app's lifespan (one per event loop): the
primary's, and the reader pools of the read replicas when KOPILKA_DATABASE_REPLICA_URLS names some
(loyalty_core/replicas.py: which reads may go there)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import asyncpg
import msgspec

from loyalty_core import replicas
from loyalty_core.piccolo_conf import DB

T = TypeVar("T")


class _PooledConnection(asyncpg.Connection):
    """Released connections skip asyncpg's session reset (a round trip each time): nothing here sets
    session state, listens or takes advisory locks, and an open transaction is still rolled back."""

    def get_reset_query(self) -> str:
        return ""


_pool_size = {"min_size": 2, "max_size": 10}


def configure(database_url: str, pool_min: int = 2, pool_max: int = 10) -> None:
    DB.config["dsn"] = database_url
    _pool_size.update(min_size=pool_min, max_size=pool_max)


_replica_options: dict[str, object] = {"urls": ()}


def configure_replicas(urls: list[str] | tuple[str, ...], *, max_lag: float = 5.0, check_every: float = 1.0,
                       lsn_store: replicas.LsnStore | None = None, pool_max: int | None = None) -> None:
    """Read replicas for the reads that only show things; started and closed with the primary's pool."""
    # an actor's remembered position must outlive any replica that could still lack it: one lagging past
    # max_lag is skipped anyway, once a check (every check_every) has seen it
    lsn_ttl = max(60, int(3 * (max_lag + check_every)) + 1)
    _replica_options.update(urls=tuple(urls), max_lag=max_lag, check_every=check_every, lsn_store=lsn_store,
                            pool_max=pool_max or _pool_size["max_size"], lsn_ttl=lsn_ttl)


async def start_pool() -> None:
    await DB.start_connection_pool(**_pool_size, connection_class=_PooledConnection)
    options = dict(_replica_options)
    urls = options.pop("urls")
    if urls:
        replica_set = replicas.ReplicaSet(urls, **options)  # type: ignore[arg-type]
        await replica_set.start(primary_lsn)
        replicas.configure(replica_set)


async def primary_lsn() -> int:
    """The primary's current WAL position, in bytes (what a replica must have replayed to show our writes)."""
    if DB.pool is not None:
        return await DB.pool.fetchval(f"SELECT {replicas._LSN}")  # type: ignore[no-any-return]
    connection = await DB.get_new_connection()
    try:
        return await connection.fetchval(f"SELECT {replicas._LSN}")  # type: ignore[no-any-return]
    finally:
        await connection.close()


def connection() -> asyncpg.Connection:
    """The asyncpg connection of the transaction the caller opened (`async with DB.transaction()`).

    The till's hot path sends its few large statements on it directly: Piccolo's `raw` rebuilds the
    query string on every call, which costs more CPU than the statement itself.
    """
    transaction = DB.current_transaction.get()
    if transaction is None:
        raise RuntimeError("db.connection() needs an open DB.transaction()")
    return transaction.connection


async def fetch(query: str, *args: object) -> list[asyncpg.Record]:
    """A read on the caller's transaction if one is open, else on the read scope's replica (`replicas.reads()`),
    else on a pooled connection of the primary.

    For the till's hot reads, written with `$n` placeholders: no query-string building per call.
    """
    transaction = DB.current_transaction.get()
    if transaction is not None:
        return await transaction.connection.fetch(query, *args)  # type: ignore[no-any-return]
    scope = replicas.current_scope()
    if scope is not None and scope.connection is not None:
        return await scope.fetch(query, args, lambda: _fetch_on_primary(query, args))  # type: ignore[no-any-return]
    return await _fetch_on_primary(query, args)


async def _fetch_on_primary(query: str, args: tuple[object, ...]) -> list[asyncpg.Record]:
    if DB.pool is not None:
        return await DB.pool.fetch(query, *args)  # type: ignore[no-any-return]
    connection = await DB.get_new_connection()
    try:
        return await connection.fetch(query, *args)  # type: ignore[no-any-return]
    finally:
        await connection.close()


async def fetchrow(query: str, *args: object) -> asyncpg.Record | None:
    rows = await fetch(query, *args)
    return rows[0] if rows else None


async def fetchval(query: str, *args: object) -> object:
    """The first column of the first row, or None when there is no row."""
    rows = await fetch(query, *args)
    return rows[0][0] if rows else None


async def fetch_as(type_: type[T], query: str, *args: object) -> list[T]:
    """The rows decoded into `type_` (a msgspec Struct whose fields are the statement's column names)."""
    return [msgspec.convert(dict(row), type_) for row in await fetch(query, *args)]


async def fetchrow_as(type_: type[T], query: str, *args: object) -> T | None:
    row = await fetchrow(query, *args)
    return None if row is None else msgspec.convert(dict(row), type_)


async def close_pool() -> None:
    replica_set = replicas.replica_set()
    if replica_set is not None:
        replicas.configure(None)
        await replica_set.close()
    await DB.close_connection_pool()


@contextlib.asynccontextmanager
async def pool() -> AsyncIterator[None]:
    await start_pool()
    try:
        yield
    finally:
        await close_pool()


async def migrate() -> list[str]:
    """Apply every pending migration, saying on stderr how many were applied before and how many now.

    Piccolo's own report is not printed: it counts every known migration as "already complete"
    before listing the ones it has yet to run (on a new database: "7 complete", then "7 not yet run").
    """
    import io
    import sys

    from piccolo.apps.migrations.commands.forwards import ForwardsMigrationManager, run_forwards
    from piccolo.apps.migrations.tables import Migration

    app = "loyalty_core"
    manager = ForwardsMigrationManager(app_name=app)
    await manager.create_migration_table()
    known = manager.get_migration_ids(manager.get_migration_modules(manager.get_app_config(app).resolved_migrations_folder_path))
    applied = set(await Migration.get_migrations_which_ran(app_name=app))
    pending = [m for m in known if m not in applied]
    if pending:
        print(f"migrations: {len(known) - len(pending)} applied before, applying {len(pending)} ...", file=sys.stderr)
        piccolo_says = io.StringIO()
        try:
            with contextlib.redirect_stdout(piccolo_says):
                result = await run_forwards(app_name=app, migration_id="all", fake=False)
        except BaseException:
            print(piccolo_says.getvalue(), file=sys.stderr)
            raise
        if not result.success:
            raise RuntimeError(f"migrations failed: {result.message}\n{piccolo_says.getvalue()}")
        message = f"migrations: applied {len(pending)}; the schema is current ({len(known)} migrations)"
    else:
        message = f"migrations: the schema is current ({len(known)} migrations, none to apply)"
    print(message, file=sys.stderr)
    return [message]


def migrate_sync() -> None:
    asyncio.run(migrate())
