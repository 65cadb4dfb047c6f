"""Facts a till's request needs that change rarely, kept in each worker process: the till key's principal
(store, till, the program it prices by) and the catalog facts of products.

Three ways an entry goes away, so a change reaches every worker within a second and a lost message cannot
serve stale facts for long:

1. **A message.** Whatever changes a till key, a till, a store, a program or the catalog publishes the tags
   it touched after its commit (`backend.cache_bus`); every worker's subscriber calls `drop(tags)`.
2. **The version.** A trigger on each of those tables bumps `cache_version` in the same transaction as the
   change (migration `2026-11-29T17:40`), and the till's hot statements read it as one more column
   (`VERSION_COLUMN`: the confirm's ledger read, the sale's write). `observe(version)` drops everything when
   the database is ahead of what the cache holds; a read that brings an entry also brings the version it was
   read at, and an entry older than the cache is not kept.
3. **Age.** An entry is read again after `MAX_AGE` seconds whatever happened (a worker that only answers
   requests whose statements carry no version).

No I/O here but `changed` (one read of the version): the callers read and `put`; the bus and the statements call
`drop` and `observe`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any

import msgspec

from loyalty_core import db

log = logging.getLogger("kopilka.cache")

# one more column of a statement that already runs: the version of the cached facts at its snapshot
VERSION_COLUMN = "(SELECT version FROM cache_version WHERE id = 1)"

MAX_AGE = 60.0  # seconds: the last resort when both the message and the version were missed
MAX_ENTRIES = 50_000  # per section: a till sending made-up SKUs must not grow a worker's memory without end
# how long a message's version is waited for: entries read before the change committed are not kept meanwhile
EXPECT_FOR = 10.0

ALL = "*"  # the tag that drops every entry

MISSING: Any = object()


class _Entry:
    __slots__ = ("value", "tags", "born")

    def __init__(self, value: object, tags: frozenset[str], born: float) -> None:
        self.value, self.tags, self.born = value, tags, born


class FactsCache:
    """Sections of entries (`"till"` by key hash, `"product"` by SKU), each tagged with what invalidates it
    (`"till_key:7"`, `"store:3"`, `"sku:A-1"`, `"catalog"`, ...)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_age: float = MAX_AGE) -> None:
        self._clock, self._max_age = clock, max_age
        self._sections: dict[str, dict[Hashable, _Entry]] = {}
        self.version: int | None = None  # the cache_version every entry held was read at (None: nothing read yet)
        # bumped by every drop: a read that began before a drop does not put back what the drop removed
        self.generation = 0
        self.drops = 0  # how many times entries were dropped (by message, version or hand): for tests and metrics
        # serving from the cache only while a subscriber hears the invalidations (`backend.cache_bus`); off, every
        # read goes to the database (a process without the app: the CLI, tests of the core)
        self.live = False
        # (version, until): a change announced at `version` may not have committed yet (its message is sent from
        # inside its transaction): nothing read at an older version is kept until it is seen, or until `until`
        self._expected: tuple[int, float] | None = None

    def get(self, section: str, key: Hashable) -> Any:
        if not self.live:
            return MISSING
        entry = self._sections.get(section, {}).get(key)
        if entry is None or self._clock() - entry.born > self._max_age:
            return MISSING
        return entry.value

    def put(self, section: str, key: Hashable, value: object, tags: Iterable[str], version: int,
            generation: int) -> None:
        """Keep a value read by a statement that also read `version`, begun when the cache was at `generation`."""
        dropped_meanwhile = generation != self.generation  # a message (or another read's version) dropped entries
        self.observe(version)
        if self._expected is not None and (version >= self._expected[0] or self._clock() > self._expected[1]):
            self._expected = None
        if not self.live or dropped_meanwhile or version != self.version or self._expected is not None:
            return  # read before a newer version or a drop: good for the request that read it, not for keeping
        entries = self._sections.setdefault(section, {})
        if len(entries) >= MAX_ENTRIES:
            entries.clear()
        entries[key] = _Entry(value, frozenset(tags), self._clock())

    def observe(self, version: int | None) -> bool:
        """A statement read `version`: when the database is ahead of the cache, drop everything. True if dropped."""
        if version is None or (self.version is not None and version <= self.version):
            return False
        stale = self.version is not None
        if stale:
            self._drop_all()
        self.version = version
        return stale

    def drop(self, tags: Iterable[str], version: int | None = None) -> None:
        """Drop the entries carrying any of `tags` (`ALL`: every entry). `version`: the change's own cache_version;
        until a statement reads it, nothing read before it is kept (the change may not have committed yet)."""
        if version is not None and (self.version is None or version > self.version):
            self._expected = (max(version, self._expected[0] if self._expected else 0), self._clock() + EXPECT_FOR)
        tags = set(tags)
        if ALL in tags:
            self._drop_all()
            return
        for entries in self._sections.values():
            for key in [k for k, e in entries.items() if e.tags & tags]:
                del entries[key]
        self.generation += 1
        self.drops += 1

    def forget_version(self) -> None:
        """Messages may have been missed (the subscriber was away): drop everything and trust no version."""
        self._drop_all()
        self.version = None

    def _drop_all(self) -> None:
        for entries in self._sections.values():
            entries.clear()
        self.generation += 1
        self.drops += 1

    def size(self, section: str) -> int:
        return len(self._sections.get(section, {}))


