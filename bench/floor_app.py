"""The floor under a confirm: what HTTP, the framework and N trivial PostgreSQL round trips cost on
this machine, with no Kopilka logic at all. An experiment for `bench/run.py`, not production code:

    .venv/bin/python bench/run.py --app bench.floor_app:create_app --no-pgbench --duration 20
    KOPILKA_FLOOR_ROUND_TRIPS=7 .venv/bin/python bench/run.py --app bench.floor_app:create_app ...

The handler takes the same till request (`POST /pos/v1/sales/confirm`, the same body decoded into the
same `SaleIn` struct), sends `KOPILKA_FLOOR_ROUND_TRIPS` (default 1) `SELECT $1::int` to PostgreSQL on a
pooled connection, and answers a small JSON document. If this cannot reach a throughput, the till
confirm, which does all of that and real work besides, cannot either.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import asyncpg
import msgspec
from litestar import Litestar, Request, get, post

from loyalty_core.till.types import SaleIn

ROUND_TRIPS = int(os.environ.get("KOPILKA_FLOOR_ROUND_TRIPS", "1"))


class FloorOut(msgspec.Struct):
    receipt_id: str
    lines: int
    round_trips: int


def create_app() -> Litestar:
    pools: list[asyncpg.Pool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        size = int(os.environ.get("KOPILKA_DB_POOL_MAX", "10"))
        pools.append(await asyncpg.create_pool(os.environ["KOPILKA_DATABASE_URL"], min_size=size, max_size=size))
        try:
            yield
        finally:
            await pools.pop().close()

    @post("/pos/v1/sales/confirm", status_code=200)
    async def confirm(request: Request, data: SaleIn) -> FloorOut:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            raise ValueError("no till key")
        async with pools[0].acquire() as connection:
            for i in range(ROUND_TRIPS):
                await connection.fetchval("SELECT $1::int", i)
        return FloorOut(receipt_id=data.receipt_id, lines=len(data.lines), round_trips=ROUND_TRIPS)

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[confirm, health], lifespan=[lifespan])
