"""`make bench`: till confirms per second against the server as production runs it, and pgbench's TPC-B beside it.

1. PostgreSQL (embedded, data kept in build/bench/pg) and Valkey; KOPILKA_BENCH_DATABASE_URL /
   KOPILKA_BENCH_VALKEY_URL point at servers of your own instead.
2. The dataset (bench/dataset.py): loaded once per size and kept; `--fresh` reloads it. Ledger verified.
3. uvicorn --factory backend.app:create_app with several workers.
4. N tills confirm receipts from a separate load process (bench/load.py) in a closed loop, for a warm-up, then the
   measured window: the maximum rate.
5. Open loop: receipts arrive at a fixed rate (--open-rates, fractions of that maximum, 50 % and 80 % by default),
   whatever the server answers; latency counted from each arrival's scheduled time.
6. With --commit-delay: a closed-loop run per commit_delay / commit_siblings setting (ALTER SYSTEM + pg_reload_conf
   on the embedded PostgreSQL; the previous settings restored afterwards).
7. The ledger is verified again; pgbench TPC-B runs on the same server; results go to build/bench/results.json and
   build/bench/results.md (rows for docs/benchmarks.md).

Everything is bounded by timeouts and talks only to 127.0.0.1 and unix sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUILD = ROOT / "build" / "bench"
PGBENCH_DB = "kopilka_pgbench"

from bench.report import PhaseProgress, markdown, report, summarise, summarise_commit_delay, summarise_open  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, help="measured seconds (default 30; 10 with --quick)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of traffic before measuring (default 5)")
    p.add_argument("--tills", type=int, default=20, help="concurrent tills, each with its own key (default 20)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    p.add_argument("--pool-max", type=int, help="KOPILKA_DB_POOL_MAX per worker (default: tills/workers + 2)")
    p.add_argument("--members", type=int, help="members in the dataset (default 100 000; 10 000 with --quick)")
    p.add_argument("--load-procs", type=int, default=1, help="load generator processes (default 1)")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="HTTP client of the load generator")
    p.add_argument("--pgbench-duration", type=float, help="TPC-B seconds (default: the same as --duration)")
    p.add_argument("--no-pgbench", action="store_true", help="skip TPC-B")
    p.add_argument("--app", default="backend.app:create_app", help="app factory for uvicorn (experiments only)")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 000 members, 10 s")
    p.add_argument("--fresh", action="store_true", help="reload the dataset even if it is cached")
    o = p.add_argument_group("open loop (after the closed loop, on the same server)")
    o.add_argument("--open-rates", default="0.5,0.8", type=_floats,
                   help="arrival rates as fractions of the closed loop's confirms/s, comma-separated (default 0.5,0.8; '' for none)")
    o.add_argument("--open-duration", type=float, help="measured seconds of each open-loop run (default 20; 5 with --quick)")
    o.add_argument("--open-warmup", type=float, default=3.0, help="seconds at the rate before measuring (default 3)")
    o.add_argument("--open-max", type=float,
                   help="confirms/s to take as the maximum instead of the closed loop's (the same offered load for two commits)")
    o.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson", help="arrival process (default poisson)")
    o.add_argument("--open-connections", type=int, default=256,
                   help="most connections the open-loop client opens (default 256); an arrival past them waits, in its latency")
    c = p.add_argument_group("PostgreSQL's group commit (embedded PostgreSQL only)")
    c.add_argument("--commit-delay", type=_ints, default=[],
                   help="commit_delay values in microseconds, e.g. 0,100,1000: one closed-loop run (--warmup + --duration) each")
    c.add_argument("--commit-siblings", type=_ints, default=[5],
                   help="commit_siblings for those runs, comma-separated for several (default 5, PostgreSQL's default)")
    args = p.parse_args()
    args.members = args.members or (10_000 if args.quick else 100_000)
    args.duration = args.duration or (10.0 if args.quick else 30.0)
    args.open_duration = args.open_duration or (5.0 if args.quick else 20.0)
    if any(f <= 0 for f in args.open_rates) or (args.open_max is not None and args.open_max <= 0):
        p.error("open-loop rates must be positive")
    if any(v < 0 for v in args.commit_delay) or any(v < 0 for v in args.commit_siblings):
        p.error("--commit-delay and --commit-siblings take non-negative integers")
    args.pgbench_duration = args.pgbench_duration or args.duration
    args.pool_max = args.pool_max or max(4, -(-args.tills // args.workers) + 2)
    return args


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def say(message: str) -> None:
    print(message, flush=True)


# --- services ------------------------------------------------------------------------------


# What an operator sets on a database server of this size (the defaults are for a laptop). Durability is
# untouched: fsync, synchronous_commit and full_page_writes stay on. shared_buffers holds the whole
# 100 000-member dataset (about 1 GB), the WAL settings keep checkpoints out of a 30 s window.
OPERATOR_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "shared_buffers": "1536MB",
    "wal_buffers": "16MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}


class Postgres:
    """The embedded server under build/bench/pg (pg_stat_statements preloaded), or the one the env names."""

    def __init__(self, database: str, fresh: bool) -> None:
        self.external = os.environ.get("KOPILKA_BENCH_DATABASE_URL")
        if self.external:
            self.url = self.external
            if fresh:
                asyncio.run(_sql(self.url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            return
        from backend import infra

        self.url = infra.start_embedded_postgres(BUILD, "postgres")
        if wanted := self._not_set(OPERATOR_SETTINGS):
            for name, value in wanted.items():
                asyncio.run(_sql(self.url, f"ALTER SYSTEM SET {name} = '{value}'"))
            self.restart()
            if still := self._not_set(OPERATOR_SETTINGS):
                say(f"note: PostgreSQL was not restarted (another process uses {BUILD / 'pg'}?): {sorted(still)} not in force")
        if fresh:
            asyncio.run(_sql(self.url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self.url = infra.start_embedded_postgres(BUILD, database)

    def _not_set(self, settings: dict[str, str]) -> dict[str, str]:
        current = dict(asyncio.run(_sql(self.url, "SELECT name, current_setting(name) FROM pg_settings", fetch=True)))
        return {name: value for name, value in settings.items() if current.get(name) != value}

    def restart(self) -> None:
        """Stop and start through backend/infra's handles, as `kopilka serve` does, never with a pg_ctl of our own.

        A pg_ctl stop beside those handles left the library's handle on a server already stopped: at exit it saw
        the old postmaster still there (a zombie until the init process reaps it, up to a second here), ran
        pg_ctl stop again ("PID file ... does not exist") and printed "Failed to stop server, killing it instead".
        Stopping is left to the handles: the server stops when its last user leaves.
        """
        from backend import infra

        infra.stop_embedded()
        self.url = infra.start_embedded_postgres(BUILD, "postgres")

    def url_for(self, database: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))

    def stop(self) -> None:
        """Leave the embedded servers (PostgreSQL and Valkey): each stops when this was its last user."""
        if not self.external:
            from backend import infra

            infra.stop_embedded()


async def _sql(url: str, statement: str, fetch: bool = False) -> list:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if fetch:
            return [tuple(r) for r in await conn.fetch(statement)]
        await conn.execute(statement)
        return []
    finally:
        await conn.close()


def start_valkey() -> str:
    if url := os.environ.get("KOPILKA_BENCH_VALKEY_URL"):
        return url
    from backend import infra

    return infra.start_embedded_valkey(BUILD)


# --- dataset, tills --------------------------------------------------------------------------


async def prepare(args: argparse.Namespace, db_url: str) -> dict:
    from bench import dataset
    from loyalty_core import db
    from loyalty_core.ledger.verify import verify_all
    from loyalty_core.setup import entities as setup

    db.configure(db_url, 1, 4)
    await db.migrate()
    async with db.pool():
        have = await dataset.dataset_members()
        load_seconds = None
        if have is None:
            say(f"loading {args.members:,} members with history ...")
            load_seconds = await dataset.load(args.members, log=say)
            say(f"loaded in {load_seconds:.1f} s; verifying the ledger ...")
        elif have < args.members:
            raise SystemExit(f"the database holds a {have:,}-member dataset; use --fresh to reload {args.members:,}")
        else:
            say(f"dataset cached: {have:,} members (--fresh reloads)")
        t0 = time.monotonic()
        violations = await verify_all()
        verify_seconds = time.monotonic() - t0
        if violations:
            raise SystemExit("the loaded dataset breaks ledger invariants:\n" + "\n".join(map(str, violations[:20])))
        say(f"ledger invariants hold ({verify_seconds:.1f} s)")
        counts = {
            t: (await _count(t)) for t in ("customer", "membership", "card", "sale", "sale_line", "point_lot", "ledger_entry", "product", "category")
        }
        keys = [
            (await setup.create_till_key(f"bench-{i % dataset.STORES:02d}", f"till-{i:03d}")).key for i in range(args.tills)
        ]
        from loyalty_core.tables import Card

        cards = await Card.raw(
            "SELECT c.number, a.active FROM card c JOIN account a ON a.membership = c.membership "
            "WHERE c.series = 'bench' AND c.status = 'active' ORDER BY c.id"
        )
        products = await Card.raw(
            "SELECT p.sku, p.price, p.excluded, c.path[1] IN ('b-produce', 'b-meat', 'b-fish') AS weighted "
            "FROM product p JOIN category c ON c.id = p.category WHERE p.sku LIKE '46%' ORDER BY p.id"
        )
    return {
        "load_seconds": load_seconds,
        "verify_seconds": verify_seconds,
        "counts": counts,
        "keys": keys,
        "cards": [[r["number"], r["active"]] for r in cards],
        "products": [[r["sku"], r["price"], r["excluded"], r["weighted"]] for r in products],
    }


async def _count(table: str) -> int:
    from loyalty_core.tables import Card

    return (await Card.raw(f"SELECT count(*) AS n FROM {table}"))[0]["n"]


async def verify_after(db_url: str) -> list:
    from loyalty_core import db
    from loyalty_core.ledger.verify import verify_all

    db.configure(db_url, 1, 2)
    async with db.pool():
        return [str(v) for v in await verify_all()]


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args: argparse.Namespace, db_url: str, valkey_url: str) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url, KOPILKA_DATA_DIR=str(BUILD),
            KOPILKA_SECRET_KEY="bench-secret", KOPILKA_DB_POOL_MIN=str(args.pool_max), KOPILKA_DB_POOL_MAX=str(args.pool_max),
            KOPILKA_PORT=str(self.port), KOPILKA_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
        )
        self.log_path = BUILD / "server.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", args.app, "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready(args.workers)

    def _wait_ready(self, workers: int) -> None:
        import httpx
        import psutil

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                ready = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and len(psutil.Process(self.proc.pid).children()) >= workers:
                time.sleep(1.0)  # every worker through its lifespan, not just the first
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not start:\n" + self.log_path.read_text()[-3000:])

    def pids(self) -> list[int]:
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            return [parent.pid] + [c.pid for c in parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


# --- measuring ---------------------------------------------------------------------------------


def postgres_pids(db_url: str) -> list[int]:
    """The postmaster and all its children (backends, walwriter, checkpointer ...) on this machine."""
    import asyncpg
    import psutil

    async def find() -> list[int]:
        conn = await asyncpg.connect(db_url)
        try:  # ask while our backend still lives: its parent is the postmaster
            postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
            return [postmaster.pid] + [c.pid for c in postmaster.children()]
        finally:
            await conn.close()

    try:
        return asyncio.run(find())
    except (psutil.Error, OSError, AttributeError):
        return []


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


async def statement_stats(db_url: str, reset: bool) -> list[dict]:
    try:
        if reset:
            await _sql(db_url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()")
            return []
        rows = await _sql(
            db_url,
            "SELECT s.calls, s.total_exec_time, s.mean_exec_time, s.rows, s.query FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() ORDER BY s.calls DESC",
            fetch=True,
        )
    except Exception as exc:  # noqa: BLE001 - the extension is optional on a server of your own
        say(f"note: pg_stat_statements unavailable ({type(exc).__name__}); no per-statement profile")
        return []
    return [
        {"calls": r[0], "total_ms": round(r[1], 1), "mean_ms": round(r[2], 3), "rows": r[3], "query": " ".join(r[4].split())[:160]}
        for r in rows
    ]


async def wal_counters(db_url: str) -> dict:
    """WAL flushes and bytes so far, server-wide (approximate: backends report their counts about once a second)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        try:  # PostgreSQL 18: WAL I/O is in pg_stat_io ('init' is the creation of new segment files)
            fsyncs = await conn.fetchval("SELECT sum(fsyncs) FROM pg_stat_io WHERE object = 'wal' AND context = 'normal'")
        except asyncpg.PostgresError:
            try:  # 14-17
                fsyncs = await conn.fetchval("SELECT wal_sync FROM pg_stat_wal")
            except asyncpg.PostgresError:
                fsyncs = None
        try:
            wal_bytes = await conn.fetchval("SELECT wal_bytes FROM pg_stat_wal")
        except asyncpg.PostgresError:
            wal_bytes = None
        return {"fsyncs": None if fsyncs is None else int(fsyncs), "bytes": None if wal_bytes is None else int(wal_bytes)}
    finally:
        await conn.close()


