"""The one exactly-once path: a command opens the transaction, claims its operation's keys inside it, runs
the use-case (which writes its rows, its ledger posting and its outbox rows through the one writer),
stores its answer under the keys and commits. A crash or an error at any point leaves nothing or
everything, the keys included: a key is never recorded without its effect, nor an effect without its key.

Keys:
- an operation with a row of its own is claimed by that row's unique index, written by the same
  transaction: a sale by its receipt (store, till, business date, receipt number), a return by the
  returning till's return_id, a cancel by the sale's status under the sale's row lock;
- a key with no row of its own is claimed here, in `idempotency_record`: the till's `Idempotency-Key`
  (scope `till:<id>`), an adjustment's operation id (scope `adjustment`).
A second request with a claimed key waits for the first one's transaction (the unique index), then replays
its stored answer, or is refused with `idempotency-conflict` when its body differs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec

from loyalty_core import db
from loyalty_core.errors import IdempotencyConflict
from loyalty_core.piccolo_conf import DB

T = TypeVar("T")


class Key(msgspec.Struct, frozen=True):
    scope: str  # e.g. "till:17", "adjustment"
    key: str
    digest: str  # the request's hash: the same key with another body is a conflict
    conflict: str = "This Idempotency-Key was used with a different body"


async def claim(key: Key, out_type: type[T]) -> T | None:
    """Claim `key` in the caller's transaction; None when it is ours now, else the first answer under it."""
    rows = await db.fetch(
        "INSERT INTO idempotency_record (scope, key, request_hash, response, status_code, created_at) "
        "VALUES ($1, $2, $3, '{}', 200, now()) ON CONFLICT (scope, key) DO NOTHING RETURNING id",
        key.scope, key.key, key.digest,
    )
    if rows:
        return None
    found = await db.fetch(
        "SELECT request_hash, response FROM idempotency_record WHERE scope = $1 AND key = $2", key.scope, key.key
    )
    if found[0]["request_hash"] != key.digest:
        raise IdempotencyConflict(key.conflict)
    return msgspec.json.decode(found[0]["response"], type=out_type)


async def store(keys: Sequence[Key], answer: object) -> None:
    """The answer replayed under `keys`, written in the transaction that claimed them."""
    if keys:
        await db.fetch(
            "UPDATE idempotency_record r SET response = $3::jsonb FROM unnest($1::varchar[], $2::varchar[]) AS k(scope, key) "
            "WHERE r.scope = k.scope AND r.key = k.key",
            [k.scope for k in keys], [k.key for k in keys], msgspec.json.encode(answer).decode(),
        )


async def execute(keys: Sequence[Key], run: Callable[[], Awaitable[T]], out_type: type[T]) -> T:
    """One transaction: claim `keys` (a claimed one replays its answer), run the use-case, store its answer."""
    async with DB.transaction():
        for key in keys:
            first = await claim(key, out_type)
            if first is not None:
                return first
        answer = await run()
        await store(keys, answer)
        return answer
