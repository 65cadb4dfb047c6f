"""Queue a campaign to N shoppers and time it (issue 15: 1 000 000 in under a minute).

    python bench/campaign_bench.py --members 1000000 [--holdout 10] [--coupon] [--database-url URL]

Makes a program of its own with N registered members in one segment (set-based SQL, not timed), a personal
coupon series when --coupon, creates and launches a campaign through the use-cases, then times
`queueing.queue_campaign`: the targets with the holdout draw and the frequency cap, and their messages.
Then times the worker's claim (with the cap check) over a sample of batches, without sending. Run it on a scratch
database: its rows are kept (deleting a million members one cascade at a time takes longer than the bench).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
console = Console()

_MEMBERS = """
WITH c AS (
  INSERT INTO customer (phone, email, name, locale, status, created_at)
  SELECT '+7' || (9000000000 + $2::bigint + g)::text, NULL, 'Bench ' || g, 'ru', 'active', now()
  FROM generate_series(1, $3) g RETURNING id)
INSERT INTO membership (program, customer, tier_spend, segments, registration_channel, status, purchases_count,
                        joined_at)
SELECT $1, c.id, 0, ARRAY[$4]::varchar[], 'bench', 'active', 0, now() FROM c
"""


async def run(args: argparse.Namespace) -> None:
    from loyalty_core import db
    from loyalty_core.campaigns import delivery, queueing
    from loyalty_core.campaigns.report import report
    from loyalty_core.campaigns.model import CampaignIn, FrequencyCap, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch
    from loyalty_core.coupons.series import SeriesIn, create_series
    from loyalty_core.setup import entities as setup
    from tests.factories import basic_rules

    tag = secrets.token_hex(3)
    program, segment = f"bench-camp-{tag}", f"bench-{tag}"
    async with db.pool():
        program_id = await setup.create_program(program, "Campaign bench", basic_rules())
        await db.fetch("INSERT INTO segment (program, code, name, kind, status, member_count, created_by, created_at, "
                       "updated_at) VALUES ($1, $2, $2, 'static', 'active', $3, 'bench', now(), now())",
                       program_id, segment, args.members)
        offset = secrets.randbelow(900_000_000 // max(args.members, 1)) * args.members  # phones unique per run
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("members (setup, not timed)", total=args.members)
            step = 100_000
            for start in range(0, args.members, step):
                n = min(step, args.members - start)
                await db.fetch(_MEMBERS, program_id, offset + start, n, segment)
                progress.advance(task, n)
        await db.fetch("ANALYZE membership")
        series = None
        if args.coupon:
            series = (await create_series(SeriesIn(code=f"bench-{tag}", name="Bench", program=program))).code
        now = dt.datetime.now(dt.UTC)
        spec = CampaignIn(code=f"bench-{tag}", name="Bench", segment=segment, program=program, send_at=now,
                          messages=Messages(sms={"ru": SmsText(body="Скидка 15% по купону {coupon}")}),
                          coupon_series=series, holdout_percent=args.holdout,
                          frequency_cap=FrequencyCap(messages=2, days=7))
        await create_campaign(spec, now, operator="bench")
        await launch(spec.code, now, operator="bench")
        campaign_id = (await db.fetch("SELECT id FROM campaign WHERE code = $1", spec.code))[0]["id"]

        marks: list[tuple[str, int, float]] = []
        with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("queueing: targets")
            started = time.perf_counter()

            def step_done(name: str, rows: int) -> None:
                marks.append((name, rows, time.perf_counter() - started))
                progress.update(task, description=f"queueing: {name} done ({rows:,} rows)")

            queued = await queueing.queue_campaign(campaign_id, now, step_done)
            total = time.perf_counter() - started
        assert queued is not None
        console.print(f"[bold]queued {queued.messages:,} messages for {queued.targeted:,} targeted shoppers "
                      f"({queued.control:,} in control, {queued.capped:,} capped) "
                      f"in {total:.1f} s[/bold] ({queued.targeted / total:,.0f} shoppers/s)")
        last = 0.0
        for name, rows, at in marks:
            console.print(f"  {name:<22} {rows:>10,} rows  {at - last:6.1f} s")
            last = at

        started = time.perf_counter()
        figures = await report(spec.code, dt.datetime.now(dt.UTC))
        console.print(f"report: {figures.queued:,} messages, {figures.targeted_spend.members:,} targeted and "
                      f"{figures.control_spend.members:,} control members' spend in {time.perf_counter() - started:.1f} s")
        # the worker's claim (SKIP LOCKED, the per-shopper advisory locks, the cap check), without sending
        batches, size = args.claim_batches, 500
        claim_started = time.perf_counter()
        claimed = 0
        for _ in range(batches):
            claimed += len(await delivery.claim(now + dt.timedelta(seconds=5), size, dt.timedelta(minutes=10)))
        seconds = time.perf_counter() - claim_started
        console.print(f"claim: {claimed:,} messages in {batches} batches of {size} in {seconds:.2f} s "
                      f"({claimed / seconds:,.0f} messages/s claimed)")
        console.print(f"the bench's rows are kept: program {program} (drop the scratch database to clean up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--holdout", type=float, default=10.0, help="percent kept as the control group")
    parser.add_argument("--coupon", action="store_true",
                        help="with a personal coupon series (codes are issued when messages go out, not queued)")
    parser.add_argument("--claim-batches", type=int, default=20)
    parser.add_argument("--database-url", default=os.environ.get("KOPILKA_DATABASE_URL", ""))
    args = parser.parse_args()
    if not args.database_url:
        from backend.cli import _services

        args.database_url = _services()[0]
    from loyalty_core import db

    db.configure(args.database_url, 1, 4)
    db.migrate_sync()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
