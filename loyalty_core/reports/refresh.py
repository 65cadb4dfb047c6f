"""The `reports` job: keeps the finance reports' aggregates (report_* tables) up to date from the ledger.

A scheduled job (backend/jobs.py JOBS, every 10 minutes by default), not an incremental write: the ledger's one
writer stays as it is and the till's hot path pays nothing. Each run, in one REPEATABLE READ transaction (one
snapshot, so the day sums and the account balances it stores agree exactly):

1. re-sums the ledger's entries per program, local day, store, kind and bucket for the whole days since the
   previous run started, less a day (an entry is counted even when its transaction committed up to a day after
   its timestamp), and rolls those days up without the store (`report_ledger_total`, what the program-wide
   reports read) and per store and month (`report_ledger_store_month`, their months whole, for the per-store
   report); the first run, or `full=True`, sums every day;
2. sums the live lots per expiry month (the aging) and the account balances per program (the snapshot the
   liability page reconciles with);
3. the program reports' sums (program_queries.py): what each rule gave, receipts with and without a card, tier
   moves and coupons for the same days; active members for the periods from then on; registrations and members
   per tier whole.

Safe to repeat and to run beside another: the day rows are upserts on their key, and a second refresh at the same
moment skips its turn (an advisory lock).
"""

from __future__ import annotations

import datetime as dt
import time

import msgspec

from loyalty_core import db
from loyalty_core.piccolo_conf import DB
from loyalty_core.reports import program_queries as pq
from loyalty_core.reports import queries as q

JOB = "reports"
LOCK_KEY = int.from_bytes(b"kopreprt", "big") >> 1


class RefreshResult(msgspec.Struct, kw_only=True):
    skipped: bool = False
    since: dt.datetime | None = None  # None: every day was summed
    day_rows: int = 0
    aging_rows: int = 0
    programs: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        if self.skipped:
            return "skipped: another refresh was running"
        days = "every day" if self.since is None else f"days since {self.since:%Y-%m-%d %H:%M} UTC"
        return (f"summed {days}: {self.day_rows} day rows, {self.aging_rows} aging rows, "
                f"{self.programs} programs' balances in {self.seconds:.2f} s")


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 42"


async def refresh(*, full: bool = False) -> RefreshResult:
    started = time.monotonic()
    async with DB.transaction():
        conn = db.connection()
        await conn.execute(q.REPEATABLE_READ)
        if not await conn.fetchval(q.TRY_LOCK, LOCK_KEY):
            return RefreshResult(skipped=True)
        mark = None if full else await conn.fetchval(q.WATERMARK, JOB)
        now = await conn.fetchval("SELECT now()")
        since = None if mark is None else min(mark, now) - dt.timedelta(days=1)
        if since is None:
            days = await conn.execute(q.SUM_ALL_DAYS)
            await conn.execute(q.ROLL_UP_ALL)
            await conn.execute(q.ROLL_UP_MONTHS_ALL)
        else:
            days = await conn.execute(q.SUM_DAYS_SINCE, since)
            await conn.execute(q.ROLL_UP_SINCE, since)
            await conn.execute(q.ROLL_UP_MONTHS_SINCE, since)
        await _sum_program_facts(conn, since)
        aging = await conn.execute(q.SUM_AGING)
        await conn.execute(q.DROP_OLD_AGING)
        balances = await conn.execute(q.SUM_ACCOUNTS)
        await conn.execute(q.SET_WATERMARK, JOB)
        await conn.execute(q.ANALYZE)
        await conn.execute(pq.ANALYZE)
    return RefreshResult(since=since, day_rows=_count(days), aging_rows=_count(aging), programs=_count(balances),
                         seconds=time.monotonic() - started)


async def _sum_program_facts(conn: object, since: dt.datetime | None) -> None:
    """The program reports' sums (loyalty_core/reports/program_queries.py) in the same snapshot: the days of
    rules, receipts, tier moves and coupons since `since` (None: all), the active members' periods from
    `since`'s on, and the registrations and members per tier whole."""
    run = conn.execute  # type: ignore[attr-defined]
    if since is None:
        for sql in (pq.SUM_RULES_ALL, pq.ROLL_UP_RULES_ALL, pq.SUM_SALES_ALL, pq.DROP_ACTIVE_ALL,
                    pq.SUM_ACTIVE_ALL, pq.SUM_TIER_MOVES_ALL, pq.DROP_COUPONS_ALL, pq.SUM_COUPONS_ALL):
            await run(sql)
    else:
        for sql in (pq.SUM_RULES_SINCE, pq.ROLL_UP_RULES_SINCE, pq.SUM_SALES_SINCE, pq.DROP_ACTIVE_SINCE,
                    pq.SUM_ACTIVE_SINCE, pq.SUM_TIER_MOVES_SINCE, pq.DROP_COUPONS_SINCE,
                    pq.SUM_COUPONS_SINCE):
            await run(sql, since)
    for sql in (pq.DROP_MEMBERS, pq.SUM_MEMBERS, pq.SUM_TIERS, pq.ZERO_EMPTY_TIERS):
        await run(sql)


async def job(now: dt.datetime) -> str:
    """The scheduled job (`now` is the scheduler's; the refresh reads the database's clock, the one the
    entries' commit order follows)."""
    return (await refresh()).summary()
