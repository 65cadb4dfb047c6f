"""How fast the program reports are (docs/back-office.md, "Finance reports: speed"): cost per rule, loyalty share,
active members, members per tier, coupon redemption.

Fills a scratch database (KOPILKA_DATABASE_URL, migrated here) with one program of three tiers, --stores stores,
--members members (joined over two years, four channels, a tier each), --sales sales over the last 365 days (70 %
with a card, each with the applied rules the till stores: the tier's accrual and one of 12 promotions), --coupons
codes in 20 series of which --uses are redeemed, and --moves tier changes; then times the `reports` job's first
(full) refresh, an incremental one after one more day of sales, and each report's reads (p50 / p95 over --repeat
runs). Rows are made by set-based SQL, not through the till: this measures the reports, not the till.

    .venv/bin/python -m bench.program_reports_bench --members 100000 --sales 300000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.reports_bench import _sized, timed

console = Console()

PROGRAM = "(SELECT id FROM program WHERE code = 'bench-prog')"
FILL = [
    ("program, tiers and stores", f"""
        INSERT INTO program (code, name, currency, timezone, rules_version) VALUES ('bench-prog', 'Bench', 'RUB',
            'Europe/Moscow', 0);
        INSERT INTO tier (program, code, name, rank, threshold_spend, accrual_bp)
        SELECT {PROGRAM}, c, initcap(c), r, (r - 1) * 3000000, 300 + 200 * (r - 1)
        FROM (VALUES ('basic', 1), ('silver', 2), ('gold', 3)) t(c, r);
        INSERT INTO store (code, name, timezone, region, format, address, attributes, program)
        SELECT 'bp-store-' || i, 'Store ' || i, 'Europe/Moscow', '', '', '', '{{}}', {PROGRAM}
        FROM generate_series(1, {{stores}}) i;
        INSERT INTO till (store, code) SELECT id, 'till-1' FROM store WHERE code LIKE 'bp-store-%';
    """),
    ("customers and members", f"""
        INSERT INTO customer (name, locale, status, created_at) SELECT 'bp ' || i, 'ru', 'active', now()
        FROM generate_series(1, {{members}}) i;
        INSERT INTO membership (program, customer, tier, tier_spend, segments, registration_channel, status,
                                purchases_count, joined_at)
        SELECT {PROGRAM}, c.id, (SELECT id FROM tier WHERE program = {PROGRAM} ORDER BY rank LIMIT 1 OFFSET c.id % 3),
               0, '{{}}', (ARRAY['app', 'web', 'till', 'call_center'])[1 + c.id % 4], 'active', 0,
               now() - (c.id % 730) * interval '1 day'
        FROM customer c WHERE c.name LIKE 'bp %';
        INSERT INTO card (number, program, membership, series, kind, status, created_at)
        SELECT 'bp' || m.id, m.program, m.id, '', 'virtual', 'active', now() FROM membership m
        WHERE m.program = {PROGRAM};
    """),
    ("sales with their applied rules", f"""
        INSERT INTO sale (store, till, receipt_id, business_date, occurred_at, membership, account, channel, status,
                          amount, discount, redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version,
                          earning_spend, returned_earning_spend, request_hash, response, trace, created_at)
        SELECT t.store, t.id, 'bp' || i, (now() - (i % 365) * interval '1 day')::date,
               now() - (i % 365) * interval '1 day', CASE WHEN i % 10 < 7 THEN m.first + (i % {{members}}) END, NULL,
               'store', 'confirmed', 100000, 5000, 0, 0, 95000, 30, 0, 95000, 0, '', '{{}}',
               jsonb_build_object('applied', jsonb_build_array(
                   jsonb_build_object('rule', 'tier', 'name', 'Tier', 'points', 28, 'discount', 0),
                   jsonb_build_object('rule', 'promo-' || (i % 12), 'name', 'Promo ' || (i % 12), 'points', 2,
                                      'discount', 5000))),
               now() - (i % 365) * interval '1 day'
        FROM generate_series(1, {{sales}}) i
        JOIN (SELECT id, store, row_number() OVER (ORDER BY id) - 1 AS n FROM till
              WHERE store IN (SELECT id FROM store WHERE code LIKE 'bp-store-%')) t ON t.n = i % {{stores}},
             (SELECT min(id) AS first FROM membership WHERE program = {PROGRAM}) m;
    """),
    ("coupons and redemptions", f"""
        INSERT INTO coupon_series (program, code, name, personal, max_uses_per_code, max_uses_per_member, created_at)
        SELECT {PROGRAM}, 'bp-series-' || i, 'Series ' || i, true, 1, 1, now() FROM generate_series(1, 20) i;
        INSERT INTO coupon (series, code, uses, status, issued_at)
        SELECT s.first + (i % 20), 'BP' || i, 0, 'active', now() - (i % 365) * interval '1 day'
        FROM generate_series(1, {{coupons}}) i,
             (SELECT min(id) AS first FROM coupon_series WHERE code LIKE 'bp-series-%') s;
        INSERT INTO coupon_use (coupon, membership, sale, used_at)
        SELECT c.id, NULL, 0, c.issued_at + interval '1 hour' FROM coupon c
        WHERE c.code LIKE 'BP%' ORDER BY c.id LIMIT {{uses}};
    """),
    ("tier moves", f"""
        INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error,
                                  created_at)
        SELECT m.customer, c.id, 'tier_changed',
               jsonb_build_object('tier', (ARRAY['silver', 'gold', 'basic'])[1 + i % 3], 'up', i % 3 <> 2),
               'sent', 1, now(), '', now() - (i % 365) * interval '1 day'
        FROM generate_series(1, {{moves}}) i
        JOIN membership m ON m.id = (SELECT min(id) FROM membership WHERE program = {PROGRAM}) + i % {{members}}
        JOIN card c ON c.membership = m.id;
        ANALYZE;
    """),
]

ONE_MORE_DAY = f"""
    INSERT INTO sale (store, till, receipt_id, business_date, occurred_at, membership, channel, status, amount,
                      discount, redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version,
                      earning_spend, returned_earning_spend, request_hash, response, trace, created_at)
    SELECT t.store, t.id, 'bp-next-' || extract(epoch FROM now())::bigint || '-' || i, now()::date, now(), m.first + (i % {{members}}), 'store', 'confirmed',
           100000, 0, 0, 0, 100000, 30, 0, 100000, 0, '', '{{}}',
           '{{"applied": [{{"rule": "tier", "name": "Tier", "points": 30, "discount": 0}}]}}', now()
    FROM generate_series(1, {{day}}) i
    JOIN (SELECT id, store, row_number() OVER (ORDER BY id) - 1 AS n FROM till
          WHERE store IN (SELECT id FROM store WHERE code LIKE 'bp-store-%')) t ON t.n = i % {{stores}},
         (SELECT min(id) AS first FROM membership WHERE program = {PROGRAM}) m
