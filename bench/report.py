"""What `make bench` shows and writes: the progress of each timed phase, the summaries, the printed report, results.md."""

from __future__ import annotations

import json
import time
from pathlib import Path


class PhaseProgress:
    """A rich progress bar on stderr over a timed phase (warm-up, measured window), with the load processes' counts."""

    def __init__(self, title: str, start: float, warmup: float, duration: float, files: list[Path] | None = None) -> None:
        self.title, self.start, self.warmup, self.total = title, start, warmup, warmup + duration
        self.files = files or []
        self.last: tuple[float, int] | None = None
        self.rate = 0.0

    def __enter__(self) -> PhaseProgress:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[stage]}"), TextColumn("{task.fields[live]}"),
            console=console, transient=True, disable=not console.is_terminal,  # a log gets the phase's summary line only
        )
        self.progress.start()
        self.task = self.progress.add_task(self.title, total=self.total, stage="starting", live="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def wait_until(self, moment: float) -> None:
        while (left := moment - time.time()) > 0:
            time.sleep(min(0.25, left))
            self.refresh()

    def refresh(self) -> None:
        now = time.time()
        elapsed = now - self.start
        stage = "starting" if elapsed < 0 else "warm-up" if elapsed < self.warmup else "measuring" if elapsed < self.total else "finishing"
        live = ""
        if self.files:
            answered = failed = 0
            for f in self.files:
                try:
                    counts = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
                answered, failed = answered + counts["answered"], failed + counts["failed"]
            if self.last is None or now - self.last[0] >= 1.0:
                if self.last is not None:
                    self.rate = (answered - self.last[1]) / (now - self.last[0])
                self.last = (now, answered)
            live = f"{answered:,} answered, {self.rate:,.0f}/s" + (f", [red]{failed:,} failed[/red]" if failed else "")
        self.progress.update(
            self.task, completed=max(0.0, min(elapsed, self.total)), live=live,
            stage=f"{stage} {max(0.0, min(elapsed, self.total)):.0f}/{self.total:.0f} s",
        )


# --- summaries -------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarise(run: dict) -> dict:
    """One timed phase: throughput, latency, errors, CPU and WAL per confirm, confirms per CPU-second."""
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
    cpu, wal = run["cpu_seconds"], run["wal"]
    calls = sum(s["calls"] for s in run["statements"])
    both = cpu["server"] + cpu["postgres"]
    per = lambda v: round(v * 1000 / total, 2) if total and v is not None else None  # noqa: E731 - ms per confirm
    return {
        "confirms_per_s": round(ok / run["duration"], 1),
        "latency_ms": {q: round(percentile(latencies, float(q[1:])), 2) for q in ("p50", "p95", "p99", "p99.9")} | {
            "max": round(latencies[-1], 2) if latencies else None},
        "responses": statuses,
        "errors": {k: v for k, v in statuses.items() if k != "200"},
        "error_samples": samples,
        "receipts": {"total": total, "avg_lines": round(lines / total, 1) if total else 0,
                     "carded_share": round(carded / total, 3) if total else 0,
                     "redeeming_share_of_carded": round(redeemed / carded, 3) if carded else 0},
        "cpu": cpu | {"load_self_reported": round(load_cpu, 2)},
        "per_confirm": {
            "server_cpu_ms": per(cpu["server"]),
            "postgres_cpu_ms": per(cpu["postgres"]),
            "load_cpu_ms": per(cpu["load"]),
            "sql_statements": round(calls / total, 1) if total and calls else None,
            "wal_flushes": round(wal["fsyncs"] / total, 3) if total and wal.get("fsyncs") is not None else None,
            "wal_kb": round(wal["bytes"] / 1024 / total, 2) if total and wal.get("bytes") is not None else None,
        },
        # travels between machines better than confirms/s: what a confirm costs, not how fast the cores are
        "confirms_per_cpu_second": round(ok / both, 1) if both > 0 else None,
        "wal_in_window": wal,
        "top_statements": [s | {"per_confirm": round(s["calls"] / total, 2) if total else None} for s in run["statements"][:30]],
    }


def summarise_open(run: dict, fraction: float | None, rate: float, arrivals: str) -> dict:
    s = summarise(run)
    scheduled = sum(r.get("scheduled_in_window", 0) for r in run["loads"])
    lags = [r["dispatch_lag_ms"] for r in run["loads"] if r.get("dispatch_lag_ms")]
    return {
        "fraction_of_max": fraction, "offered_per_s": round(rate, 1), "arrivals": arrivals,
        "warmup_s": run["warmup"], "duration_s": run["duration"],
        "scheduled_per_s": round(scheduled / run["duration"], 1),
        "achieved_per_s": s["confirms_per_s"],
        "latency_ms": s["latency_ms"], "errors": s["errors"], "error_samples": s["error_samples"],
        "per_confirm": s["per_confirm"], "confirms_per_cpu_second": s["confirms_per_cpu_second"], "cpu": s["cpu"],
        "connections_opened": sum(r.get("connections_opened", 0) for r in run["loads"]),
        "most_connections_in_use": sum(r.get("most_connections_in_use", 0) for r in run["loads"]),
        "dispatch_lag_ms": {"p99": max(lag["p99"] for lag in lags), "max": max(lag["max"] for lag in lags)} if lags else None,
    }


def summarise_commit_delay(run: dict, delay_us: int, siblings: int) -> dict:
    s = summarise(run)
    return {
        "commit_delay_us": delay_us, "commit_siblings": siblings, "warmup_s": run["warmup"], "duration_s": run["duration"],
        "confirms_per_s": s["confirms_per_s"], "latency_ms": s["latency_ms"], "errors": s["errors"],
        "per_confirm": s["per_confirm"], "confirms_per_cpu_second": s["confirms_per_cpu_second"], "cpu": s["cpu"],
    }


# --- the printed report and results.md -----------------------------------------------------------------


def _errors(errors: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(r: dict, say, results_dir: Path) -> None:  # noqa: ANN001 - say prints a line
    lat, per, cpu = r["latency_ms"], r["per_confirm"], r["cpu"]
    say("")
    say(f"closed loop ({r['config']['tills']} tills, {r['config']['duration_s']:g} s)")
    say(f"confirms/s        {r['confirms_per_s']:>9.1f}   (target >= 1000)")
    say(f"latency p50       {lat['p50']:>9.2f} ms")
    say(f"latency p95       {lat['p95']:>9.2f} ms")
    say(f"latency p99       {lat['p99']:>9.2f} ms   (target < 50)")
    say(f"latency p99.9     {lat['p99.9']:>9.2f} ms")
    say(f"errors            {_errors(r['errors'])}")
    if r.get("pgbench"):
        say(f"TPC-B tps         {r['pgbench']['tps']:>9.1f}   ({r['pgbench']['command']})")
        say(f"ratio             {r['ratio_to_tpcb']:>9.3f}   (target >= 0.3)")
    say(f"per confirm       server {per['server_cpu_ms']} ms CPU (target <= 0.7), PostgreSQL {per['postgres_cpu_ms']} ms CPU "
        f"(target <= 0.8), load generator {per['load_cpu_ms']} ms CPU, {per['sql_statements']} SQL statements")
    say(f"confirms per CPU-second  {_num(r['confirms_per_cpu_second'])}   (confirms / (server CPU s + PostgreSQL CPU s))")
    say(f"WAL per confirm   {_num(per['wal_flushes'], 3)} flushes, {_num(per['wal_kb'], 2)} kB")
    say(f"CPU in window     server {cpu['server']} s, postgres {cpu['postgres']} s, load {cpu['load']} s, "
        f"other processes {cpu['other_processes']} s, machine busy {cpu['machine_busy']} of {cpu['machine_capacity']} s")
    if r.get("open_loop"):
        first = r["open_loop"][0]
        say("")
        say(f"open loop: {first['arrivals']} arrivals at a fixed rate, {first['duration_s']:g} s each after {first['warmup_s']:g} s; "
            f"latency from each arrival's scheduled time; maximum {r['open_loop_max_per_s']:.1f}/s ({r['open_loop_max_from']})")
        say(f"  {'load':>6} {'offered/s':>10} {'achieved/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8} "
            f"{'confirms/CPU-s':>14} {'conns':>6} {'lag p99':>8}  errors")
        for o in r["open_loop"]:
            lat = o["latency_ms"]
            say(f"  {_load(o):>6} {o['offered_per_s']:>10.1f} {o['achieved_per_s']:>10.1f} {lat['p50']:>8.2f} {lat['p99']:>8.2f} "
                f"{lat['p99.9']:>9.2f} {_num(lat['max'], 2):>8} {_num(o['confirms_per_cpu_second']):>14} "
                f"{o['most_connections_in_use']:>6} {_num((o['dispatch_lag_ms'] or {}).get('p99'), 2):>8}  {_errors(o['errors'])}")
    if r.get("commit_delay"):
        first = r["commit_delay"][0]
        say("")
        say(f"commit_delay (closed loop, {r['config']['tills']} tills, {first['duration_s']:g} s each)")
        say(f"  {'delay µs':>8} {'siblings':>8} {'confirms/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'WAL flushes/confirm':>19} "
            f"{'server ms':>9} {'PG ms':>6} {'confirms/CPU-s':>14}  errors")
        for c in r["commit_delay"]:
            lat, per = c["latency_ms"], c["per_confirm"]
            say(f"  {c['commit_delay_us']:>8} {c['commit_siblings']:>8} {c['confirms_per_s']:>10.1f} {lat['p50']:>8.2f} "
                f"{lat['p99']:>8.2f} {_num(per['wal_flushes'], 3):>19} {_num(per['server_cpu_ms'], 2):>9} "
                f"{_num(per['postgres_cpu_ms'], 2):>6} {_num(c['confirms_per_cpu_second']):>14}  {_errors(c['errors'])}")
    say("")
    say(f"ledger after run  {'invariants hold' if r['ledger_after_run']['invariants_hold'] else 'VIOLATED'}")
    say(f"results           {results_dir / 'results.json'}, {results_dir / 'results.md'}")


def _load(o: dict) -> str:
    return f"{o['fraction_of_max'] * 100:g} %" if o["fraction_of_max"] is not None else "fixed"


def markdown(r: dict) -> str:
    """Rows ready for docs/benchmarks.md."""
    lat, per, cfg = r["latency_ms"], r["per_confirm"], r["config"]
    tpcb = f"{r['pgbench']['tps']:.0f}" if r.get("pgbench") else "—"
    out = [
        f"{cfg['members']:,} members, {cfg['tills']} tills, {cfg['workers']} workers, {cfg['cpus']} CPUs, "
        f"{cfg['duration_s']:g} s (+{cfg['warmup_s']:g} s warm-up); other processes {r['cpu']['other_processes']} of "
        f"{r['cpu']['machine_capacity']} CPU-seconds",
        "",
        "| confirms/s | p50 | p99 | p99.9 | TPC-B tps | ratio | server CPU / confirm | PostgreSQL CPU / confirm | confirms per CPU-s "
        "| statements | WAL flushes / confirm | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['confirms_per_s']:.0f} | {lat['p50']:.1f} ms | {lat['p99']:.1f} ms | {lat['p99.9']:.1f} ms | "
        f"{tpcb} | {r.get('ratio_to_tpcb', '—')} | {per['server_cpu_ms']} ms | "
        f"{per['postgres_cpu_ms']} ms | {_num(r['confirms_per_cpu_second'], 0)} | {per['sql_statements']} | "
        f"{_num(per['wal_flushes'], 2)} | {_errors(r['errors'])} |",
    ]
    if r.get("open_loop"):
        first = r["open_loop"][0]
        out += [
            "",
            f"Open loop ({first['arrivals']} arrivals, {first['duration_s']:g} s each; maximum {r['open_loop_max_per_s']:.0f}/s "
            f"from {r['open_loop_max_from']}):",
            "",
            "| load | offered/s | achieved/s | p50 | p99 | p99.9 | confirms per CPU-s | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for o in r["open_loop"]:
            lat = o["latency_ms"]
            out.append(f"| {_load(o)} | {o['offered_per_s']:.0f} | {o['achieved_per_s']:.0f} | {lat['p50']:.1f} ms | "
                       f"{lat['p99']:.1f} ms | {lat['p99.9']:.1f} ms | {_num(o['confirms_per_cpu_second'], 0)} | "
                       f"{_errors(o['errors'])} |")
    if r.get("commit_delay"):
        out += [
            "",
            f"commit_delay, closed loop ({cfg['tills']} tills, {r['commit_delay'][0]['duration_s']:g} s each):",
            "",
            "| commit_delay | commit_siblings | confirms/s | p50 | p99 | WAL flushes / confirm | server CPU / confirm "
            "| PostgreSQL CPU / confirm | confirms per CPU-s | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in r["commit_delay"]:
            lat, per = c["latency_ms"], c["per_confirm"]
            out.append(f"| {c['commit_delay_us']} µs | {c['commit_siblings']} | {c['confirms_per_s']:.0f} | {lat['p50']:.1f} ms | "
                       f"{lat['p99']:.1f} ms | {_num(per['wal_flushes'], 3)} | {per['server_cpu_ms']} ms | "
                       f"{per['postgres_cpu_ms']} ms | {_num(c['confirms_per_cpu_second'], 0)} | {_errors(c['errors'])} |")
    return "\n".join(out) + "\n"
