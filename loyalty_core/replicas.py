"""Read replicas: where a read that only shows things runs (docs/scaling.md, "Read replicas").

The till and every write use the primary. A use-case that only shows things (the personal account's pages,
shopper history, the operator's member search and history, reports) wraps its reads in `async with reads():`;
inside it, a statement outside a transaction runs on a replica when one is healthy, no more than
`max_lag` seconds behind, and has replayed the last write of whoever is asking (read-your-writes). Otherwise
the same statements run on the primary, with no error: a replica is an optimisation, never a dependency.

Read-your-writes, by LSN: after a request that wrote, the primary's WAL position (`pg_current_wal_lsn()`) is
stored in Valkey under the actor who made the request (the shopper, the staff member, the operator key), for
`lsn_ttl` seconds. A later read by that actor goes to a replica only when the replica's replay position
(`pg_last_wal_replay_lsn()`) has reached it. Chosen over "stick to the primary for N seconds after a write"
because it is exact both ways: the actor goes back to the replica as soon as it has replayed their write
(milliseconds, usually), and never reads a stale page when a replica is slower than any fixed window would
assume. Its cost is one Valkey GET per read scope and one `SELECT pg_current_wal_lsn()` + SET per writing
request of a known actor; the till records nothing (its reads are on the primary anyway).

Within one request, once anything was written (a transaction was opened, even inside a read scope: showing
the history first applies points that fell due), every later read of the request runs on the primary.

Health: each replica is checked at most every `check_every` seconds per process (replay LSN against the
primary's current LSN, sampled at each check: a replica's lag is how long ago the oldest primary position it
has not replayed was seen). A replica that does not answer, is not in recovery (promoted, or misconfigured),
or lags more than `max_lag` is skipped until a later check finds it well. A statement that fails on a replica
for a connection or recovery-conflict reason marks it down and runs again on the primary (reads are safe to
repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

import asyncpg

log = logging.getLogger("kopilka.replicas")
P = ParamSpec("P")
T = TypeVar("T")

# what a replica statement may fail with that says "this replica, not this query": run it on the primary
_REPLICA_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.SerializationError,  # canceled on a standby: conflict with recovery
    asyncpg.exceptions.TooManyConnectionsError,
)

_LSN = "(pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
_STANDBY_STATE = ("SELECT pg_is_in_recovery() AS standby, "
                  "(pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed")


class LsnStore(Protocol):
    """Where the primary's position after an actor's last write is kept (Valkey in production)."""

    async def get(self, actor: str) -> int | None: ...

    async def put(self, actor: str, lsn: int, ttl_seconds: int) -> None: ...


def describe(url: str) -> str:
    """host:port/db of a URL, without credentials (for logs and metrics)."""
    parts = urlsplit(url)
    host = parts.hostname or dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("host", "")
    return f"{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"


class Replica:
    def __init__(self, url: str) -> None:
        self.url, self.name = url, describe(url)
        self.pool: asyncpg.Pool | None = None
        self.up = False
        self.lag = float("inf")  # seconds behind the primary, as of the last check
        self.replayed = 0  # its replay LSN at the last check
        self.why = "not checked yet"
        self._behind: deque[tuple[float, int]] = deque(maxlen=4096)  # (when, primary LSN) not replayed yet

    def observe(self, now: float, primary_lsn: int, replayed: int) -> None:
        self._behind.append((now, primary_lsn))
        while self._behind and self._behind[0][1] <= replayed:
            self._behind.popleft()
        self.replayed, self.up, self.why = replayed, True, "ok"
        self.lag = now - self._behind[0][0] if self._behind else 0.0

    def down(self, why: str) -> None:
        if self.up or self.why != why:
            log.warning("replica %s skipped: %s", self.name, why)
        self.up, self.why, self.lag = False, why, float("inf")


class ReplicaSet:
    """The reader pools, their health, and the choice of a replica for one read scope."""

    def __init__(self, urls: Sequence[str], *, max_lag: float = 5.0, check_every: float = 1.0,
                 check_timeout: float = 1.0, pool_max: int = 10, lsn_ttl: int = 60,
                 lsn_store: LsnStore | None = None) -> None:
        self.replicas = [Replica(u) for u in urls]
        self.max_lag, self.check_every, self.check_timeout = max_lag, check_every, check_timeout
        self.pool_max, self.lsn_ttl, self.lsn_store = pool_max, lsn_ttl, lsn_store
        self.checked_at = float("-inf")
        self._lock = asyncio.Lock()
        self._turn = itertools.count()
        self._primary_lsn: Callable[[], Awaitable[int]] | None = None

    async def start(self, primary_lsn: Callable[[], Awaitable[int]]) -> None:
        """Pools open lazily (min_size 0): a replica that is down at start costs nothing but its check."""
        from loyalty_core.db import _PooledConnection

        self._primary_lsn = primary_lsn
        for replica in self.replicas:
            replica.pool = await asyncpg.create_pool(
                replica.url, min_size=0, max_size=self.pool_max, connection_class=_PooledConnection,
                timeout=self.check_timeout, max_inactive_connection_lifetime=60)

    async def close(self) -> None:
        for replica in self.replicas:
            if replica.pool is not None:
                pool, replica.pool = replica.pool, None
                try:
                    await asyncio.wait_for(pool.close(), 5)
                except (TimeoutError, *_REPLICA_FAILURES):
                    pool.terminate()

    async def check(self, force: bool = False) -> None:
        """Refresh every replica's health when the last check is older than `check_every`."""
        if not force and time.monotonic() - self.checked_at < self.check_every:
            return
        async with self._lock:
            if not force and time.monotonic() - self.checked_at < self.check_every:
                return  # another task checked while this one waited
            try:
                primary_lsn = await self._primary_lsn() if self._primary_lsn else 0
            except _REPLICA_FAILURES + (asyncpg.PostgresError,):
                primary_lsn = None  # the primary is in trouble: its own errors will say so
            await asyncio.gather(*(self._check_one(r, primary_lsn) for r in self.replicas))
            self.checked_at = time.monotonic()

    async def _check_one(self, replica: Replica, primary_lsn: int | None) -> None:
        if replica.pool is None:
            replica.down("not started")
            return
        try:
            async with asyncio.timeout(self.check_timeout):
                row = await replica.pool.fetchrow(_STANDBY_STATE)
        except (*_REPLICA_FAILURES, asyncpg.PostgresError) as exc:
            replica.down(f"does not answer ({type(exc).__name__}: {exc})".strip())
            return
        if not row["standby"]:
            replica.down("is not in recovery (promoted, or not a replica)")
        elif row["replayed"] is None:
            replica.down("has not replayed anything yet")
        elif primary_lsn is None:
            replica.down("the primary's position is unknown")
        else:
            replica.observe(time.monotonic(), primary_lsn, row["replayed"])
            if replica.lag > self.max_lag:
                replica.down(f"lags {replica.lag:.1f} s (limit {self.max_lag:g} s)")

    def healthy(self) -> list[Replica]:
        return [r for r in self.replicas if r.up and r.lag <= self.max_lag]

    def next_turn(self) -> int:
        return next(self._turn)