# the worker's cache: one per process (each `serve --workers` process has its own, kept fresh by its subscriber)
facts = FactsCache()


def till_tags(key_id: int, till_id: int, store_id: int) -> list[str]:
    return [f"till_key:{key_id}", f"till:{till_id}", f"store:{store_id}", "program"]


def product_tags(sku: str) -> list[str]:
    return [f"sku:{sku}", "catalog"]


class FactsChanged(Exception):
    """A statement of this request read a newer `cache_version` than the facts the request started with (the
    till's principal, the catalog): the use-case's transaction is rolled back and the till layer authenticates
    again (the key may be revoked now) and runs the request once more. Raised only after a lost message."""

    def __init__(self, version: int) -> None:
        super().__init__(f"cached facts older than cache_version {version}")
        self.version = version


def check(version: int | None, used: int | None = None) -> None:
    """A statement read `version`: the cache drops what is older; FactsChanged when the request's own facts were
    read at an older `used` (None: the caller holds none, it only lets the cache see the version)."""
    if version is None:
        return
    facts.observe(version)
    if used is not None and version > used:
        raise FactsChanged(version)


Publisher = Callable[["Invalidation"], Awaitable[None]]
_publishers: list[Publisher] = []


def set_publisher(publisher: Publisher | None) -> None:
    """Where `changed` sends invalidations besides this process: the app's lifespan and the CLI set it."""
    _publishers[:] = [publisher] if publisher is not None else []


class Invalidation(msgspec.Struct, frozen=True):
    """A message on the bus: the tags of what changed and the change's cache_version."""

    tags: list[str]
    version: int | None = None


async def changed(tags: Iterable[str]) -> None:
    """After a change of cached facts (best after its commit): drop them here at once and tell every other worker.

    The database's trigger bumped `cache_version` in the change's transaction; the message carries that version
    (read here, in the transaction if one is still open), so a worker that hears it before the change commits keeps
    nothing read before it."""
    tags = sorted(set(tags))
    row = await db.fetchrow(f"SELECT {VERSION_COLUMN} AS version")
    message = Invalidation(tags=tags, version=row["version"] if row is not None else None)
    facts.drop(message.tags, message.version)
    for publish in _publishers:
        try:
            await publish(message)
        except Exception:  # noqa: BLE001 - committed already; the version check catches a lost message
            log.warning("cache invalidation %s not published", tags, exc_info=True)
