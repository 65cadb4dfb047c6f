"""Personal account speed: dashboard and purchases pages for a shopper with 1 000 purchases.

Embedded PostgreSQL + Valkey (or KOPILKA_DATABASE_URL / KOPILKA_VALKEY_URL), the real app under
uvicorn (one worker), 1 000 sales confirmed through the till API, a web sign-in by code, then
sequential GETs of each page. Reports p50/p95/max of the time the server took (Server-Timing is not
added by the app, so this is the client-observed time on localhost: an upper bound of server time).

    python bench/web_bench.py [--purchases 1000] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_MS = 50.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def prepare(base: str, purchases: int) -> tuple[httpx.AsyncClient, str]:
    from loyalty_core import db
    from tests.factories import make_shop, sale_body
    from tests.web.browser import NoJsBrowser

    async with db.pool():
        shop = await make_shop()
    browser = NoJsBrowser(base, program=shop.program_code)
    await browser.sign_in(name="Bench")
    card = re.search(r'data-testid="card-number">([^<]+)<', (await browser.open("/")).text).group(1)  # type: ignore[union-attr]
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as till:
        for i in range(purchases):
            lines = [("milk", 1 + i % 3, 9_990), ("cheese", 1, 59_900), ("bread", 2, 4_990)]
            r = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, lines, card=card), headers=shop.headers)
            r.raise_for_status()
    print(f"{purchases} purchases confirmed through the till API in {time.perf_counter() - started:.1f} s")
    return browser.http, card


async def measure(client: httpx.AsyncClient, path: str, n: int) -> list[float]:
    for _ in range(10):  # warm up: templates compiled, statements prepared
        (await client.get(path)).raise_for_status()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {r.status_code}")
    return times


async def run(args: argparse.Namespace, base: str) -> int:
    client, _card = await prepare(base, args.purchases)
    purchases_page = (await client.get("/purchases")).text
    cursor = re.search(r"\?cursor=([A-Za-z0-9_-]+)", purchases_page)
    receipt = re.search(r'href="/purchases/(\d+)"', purchases_page)
    pages = {"dashboard /": "/", "purchases /purchases": "/purchases"}
    if cursor:
        pages["purchases, page 2"] = f"/purchases?cursor={cursor.group(1)}"
    if receipt:
        pages["receipt /purchases/{id}"] = f"/purchases/{receipt.group(1)}"
    pages["points history /history"] = "/history"
    failed = 0
    print(f"\n{'page':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   (n={args.requests}, target p95 < {TARGET_MS:.0f} ms)")
    for name, path in pages.items():
        times = await measure(client, path, args.requests)
        p95 = percentile(times, 0.95)
        verdict = "ok" if p95 < TARGET_MS else "SLOW"
        if verdict == "SLOW" and path in ("/", "/purchases"):
            failed += 1
        print(f"{name:28} {percentile(times, 0.5):8.1f} {p95:8.1f} {max(times):8.1f}   {verdict}")
    await client.aclose()
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    from backend import infra
    from loyalty_core import db
    from tests import servers

    data_dir = Path(tempfile.mkdtemp(prefix="kopilka-web-bench-"))
    db_url = os.environ.get("KOPILKA_DATABASE_URL") or infra.start_embedded_postgres(data_dir, "kopilka_web_bench")
    valkey_url = os.environ.get("KOPILKA_VALKEY_URL") or infra.start_embedded_valkey(data_dir)
    db.configure(db_url, 1, 5)
    db.migrate_sync()
    port = servers.free_port()
    env = dict(os.environ, KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url, KOPILKA_DATA_DIR=str(data_dir),
               KOPILKA_PORT=str(port), KOPILKA_PUBLIC_URL=f"http://127.0.0.1:{port}", KOPILKA_SECRET_KEY="bench-secret",
               KOPILKA_DEV_MODE="1")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while servers.status(base + "/health") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        failed = asyncio.run(run(args, base))
    finally:
        servers.stop(server, 10)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
