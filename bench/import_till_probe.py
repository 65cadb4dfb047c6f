"""The till's confirm latency while `kopilka import --apply` runs (docs/benchmarks.md, issue 13).

    KOPILKA_DATABASE_URL=postgresql://postgres@127.0.0.1/x KOPILKA_VALKEY_URL=redis://127.0.0.1:6379/3 \\
        python bench/import_till_probe.py --members 100000

Creates a program with a store, `--tills` tills and 2 000 carded members with points (tests/factories.py), serves
the real app (uvicorn, one worker), and runs a closed loop of confirms (one connection per till, a receipt of two
lines, a fifth of them redeeming points) for `--before` seconds; then starts `kopilka import EXPORT --apply` into
the same program (an export from tests/imports/generator.py) and keeps the loop going through its staging (read,
validate, COPY, checks) and its apply phases, then `--after` seconds more. Prints p50 / p99 / max and confirms/s
for each window, and the errors (none expected).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000, help="member rows in the imported export")
    parser.add_argument("--tills", type=int, default=4, help="tills confirming at once (closed loop)")
    parser.add_argument("--before", type=float, default=30.0, help="seconds measured before the import starts")
    parser.add_argument("--after", type=float, default=15.0, help="seconds measured after the import ends")
    args = parser.parse_args()

    import httpx
    from rich.console import Console

    from backend.cli import _services
    from loyalty_core import db
    from loyalty_core.setup import entities as setup
    from tests.factories import make_member, make_shop, sale_body
    from tests.imports.generator import generate

    console = Console(stderr=True)
    db_url, valkey_url, _ = _services()
    env = dict(os.environ, KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url)
    kopilka = [sys.executable, "-m", "backend.cli"]
    subprocess.run([*kopilka, "migrate"], env=env, check=True, capture_output=True)

    db.configure(db_url, 1, 4)
    async with db.pool():
        with console.status("creating the program, tills and members ..."):
            shop = await make_shop()
            keys = [shop.key] + [(await setup.create_till_key(shop.store_code, f"till-{i}")).key
                                 for i in range(2, args.tills + 1)]
            cards = [(await make_member(shop, points=100_000)).card for _ in range(2000)]
    work = Path(tempfile.mkdtemp(prefix="kopilka-import-probe-"))
    with console.status(f"generating a {args.members}-member export ..."):
        generate(work / "export", args.members, seed=11, tag=secrets.token_hex(2))

    port = _free_port()
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=dict(env, KOPILKA_SECRET_KEY="probe-secret", KOPILKA_PORT=str(port),
                           KOPILKA_PUBLIC_URL=f"http://127.0.0.1:{port}"),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print((work / "server.log").read_text()[-3000:])
                return 1
            time.sleep(0.2)

        window = "warm-up"
        latencies: dict[str, list[float]] = {}
        spans: dict[str, list[float]] = {}
        errors: dict[str, int] = {}
        stop = asyncio.Event()

        async def till(key: str) -> None:
            rnd = random.Random(key)
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                while not stop.is_set():
                    body = sale_body(shop, [("bread", 2, 4_990), ("milk", 1, 9_990)], card=rnd.choice(cards),
                                     redeem=10 if rnd.random() < 0.2 else 0)
                    label = window
                    t0 = time.perf_counter()
                    r = await http.post("/pos/v1/sales/confirm", json=body)
                    ms = (time.perf_counter() - t0) * 1000
                    if r.status_code == 200:
                        latencies.setdefault(label, []).append(ms)
                    else:
                        errors[f"{label} {r.status_code}"] = errors.get(f"{label} {r.status_code}", 0) + 1

        def enter(name: str) -> None:
            nonlocal window
            now = time.monotonic()
            if window in spans:
                spans[window][1] = now
            window = name
            spans[name] = [now, now]
            console.print(f"{time.strftime('%H:%M:%S')} {name}")

        tasks = [asyncio.create_task(till(k)) for k in keys]
        await asyncio.sleep(5)  # warm-up: connections, caches
        enter("before the import")
        await asyncio.sleep(args.before)
        enter("import: staging (read, validate, COPY, checks)")
        proc = await asyncio.create_subprocess_exec(
            *kopilka, "import", str(work / "export"), "--program", shop.program_code, "--mapping",
            str(work / "export" / "mapping.toml"), "--report-dir", str(work / "reports"), "--apply",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        phases: list[str] = []

        async def follow() -> None:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                line = raw.decode(errors="replace").strip()
                if line.startswith("import: run"):
                    enter("import: apply (members, cards, lots, tiers, audit)")
                elif line.startswith("import:"):
                    phases.append(line.removeprefix("import: "))

        follower = asyncio.create_task(follow())
        out, _ = await asyncio.gather(proc.stdout.read(), proc.wait())  # type: ignore[union-attr]
        await follower
        verdict = [x for x in out.decode().splitlines() if x.startswith("**")]
        enter("after the import")
        await asyncio.sleep(args.after)
        enter("done")
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"{args.tills} tills, closed loop, one uvicorn worker; import of {args.members} member rows "
          f"(exit {proc.returncode}: {verdict[-1] if verdict else '?'}); phases: {'; '.join(phases)}")
    print(f"{'window':52} {'s':>6} {'confirms':>8} {'/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for name, values in latencies.items():
        if name == "warm-up":
            continue
        seconds = spans[name][1] - spans[name][0]
        print(f"{name:52} {seconds:6.1f} {len(values):8} {len(values) / seconds:6.0f} {_pct(values, 0.5):7.1f} "
              f"{_pct(values, 0.99):7.1f} {max(values):7.1f}")
    print(f"errors: {errors or 'none'}")
    return 0 if proc.returncode == 0 and not errors else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
