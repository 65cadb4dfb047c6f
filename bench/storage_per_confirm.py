"""Disk and WAL per confirm, measured: the input of docs/scaling.md's storage figures.

Seeds the demo into the (scratch) database KOPILKA_DATABASE_URL points at, starts `kopilka serve`, sends
N confirms of 7 lines (80 % with a member's card) over HTTP and prints, per confirm, the growth of every
table with its indexes and the WAL written. Not a throughput benchmark: one till, no concurrency.

    KOPILKA_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/scratch KOPILKA_VALKEY_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/storage_per_confirm.py --count 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
KOPILKA = [str(Path(sys.executable).with_name("kopilka"))]

SIZES = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes, c.reltuples::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
"""


async def snapshot(url: str) -> tuple[dict[str, int], int]:
    conn = await asyncpg.connect(url)
    try:
        sizes = {r["name"]: r["bytes"] for r in await conn.fetch(SIZES)}
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return sizes, int(lsn)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    url = os.environ["KOPILKA_DATABASE_URL"]
    env = dict(os.environ, KOPILKA_SECRET_KEY="storage-bench", KOPILKA_DATA_DIR=tempfile.mkdtemp())
    subprocess.run([*KOPILKA, "migrate"], env=env, check=True, capture_output=True)
    seeded = subprocess.run([*KOPILKA, "demo", "--force"], env=env, check=True, capture_output=True, text=True).stdout
    key = re.search(r"demo till key\s+(tk_\S+)", seeded)[1]  # type: ignore[index]
    cards = re.findall(r"card (\d{13})", seeded)
    cards += re.findall(r"\b\d{13}\b", seeded.split("plastic cards", 1)[1].splitlines()[0])
    skus = [s.strip() for s in re.search(r"sample skus\s+(.+)", seeded)[1].split(",")]  # type: ignore[index]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*KOPILKA, "serve", "--no-demo", "--port", str(port), "--log-level", "warning"],
                              env=dict(env, KOPILKA_REQUEST_LOG="0"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        before, wal_before = asyncio.run(snapshot(url))
        rng, ok, started = random.Random(7), 0, time.monotonic()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for n in range(args.count):
                now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                lines = [{"line_no": i + 1, "sku": rng.choice(skus), "quantity": 1, "price": 5_000 + 100 * i,
                          "amount": 5_000 + 100 * i} for i in range(7)]
                sale = {"receipt_id": f"st-{started}-{n}", "business_date": now[:10], "occurred_at": now,
                        "lines": lines, "redeem_points": 0}
                if rng.random() < 0.8:
                    sale["card"] = rng.choice(cards)
                ok += http.post("/pos/v1/sales/confirm", json=sale).status_code == 200
        after, wal_after = asyncio.run(snapshot(url))
    finally:
        server.terminate()
        server.wait(30)
    grown = {t: after.get(t, 0) - before.get(t, 0) for t in after}
    print(f"{ok} confirms of 7 lines (80 % carded); per confirm:")
    for table, delta in sorted(grown.items(), key=lambda kv: -kv[1]):
        if delta > 0:
            print(f"  {table:28} {delta / ok:8.0f} bytes (table and indexes)")
    print(f"  {'all tables':28} {sum(grown.values()) / ok:8.0f} bytes")
    print(f"  {'WAL':28} {(wal_after - wal_before) / ok:8.0f} bytes")


if __name__ == "__main__":
    main()