# --- per request and per read scope ------------------------------------------------------------


class RequestState:
    """What one request did: whether it wrote, and who asks (`actor`, e.g. "shopper:42", found lazily: the
    surfaces' guards name them after the request started)."""

    __slots__ = ("_actor_of", "needed", "wrote")

    def __init__(self, actor_of: Callable[[], str | None] | None = None) -> None:
        self._actor_of = actor_of
        self.wrote = False
        self.needed: int | None = None  # the actor's remembered position, read once per request

    @property
    def actor(self) -> str | None:
        return self._actor_of() if self._actor_of is not None else None


class ReadScope:
    """The reads of one use-case: on `replica` through `connection`, or on the primary (both None)."""

    __slots__ = ("replica", "connection", "reason")

    def __init__(self, reason: str) -> None:
        self.replica: Replica | None = None
        self.connection: asyncpg.Connection | None = None
        self.reason = reason

    @property
    def target(self) -> str:
        return "replica" if self.connection is not None else "primary"

    async def fetch(self, query: str, args: Sequence[Any], on_primary: Callable[[], Awaitable[Any]]) -> Any:
        """Run a read on the replica; when the replica fails under it, mark it down and run it on the primary."""
        connection, replica = self.connection, self.replica
        if connection is None or replica is None:
            return await on_primary()
        try:
            return await connection.fetch(query, *args)
        except _REPLICA_FAILURES as exc:
            replica.down(f"failed a read ({type(exc).__name__})")
            self.to_primary("the replica failed")
            return await on_primary()
        except asyncpg.exceptions.ReadOnlySQLTransactionError:
            # a write outside a transaction in a use-case marked @reading: a bug, but not the shopper's problem
            log.error("replicas: a write ran inside a read scope; sent to the primary: %.200s", query)
            self.to_primary("a write inside a read scope")
            return await on_primary()

    def to_primary(self, reason: str) -> None:
        """The rest of this scope reads from the primary (the connection goes back at the scope's end)."""
        if self.connection is not None:
            self.connection, self.reason = None, reason


_replicas: ReplicaSet | None = None
_request: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar("kopilka_request", default=None)
_scope: contextvars.ContextVar[ReadScope | None] = contextvars.ContextVar("kopilka_read_scope", default=None)
_counter: Callable[[str, str], None] = lambda target, reason: None  # noqa: E731 (set by the app's metrics)


def configure(replica_set: ReplicaSet | None, count: Callable[[str, str], None] | None = None) -> None:
    global _replicas, _counter
    _replicas = replica_set
    if count is not None:
        _counter = count


def replica_set() -> ReplicaSet | None:
    return _replicas


