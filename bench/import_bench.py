"""`make bench-import`: generate a dirty legacy export (tests/imports/generator.py) and time `kopilka import` on it.

    python bench/import_bench.py --members 100000

Creates a program of its own in the database (KOPILKA_DATABASE_URL, else the embedded one), then runs the real CLI:
the dry run (read, validate, COPY into staging, the database checks), then --apply (the set-based phases), then
`kopilka ledger verify`. Prints wall times, rows per second and each import CLI run's own peak memory (its ru_maxrss,
forked from a small launcher: the earlier figure, the children's ru_maxrss seen from here, included this process's
own RSS, inherited at the fork).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
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


# a small launcher forks the command and reports that child's own peak RSS: a child forked straight from this
# process (which holds the generated export's bookkeeping) inherits this process's RSS in its ru_maxrss
_LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, status, usage = os.wait4(p.pid, 0); "
             "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(status))")


def _measured(cmd: list[str], env: dict[str, str], work: Path) -> tuple[int, str, str, float]:
    """Run a command; (exit status, stdout, stderr, its own peak RSS in MB)."""
    rss = work / "rss.txt"
    r = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss), *cmd], env=env, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr, int(rss.read_text()) / 1024


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
    peaks: dict[str, float] = {}
    for label, extra in (("dry run (read, validate, COPY, checks)", []), ("apply (set-based phases)", ["--apply"])):
        t0 = time.perf_counter()
        code, stdout, stderr, peaks[label.split(" (")[0]] = _measured([*base, *extra], env, work)
        timings[label] = time.perf_counter() - t0
        if code != 0:
            print(stdout[-3000:], stderr[-3000:])
            return 1
        verdict = [x for x in stdout.splitlines() if x.startswith("**")]
        phases = [x.strip() for x in stderr.splitlines() if x.startswith("import:")]
    t0 = time.perf_counter()
    v = subprocess.run([*_kopilka(), "ledger", "verify"], env=env, capture_output=True, text=True)
    timings["ledger verify (whole database)"] = time.perf_counter() - t0
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
    print(f"members + cards + lots + tiers, dry run and apply: {total:.1f} s; peak memory (RSS) of the import CLI: "
          + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items()))
    print(f"reconciliation: {verdict[-1] if verdict else '?'}; ledger verify: {v.stdout.strip().splitlines()[-1]}")
    if not args.keep:
        import shutil

        shutil.rmtree(work / "export")
    print(f"report: {work / 'reports'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
