"""`make bench-import`: generate a dirty legacy export (tests/imports/generator.py) and time `kopilka import` on it.

    python bench/import_bench.py --members 100000

Creates a program of its own in the database (KOPILKA_DATABASE_URL, else the embedded one), then runs the real CLI:
the dry run (read, validate, COPY into staging, the database checks), then --apply (the set-based phases), then
`kopilka ledger verify`. Prints wall times, rows per second and the CLI's peak memory (ru_maxrss of the children).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _kopilka() -> list[str]:
    script = Path(sys.executable).with_name("kopilka")
    return [str(script)] if script.exists() else [sys.executable, "-m", "backend.cli"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--history", type=float, default=0, help="purchase history: receipts per member on average")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    from backend.cli import _services
    from loyalty_core import db
    from loyalty_core.setup import entities as setup
    from tests.factories import basic_rules
    from tests.imports.generator import generate

    db_url, valkey_url, _ = _services()
    env = dict(os.environ, KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url)
    code = f"bench-import-{secrets.token_hex(3)}"

    async def program() -> None:
        db.configure(db_url, 1, 2)
        async with db.pool():
            await setup.create_program(code, "Import bench", basic_rules())

    subprocess.run([*_kopilka(), "migrate"], env=env, check=True, capture_output=True)
    asyncio.run(program())
    work = Path(tempfile.mkdtemp(prefix="kopilka-import-bench-"))
    t0 = time.perf_counter()
    exp = generate(work / "export", args.members, seed=7, tag=secrets.token_hex(2), history=args.history)
    t_gen = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (work / "export").iterdir())
    rows = sum(sum(1 for _ in p.open("rb")) - 1 for p in (work / "export").glob("*.csv"))
    base = [*_kopilka(), "import", str(work / "export"), "--program", code, "--mapping", str(work / "export" / "mapping.toml"),
            "--report-dir", str(work / "reports")]
    timings: dict[str, float] = {}
    for label, extra in (("dry run (read, validate, COPY, checks)", []), ("apply (set-based phases)", ["--apply"])):
        t0 = time.perf_counter()
        r = subprocess.run([*base, *extra], env=env, capture_output=True, text=True)
        timings[label] = time.perf_counter() - t0
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
            return 1
        verdict = [x for x in r.stdout.splitlines() if x.startswith("**")]
        phases = [x.strip() for x in r.stderr.splitlines() if x.startswith("import:")]
    t0 = time.perf_counter()
    v = subprocess.run([*_kopilka(), "ledger", "verify"], env=env, capture_output=True, text=True)
    timings["ledger verify (whole database)"] = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"export: {args.members} member rows ({exp.merged} duplicates merged), {exp.cards} cards, "
          f"{exp.receipts} history receipts, {rows} rows in all, "
          f"{size / 1e6:.1f} MB cp1251; generated in {t_gen:.1f} s")
    total = 0.0
    for label, seconds in timings.items():
        print(f"{label}: {seconds:.1f} s" + (f" ({rows / seconds:,.0f} rows/s)" if "verify" not in label else ""))
        if "verify" not in label:
            total += seconds
    print("apply phases: " + "; ".join(x.removeprefix("import: ") for x in phases))
    print(f"members + cards + lots + tiers, dry run and apply: {total:.1f} s; peak memory of a CLI run: {peak_mb:.0f} MB")
    print(f"reconciliation: {verdict[-1] if verdict else '?'}; ledger verify: {v.stdout.strip().splitlines()[-1]}")
    if not args.keep:
        import shutil

        shutil.rmtree(work / "export")
    print(f"report: {work / 'reports'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
