"""`Idempotency-Key`: the same key returns the first response; the same key with another body is a conflict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import msgspec

from loyalty_core.errors import IdempotencyConflict
from loyalty_core.services.sales import request_hash
from loyalty_core.tables import IdempotencyRecord

T = TypeVar("T", bound=msgspec.Struct)


async def _lookup(scope: str, key: str) -> dict | None:
    rows = await IdempotencyRecord.raw(
        "SELECT request_hash, response FROM idempotency_record WHERE scope = {} AND key = {}", scope, key
    )
    return rows[0] if rows else None


async def idempotent(
    till_id: int, key: str | None, body: msgspec.Struct, out_type: type[T], run: Callable[[], Awaitable[T]]
) -> T:
    if not key:
        return await run()
    scope, digest = f"till:{till_id}", request_hash(body)
    found = await _lookup(scope, key)
    if found is None:
        response = await run()  # itself idempotent by receipt, so a crash between the two writes is safe
        try:
            await IdempotencyRecord.raw(
                "INSERT INTO idempotency_record (scope, key, request_hash, response, status_code, created_at) "
                "VALUES ({}, {}, {}, {}, 200, now())",
                scope, key, digest, msgspec.json.encode(response).decode(),
            )
            return response
        except asyncpg.UniqueViolationError:
            found = await _lookup(scope, key)
    if found["request_hash"] != digest:  # type: ignore[index]
        raise IdempotencyConflict("This Idempotency-Key was used with a different body")
    return msgspec.json.decode(found["response"], type=out_type)  # type: ignore[index]
