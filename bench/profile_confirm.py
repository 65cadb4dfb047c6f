"""Where a confirm's server CPU goes: the app called in-process (no HTTP server, no sockets to the till).

    .venv/bin/python bench/profile_confirm.py [--count 3000] [--concurrency 10] [--cprofile]

Uses the bench dataset (build it with `make bench` first). Each confirm is a real ASGI request to
`create_app()` against the real PostgreSQL; the process's CPU time per confirm is the server's Python
cost minus uvicorn's HTTP parsing. With `--cprofile` the run is profiled and the top functions printed
(cProfile inflates small functions: read it for shares, not for absolute times); the raw profile is
saved to build/bench/confirm.pstats for `python -m pstats`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench_run  # noqa: E402
from bench.load import CONFIRM, Shop  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def drive(app, keys: list[str], shop: Shop, count: int, concurrency: int, tag: str) -> dict:  # type: ignore[no-untyped-def]
    statuses: dict[int, int] = {}
    done = 0

    async def one(key: str, receipt: str) -> None:
        body, card, redeem = shop.receipt(receipt)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": CONFIRM, "raw_path": CONFIRM.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + key.encode()),
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {},
        }
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status = 0

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200 and redeem:
            shop.active[card] += redeem

    async def till(i: int) -> None:
        nonlocal done
        seq = 0
        while done < count:
            done += 1
            seq += 1
            await one(keys[i % len(keys)], f"{tag}-{i}-{seq}")

    c0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(till(i) for i in range(concurrency)))
    c1, t1 = cpu(), time.perf_counter()
    return {"statuses": statuses, "cpu_ms_per_confirm": (c1 - c0) * 1000 / count, "per_s": count / (t1 - t0)}


async def main(args: argparse.Namespace, prep: dict, db_url: str, valkey_url: str) -> None:
    os.environ.update(KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url, KOPILKA_SECRET_KEY="bench-secret",
                      KOPILKA_DATA_DIR=str(bench_run.BUILD), KOPILKA_DB_POOL_MIN="2",
                      KOPILKA_DB_POOL_MAX=str(args.concurrency + 2))

    from backend.app import create_app

    app = create_app()
    async with app.lifespan():
        shop = Shop({"products": prep["products"], "cards": prep["cards"]}, random.Random(7))
        tag = os.urandom(3).hex()
        warm = await drive(app, prep["keys"], shop, 300, args.concurrency, tag + "w")
        print("warm-up", warm)
        profiler = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU, not wall time
        if profiler:
            profiler.enable()
        result = await drive(app, prep["keys"], shop, args.count, args.concurrency, tag)
        if profiler:
            profiler.disable()
        print(f"{args.count} confirms, concurrency {args.concurrency}: {result}")
        if profiler:
            profiler.dump_stats(str(bench_run.BUILD / "confirm.pstats"))
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(45)
            stats.sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--cprofile", action="store_true")
    a = p.parse_args()
    a.tills = 10
    pg = bench_run.Postgres(f"kopilka_bench_{a.members}", fresh=False)
    try:
        valkey = bench_run.start_valkey()
        prepared = asyncio.run(bench_run.prepare(a, pg.url))
        import uvloop

        uvloop.run(main(a, prepared, pg.url, valkey))
    finally:
        pg.stop()