"""


async def _execute(sql: str) -> None:
    from loyalty_core.piccolo_conf import DB

    connection = await DB.get_new_connection()
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> None:
    from loyalty_core import db
    from loyalty_core.reports import finance, program
    from loyalty_core.reports.refresh import refresh
    from loyalty_core.reports.rows import Period

    db.configure(args.database_url)
    await db.migrate()
    sizes: dict[str, Any] = vars(args)
    async with db.pool():
        if not await db.fetchrow("SELECT 1 FROM program WHERE code = 'bench-prog'"):
            with Progress(console=console) as progress:
                task = progress.add_task("filling", total=len(FILL))
                for label, sql in FILL:
                    progress.update(task, description=label)
                    await _execute(_sized(sql, sizes))
                    progress.advance(task)
        started = time.perf_counter()
        full = await refresh(full=True)
        console.print(f"full refresh: {time.perf_counter() - started:.1f} s ({full.summary()})")
        await _execute(_sized(ONE_MORE_DAY, sizes))
        started = time.perf_counter()
        later = await refresh()
        console.print(f"incremental refresh after {args.day:,} more sales: {time.perf_counter() - started:.2f} s "
                      f"({later.summary()})")

        facts = await finance.program("bench-prog")
        today = finance.today_in(facts, dt.datetime.now(dt.UTC))
        by_day = Period(since=today - dt.timedelta(days=365), until=today, grain="day")
        by_month = Period(since=today - dt.timedelta(days=365), until=today, grain="month")
        silver = await program.tier_filter(facts.id, "silver")
        results = [
            await timed("cost per rule, a year by day", args.repeat, lambda: program.cost_per_rule(facts, by_day)),
            await timed("cost per rule, a year by month", args.repeat, lambda: program.cost_per_rule(facts, by_month)),
            await timed("loyalty share, a year", args.repeat, lambda: program.loyalty_share(facts, by_day)),
            await timed("active members, a year by day", args.repeat, lambda: program.activity(facts, by_day)),
            await timed("active members, silver, by month", args.repeat,
                        lambda: program.activity(facts, by_month, silver.id if silver else None)),
            await timed("members per tier, a year by day", args.repeat, lambda: program.tier_counts(facts, by_day)),
            await timed("tier moves, a year by day", args.repeat, lambda: program.tier_moves(facts, by_day)),
            await timed("coupons, a year", args.repeat, lambda: program.coupons(facts, by_day)),
        ]
        for label, p50, p95 in results:
            console.print(f"{label:<36} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=__import__("os").environ.get("KOPILKA_DATABASE_URL", ""))
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--sales", type=int, default=300_000)
    parser.add_argument("--coupons", type=int, default=200_000)
    parser.add_argument("--uses", type=int, default=50_000)
    parser.add_argument("--moves", type=int, default=30_000)
    parser.add_argument("--day", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
