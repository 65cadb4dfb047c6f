"""How fast the finance reports are over a big ledger (docs/back-office.md, "Finance reports: speed").

Fills a scratch database (KOPILKA_DATABASE_URL, migrated here) with one program, --stores stores, --members members
with an account each, --sales sales and --entries ledger entries spread over the last 365 days (accruals and
redemptions of the sales, expiries, adjustments, activations), and --lots live lots; then times the `reports`
job's first (full) refresh, an incremental refresh after one more day of trading, and each report page's reads
(p50 / p95 over --repeat runs). Rows are made by set-based SQL, not through the till: this measures the reports,
not the till.

    .venv/bin/python bench/reports_bench.py --members 200000 --entries 5000000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console
from rich.progress import Progress

console = Console()

FILL = [
    ("program and stores", """
        INSERT INTO program (code, name, currency, timezone, rules_version) VALUES ('bench-fin', 'Bench', 'RUB',
            'Europe/Moscow', 0);
        INSERT INTO store (code, name, timezone, region, format, address, attributes)
        SELECT 'bench-store-' || i, 'Store ' || i, 'Europe/Moscow', '', '', '', '{}' FROM generate_series(1, {stores}) i;
        INSERT INTO till (store, code) SELECT id, 'till-1' FROM store WHERE code LIKE 'bench-store-%';
    """),
    ("members and accounts", """
        INSERT INTO membership (program, tier_spend, segments, registration_channel, status, purchases_count, joined_at)
        SELECT (SELECT id FROM program WHERE code = 'bench-fin'), 0, '{}', 'bench', 'active', 0, now()
        FROM generate_series(1, {members});
        INSERT INTO account (membership, currency, active, pending, updated_at, debt, version)
        SELECT m.id, 'points', 0, 0, now(), 0, 0 FROM membership m WHERE m.registration_channel = 'bench';
    """),
    ("sales", """
        INSERT INTO sale (store, till, receipt_id, business_date, occurred_at, channel, status, amount, discount,
                          redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version, earning_spend,
                          returned_earning_spend, request_hash, response, trace, created_at)
        SELECT t.store, t.id, 'b' || i, (now() - (i % 365) * interval '1 day')::date,
               now() - (i % 365) * interval '1 day', 'bench', 'confirmed', 100000, 0, 0, 0, 100000, 30, 0, 100000, 0,
               '', '{}', '[]', now() - (i % 365) * interval '1 day'
        FROM generate_series(1, {sales}) i
        JOIN (SELECT id, store, row_number() OVER (ORDER BY id) - 1 AS n FROM till
              WHERE store IN (SELECT id FROM store WHERE code LIKE 'bench-store-%')) t ON t.n = i % {stores};
    """),
    ("ledger entries", """
        INSERT INTO ledger_entry (account, lot, kind, bucket, amount, sale, sale_return, reason, created_at)
        SELECT a.first + (i % {members}), NULL,
               (ARRAY['accrue', 'redeem', 'activate', 'activate', 'expire', 'adjust'])[1 + i % 6],
               (ARRAY['pending', 'active', 'pending', 'active', 'active', 'active'])[1 + i % 6],
               (ARRAY[30, -20, -30, 30, -5, 7])[1 + i % 6],
               CASE WHEN i % 6 IN (0, 1) THEN s.first + (i % {sales}) END, NULL, '',
               now() - ((i::bigint * 7919) % (365 * 86400)) * interval '1 second'
        FROM generate_series(1, {entries}) i,
             (SELECT min(a.id) AS first FROM account a JOIN membership m ON m.id = a.membership
              WHERE m.registration_channel = 'bench') a,
             (SELECT min(id) AS first FROM sale WHERE channel = 'bench') s;
    """),
    ("live lots", """
        INSERT INTO point_lot (account, amount, remaining, state, activates_at, expires_at, source, created_at)
        SELECT a.first + (i % {members}), 100, 50, (ARRAY['active', 'pending'])[1 + i % 2], now(),
               now() + (i % 400) * interval '1 day', 'sale', now()
        FROM generate_series(1, {lots}) i,
             (SELECT min(a.id) AS first FROM account a JOIN membership m ON m.id = a.membership
              WHERE m.registration_channel = 'bench') a;
        ANALYZE;
    """),
]

ONE_MORE_DAY = """
    INSERT INTO ledger_entry (account, lot, kind, bucket, amount, sale, sale_return, reason, created_at)
    SELECT a.first + (i % {members}), NULL, 'accrue', 'pending', 30, NULL, NULL, '', now()
    FROM generate_series(1, {day}) i,
         (SELECT min(a.id) AS first FROM account a JOIN membership m ON m.id = a.membership
          WHERE m.registration_channel = 'bench') a
"""


def _sized(sql: str, sizes: dict[str, Any]) -> str:
    for name, value in sizes.items():
        sql = sql.replace("{" + name + "}", str(value))
    return sql


async def timed(label: str, repeat: int, run: Callable[[], Awaitable[Any]]) -> tuple[str, float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return label, statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


async def main(args: argparse.Namespace) -> None:
    from loyalty_core import db
    from loyalty_core.piccolo_conf import DB
    from loyalty_core.reports import finance
    from loyalty_core.reports.refresh import refresh
    from loyalty_core.reports.rows import Period

    db.configure(args.database_url)
    await db.migrate()
    sizes = vars(args)
    async with db.pool():
        if not await db.fetchrow("SELECT 1 FROM program WHERE code = 'bench-fin'"):
            with Progress(console=console) as progress:
                task = progress.add_task("filling", total=len(FILL))
                for label, sql in FILL:
                    progress.update(task, description=label)
                    connection = await DB.get_new_connection()
                    try:
                        await connection.execute(_sized(sql, sizes))
                    finally:
                        await connection.close()
                    progress.advance(task)
        entries = (await db.fetchrow("SELECT count(*) AS n FROM ledger_entry"))["n"]
        console.print(f"ledger: {entries:,} entries")

        started = time.perf_counter()
        full = await refresh(full=True)
        console.print(f"full refresh: {time.perf_counter() - started:.1f} s ({full.summary()})")
        connection = await DB.get_new_connection()
        try:
            await connection.execute(_sized(ONE_MORE_DAY, sizes))
        finally:
            await connection.close()
        started = time.perf_counter()
        later = await refresh()
        console.print(f"incremental refresh after {args.day:,} more entries: {time.perf_counter() - started:.2f} s "
                      f"({later.summary()})")

        facts = await finance.program("bench-fin")
        today = finance.today_in(facts, dt.datetime.now(dt.UTC))
        year_by_day = Period(since=today - dt.timedelta(days=365), until=today, grain="day")
        year_by_month = Period(since=today - dt.timedelta(days=365), until=today, grain="month")
        results = [
            await timed("liability, a year by day", args.repeat, lambda: finance.liability(facts, year_by_day)),
            await timed("liability, a year by month", args.repeat, lambda: finance.liability(facts, year_by_month)),
            await timed("movements, a year by day", args.repeat, lambda: finance.movements(facts, year_by_day)),
            await timed("aging", args.repeat, lambda: finance.aging(facts)),
            await timed("stores, a year", args.repeat, lambda: finance.by_store(facts, year_by_day)),
        ]
        for label, p50, p95 in results:
            console.print(f"{label:<30} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=__import__("os").environ.get("KOPILKA_DATABASE_URL", ""))
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--members", type=int, default=200_000)
    parser.add_argument("--sales", type=int, default=2_000_000)
    parser.add_argument("--entries", type=int, default=5_000_000)
    parser.add_argument("--lots", type=int, default=1_000_000)
    parser.add_argument("--day", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