def wal_delta(before: dict, after: dict) -> dict:
    return {k: None if before[k] is None or after[k] is None else after[k] - before[k] for k in before}


async def card_points(db_url: str) -> list[list]:
    """The bench's cards and the active points each holds now (earlier runs spent some)."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT c.number, a.active FROM card c JOIN account a ON a.membership = c.membership "
            "WHERE c.series = 'bench' AND c.status = 'active' ORDER BY c.id"
        )
        return [[r["number"], r["active"]] for r in rows]
    finally:
        await conn.close()


@dataclass
class Phase:
    """One timed run of the load: a closed loop of --tills tills, or arrivals at a fixed rate."""

    title: str
    mode: str  # "closed" or "open"
    warmup: float
    duration: float
    rate: float | None = None  # open loop: arrivals per second, all load processes together


def drive(args: argparse.Namespace, phase: Phase, prep: dict, server: Server, db_url: str) -> dict:
    """Run the load processes; sample CPU of server, PostgreSQL and load over the measured window."""
    run_id = secrets.token_hex(3)
    start = time.time() + 2.0
    procs, outs, progress_files = [], [], []
    cards = prep["cards"]
    for i in range(args.load_procs):
        out, progress = BUILD / f"load-{i}.json", BUILD / f"load-{i}.progress"
        out.unlink(missing_ok=True)
        progress.unlink(missing_ok=True)
        config = {
            "host": "127.0.0.1", "port": server.port, "client": args.client, "run_id": run_id, "proc": i,
            "seed": hash((run_id, i)) & 0xFFFFFFFF, "start": start, "warmup": phase.warmup, "duration": phase.duration,
            "timeout": 10.0, "keys": prep["keys"][i :: args.load_procs], "products": prep["products"],
            "cards": cards[i :: args.load_procs],  # disjoint: each process tracks the points its cards may spend
            "progress": str(progress), "mode": phase.mode,
        }
        if phase.mode == "open":
            assert phase.rate is not None
            config |= {"rate": phase.rate / args.load_procs, "arrivals": args.arrivals,
                       "connections": max(1, args.open_connections // args.load_procs)}
        path = BUILD / f"load-{i}-config.json"
        path.write_text(json.dumps(config))
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.load", str(path), str(out)], cwd=ROOT))
        outs.append(out)
        progress_files.append(progress)
    pg_pids = postgres_pids(db_url)
    import psutil

    try:
        with PhaseProgress(phase.title, start, phase.warmup, phase.duration, progress_files) as shown:
            shown.wait_until(start + phase.warmup)
            load_pids = [p.pid for p in procs]
            sample0 = {g: cpu_seconds(pids) for g, pids in (("server", server.pids()), ("postgres", pg_pids), ("load", load_pids))}
            machine0, t0 = psutil.cpu_times(), time.time()
            asyncio.run(statement_stats(db_url, reset=True))
            wal0 = asyncio.run(wal_counters(db_url))
            shown.wait_until(start + phase.warmup + phase.duration)
            sample1 = {g: cpu_seconds(pids)
                       for g, pids in (("server", server.pids()), ("postgres", postgres_pids(db_url)), ("load", load_pids))}
            machine1, t1 = psutil.cpu_times(), time.time()
            wal1 = asyncio.run(wal_counters(db_url))
            statements = asyncio.run(statement_stats(db_url, reset=False))
            deadline = time.time() + phase.warmup + 60
            while any(p.poll() is None for p in procs) and time.time() < deadline:
                shown.wait_until(time.time() + 0.25)
    finally:  # on an interrupt too: no load process outlives the bench
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    if len(results) != len(procs):
        raise SystemExit("a load process did not report; see the output above")
    busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
    window = t1 - t0
    cpu = {g: round(cpu_delta(sample0[g], sample1[g]), 2) for g in sample0}
    cpu["machine_busy"] = round(busy(machine1) - busy(machine0), 2)
    cpu["machine_capacity"] = round(window * (psutil.cpu_count() or 1), 2)
    cpu["other_processes"] = round(cpu["machine_busy"] - cpu["server"] - cpu["postgres"] - cpu["load"], 2)
    return {"loads": results, "cpu_seconds": cpu, "statements": statements, "window": window, "wal": wal_delta(wal0, wal1),
            "warmup": phase.warmup, "duration": phase.duration}


class CommitSettings:
    """commit_delay / commit_siblings on the bench's own PostgreSQL: ALTER SYSTEM + pg_reload_conf, restored on exit.

    Both take effect on a reload, in every backend (the server's pooled connections too) before its next statement.
    What was there before is also kept in build/bench/commit-settings.json until restored, so a sweep killed
    midway is undone by the next run (restore_leftover).
    """

    NAMES = ("commit_delay", "commit_siblings")
    SAVED = BUILD / "commit-settings.json"

    def __init__(self, admin_url: str) -> None:
        self.url = admin_url

    def __enter__(self) -> CommitSettings:
        rows = asyncio.run(_sql(self.url, "SELECT name, setting FROM pg_file_settings WHERE name IN ('commit_delay', "
                                "'commit_siblings') AND sourcefile LIKE '%postgresql.auto.conf' ORDER BY seqno", fetch=True))
        self.saved = {name: None for name in self.NAMES} | dict(rows)  # None: not set by ALTER SYSTEM before
        self.SAVED.write_text(json.dumps(self.saved))
        return self

    def apply(self, delay_us: int, siblings: int) -> None:
        self._set({"commit_delay": str(delay_us), "commit_siblings": str(siblings)})

    def __exit__(self, *exc: object) -> None:
        self._set(self.saved)
        self.SAVED.unlink(missing_ok=True)

    @classmethod
    def restore_leftover(cls, admin_url: str) -> None:
        if cls.SAVED.exists():
            say("restoring commit_delay / commit_siblings left by an interrupted --commit-delay run")
            settings = cls(admin_url)
            settings.saved = json.loads(cls.SAVED.read_text())
            settings.__exit__()

    def _set(self, values: dict[str, str | None]) -> None:
        for name, value in values.items():
            statement = f"ALTER SYSTEM RESET {name}" if value is None else f"ALTER SYSTEM SET {name} = {int(value)}"
            asyncio.run(_sql(self.url, statement))
        asyncio.run(_sql(self.url, "SELECT pg_reload_conf()"))
        wanted = {name: value for name, value in values.items() if value is not None}
        deadline = time.time() + 10
        while time.time() < deadline:  # the postmaster re-reads its files a moment after the signal
            shown = dict(asyncio.run(_sql(self.url, "SELECT name, setting FROM pg_settings WHERE name IN "
                                          "('commit_delay', 'commit_siblings')", fetch=True)))
            if all(shown[name] == value for name, value in wanted.items()):
                return
            time.sleep(0.1)
        raise SystemExit(f"PostgreSQL did not take {wanted} (pg_settings shows {shown})")


def pgbench(args: argparse.Namespace, pg: Postgres, fresh: bool) -> dict:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    binary = str(POSTGRES_BIN_PATH / "pgbench")
    admin = pg.url_for("postgres")
    exists = asyncio.run(_sql(admin, f"SELECT 1 FROM pg_database WHERE datname = '{PGBENCH_DB}'", fetch=True))
    url = pg.url_for(PGBENCH_DB)
    if fresh or not exists:
        asyncio.run(_sql(admin, f'DROP DATABASE IF EXISTS "{PGBENCH_DB}" WITH (FORCE)'))
        asyncio.run(_sql(admin, f'CREATE DATABASE "{PGBENCH_DB}"'))
        say("pgbench -i -s 10 ...")
        subprocess.run([binary, "-i", "-s", "10", "-q", url], check=True, timeout=600, capture_output=True)
    cmd = [binary, "-c", str(args.tills), "-j", "2", "-T", str(int(args.pgbench_duration)), url]
    seconds = int(args.pgbench_duration)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PhaseProgress(f"pgbench -c {args.tills} -j 2 -T {seconds} (TPC-B)", time.time(), 0, seconds) as shown:
        deadline = time.time() + seconds + 300
        while True:
            try:
                out, err = proc.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if time.time() > deadline:
                    proc.kill()
                    raise
                shown.refresh()
    if proc.returncode:
        raise SystemExit(f"pgbench failed ({proc.returncode}):\n{err[-2000:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return {"tps": round(tps, 1), "latency_avg_ms": float(latency.group(1)) if latency else None, "command": " ".join(cmd[:-1])}


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    BUILD.mkdir(parents=True, exist_ok=True)
    database = f"kopilka_bench_{args.members}"
    say(f"Kopilka bench: {args.tills} tills, {args.workers} workers (pool {args.pool_max} each), "
        f"{args.members:,} members, {args.warmup:g} s warm-up + {args.duration:g} s, client {args.client}, "
        f"{os.cpu_count()} CPUs")
    pg = Postgres(database, args.fresh)
    if args.commit_delay and pg.external:
        raise SystemExit("--commit-delay changes server settings: only on the embedded PostgreSQL, not KOPILKA_BENCH_DATABASE_URL")
    if not pg.external:
        CommitSettings.restore_leftover(pg.url_for("postgres"))
    server = None
    try:
        valkey_url = start_valkey()
        prep = asyncio.run(prepare(args, pg.url))
        server = Server(args, pg.url, valkey_url)
        say(f"server up on 127.0.0.1:{server.port}")
        closed = Phase(f"closed loop, {args.tills} tills", "closed", args.warmup, args.duration)
        result = summarise(drive(args, closed, prep, server, pg.url))
        say(_phase_line(closed.title, result))
        if args.open_rates:
            result |= open_loop(args, prep, server, pg.url, result["confirms_per_s"])
        if args.commit_delay:
            result["commit_delay"] = commit_delay_sweep(args, prep, server, pg)
        server.stop()
        server = None
        say("verifying the ledger after the run ...")
        violations = asyncio.run(verify_after(pg.url))
        result["ledger_after_run"] = {"invariants_hold": not violations, "violations": violations[:20]}
        result["pgbench"] = None if args.no_pgbench else pgbench(args, pg, args.fresh)
        if result["pgbench"]:
            result["ratio_to_tpcb"] = round(result["confirms_per_s"] / result["pgbench"]["tps"], 3)
        settings = asyncio.run(_sql(pg.url, "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                                    "('shared_buffers', 'synchronous_commit', 'fsync', 'full_page_writes', 'wal_buffers', "
                                    "'max_wal_size', 'checkpoint_timeout', 'max_connections', 'commit_delay', "
                                    "'commit_siblings', 'server_version')", fetch=True))
        result["config"] = {
            "cpus": os.cpu_count(), "tills": args.tills, "workers": args.workers, "pool_max": args.pool_max,
            "members": args.members, "warmup_s": args.warmup, "duration_s": args.duration, "client": args.client,
            "load_procs": args.load_procs, "app": args.app, "dataset": prep["counts"], "dataset_load_s": prep["load_seconds"],
            "open_loop": {"rates": args.open_rates, "max": args.open_max, "warmup_s": args.open_warmup,
                          "duration_s": args.open_duration, "arrivals": args.arrivals, "connections": args.open_connections},
            "postgres": dict(settings),
        }
        (BUILD / "results.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        (BUILD / "results.md").write_text(markdown(result))
        report(result, say, BUILD)
    finally:
        if server is not None:
            server.stop()
        pg.stop()


def _phase_line(title: str, s: dict) -> str:
    lat = s["latency_ms"]
    errors = sum(s["errors"].values())
    return (f"{title}: {s['confirms_per_s']:.1f} confirms/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms"
            + (f", {errors} errors" if errors else ""))


def open_loop(args: argparse.Namespace, prep: dict, server: Server, db_url: str, closed_max: float) -> dict:
    """Arrivals at each --open-rates fraction of the maximum, on the server the closed loop just measured."""
    maximum = args.open_max or closed_max
    if maximum <= 0:
        say("open loop skipped: the closed loop confirmed nothing")
        return {}
    runs = []
    for fraction in args.open_rates:
        rate = fraction * maximum
        prep["cards"] = asyncio.run(card_points(db_url))  # the points earlier runs spent are gone
        phase = Phase(f"open loop {fraction * 100:g} % ({rate:.0f}/s)", "open", args.open_warmup, args.open_duration, rate)
        run = summarise_open(drive(args, phase, prep, server, db_url), fraction, rate, args.arrivals)
        runs.append(run)
        lat = run["latency_ms"]
        errors = sum(run["errors"].values())
        say(f"{phase.title}: achieved {run['achieved_per_s']:.1f}/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
            f"p99.9 {lat['p99.9']:.1f} ms" + (f", {errors} errors" if errors else ""))
    return {"open_loop": runs, "open_loop_max_per_s": maximum,
            "open_loop_max_from": "--open-max" if args.open_max else "the closed loop"}


def commit_delay_sweep(args: argparse.Namespace, prep: dict, server: Server, pg: Postgres) -> list[dict]:
    """A closed-loop run per commit_delay x commit_siblings; the settings as they were afterwards."""
    rows = []
    with CommitSettings(pg.url_for("postgres")) as settings:
        for delay, siblings in itertools.product(args.commit_delay, args.commit_siblings):
            settings.apply(delay, siblings)
            prep["cards"] = asyncio.run(card_points(pg.url))
            phase = Phase(f"commit_delay {delay} µs, siblings {siblings}", "closed", args.warmup, args.duration)
            row = summarise_commit_delay(drive(args, phase, prep, server, pg.url), delay, siblings)
            rows.append(row)
            say(_phase_line(phase.title, row) + f", {row['per_confirm']['wal_flushes']} WAL flushes per confirm")
    return rows


if __name__ == "__main__":
    main()