@contextlib.contextmanager
def request(actor_of: Callable[[], str | None] | None = None) -> Iterator[RequestState]:
    """One request's state (backend/read_replicas.ReadRouting opens it around every request)."""
    state = RequestState(actor_of)
    token = _request.set(state)
    try:
        yield state
    finally:
        _request.reset(token)


def wrote() -> None:
    """Something is being written: the rest of the request reads from the primary.

    Called for every transaction opened (loyalty_core.piccolo_conf.RoutingEngine.transaction).
    """
    state = _request.get()
    if state is not None:
        state.wrote = True
    scope = _scope.get()
    if scope is not None:
        scope.to_primary("the request wrote")


def current_scope() -> ReadScope | None:
    return _scope.get()


@contextlib.asynccontextmanager
async def reads() -> AsyncIterator[ReadScope]:
    """The reads inside run on a replica when one may serve them (see the module's docstring)."""
    if _scope.get() is not None:  # nested: the outer scope decides
        yield _scope.get()  # type: ignore[misc]
        return
    scope = await _open_scope()
    token = _scope.set(scope)
    connection, replica = scope.connection, scope.replica
    try:
        yield scope
    finally:
        _scope.reset(token)
        _counter(scope.target, scope.reason)
        if connection is not None and replica is not None and replica.pool is not None:
            with contextlib.suppress(*_REPLICA_FAILURES):
                await replica.pool.release(connection)


@contextlib.asynccontextmanager
async def primary(reason: str = "asked for the primary") -> AsyncIterator[ReadScope]:
    """The reads inside run on the primary, read scopes nested in it included (e.g. the live dashboard
    re-renders because the primary changed: a replica might not have the change yet)."""
    scope = ReadScope(reason)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def reading(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A read-only use-case: its body runs inside `reads()`."""

    @functools.wraps(function)
    async def read(*args: P.args, **kwargs: P.kwargs) -> T:
        async with reads():
            return await function(*args, **kwargs)

    return read


async def _open_scope() -> ReadScope:
    replicas, state = _replicas, _request.get()
    if replicas is None or not replicas.replicas:
        return ReadScope("no replicas")
    from loyalty_core.piccolo_conf import DB

    if DB.current_transaction.get() is not None:
        return ReadScope("inside a transaction")
    if state is not None and state.wrote:
        return ReadScope("the request wrote")
    await replicas.check()
    candidates = replicas.healthy()
    if not candidates:
        return ReadScope("no healthy replica")
    needed = 0
    actor = state.actor if state is not None else None
    if state is not None and state.needed is not None:
        needed = state.needed  # a page of several read use-cases asks Valkey once
    elif actor is not None and replicas.lsn_store is not None:
        try:
            needed = await replicas.lsn_store.get(actor) or 0
        except Exception as exc:  # Valkey down: we cannot know what the actor wrote, so the primary answers
            log.warning("replicas: the actor's last write is unknown (%s): reading from the primary", exc)
            return ReadScope("the actor's last write is unknown")
        if state is not None:
            state.needed = needed
    start, busy = replicas.next_turn(), False
    for replica in (candidates[(start + i) % len(candidates)] for i in range(len(candidates))):
        assert replica.pool is not None
        try:
            connection = await replica.pool.acquire(timeout=replicas.check_timeout)
        except TimeoutError:
            busy = True  # its pool is busy (or it does not answer: the next check says which); try another
            continue
        except (*_REPLICA_FAILURES, asyncpg.PostgresError) as exc:
            replica.down(f"no connection ({type(exc).__name__})")
            continue
        if needed > replica.replayed:
            try:
                replica.replayed = max(replica.replayed, await connection.fetchval(
                    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint") or 0)
            except (*_REPLICA_FAILURES, asyncpg.PostgresError) as exc:
                replica.down(f"failed a read ({type(exc).__name__})")
                await _release(replica, connection)
                continue
            if needed > replica.replayed:
                await _release(replica, connection)
                continue
        scope = ReadScope("replica")
        scope.replica, scope.connection = replica, connection
        return scope
    if needed:
        return ReadScope("no replica has the actor's last write")
    return ReadScope("every replica's pool is busy" if busy else "no healthy replica")


async def _release(replica: Replica, connection: asyncpg.Connection) -> None:
    if replica.pool is not None:
        with contextlib.suppress(*_REPLICA_FAILURES):
            await replica.pool.release(connection)


async def remember_write(actor: str, primary_lsn: Callable[[], Awaitable[int]]) -> None:
    """After a request of `actor` wrote: store the primary's position, for their next reads."""
    replicas = _replicas
    if replicas is None or not replicas.replicas or replicas.lsn_store is None:
        return
    try:
        await replicas.lsn_store.put(actor, await primary_lsn(), replicas.lsn_ttl)
    except Exception as exc:  # the write itself is committed; a replica could show it late, for max_lag at most
        log.warning("replicas: could not remember %s's write: %s", actor, exc)
