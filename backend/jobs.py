"""Scheduled jobs the worker runs (`kopilka worker`): settle now; segments, member events, campaigns and report
aggregates later. One worker at a time runs them: the leader, who holds a PostgreSQL advisory lock.

Why a PostgreSQL session advisory lock and not a Valkey key with a TTL: every job writes PostgreSQL, and the
lock lives exactly as long as the leader's connection. A leader that dies or is cut off loses its connection
and with it the lock, at once; a leader that pauses (GC, a stopped container) keeps it, so no second leader
can start while the first may still write, which a TTL that runs out would allow. There is nothing to renew
and no clock to trust, and Valkey may be down while the database, which the jobs need anyway, is up.

The schedule is configuration: KOPILKA_JOBS="settle=10m" (a job name and its interval in s, m, h or d, comma
separated; `name=off` disables one). When each job last ran is kept in the scheduled_job table, so a new
leader continues the schedule rather than restarting it, and `kopilka worker --jobs` shows it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec

from backend import observability as metrics
from loyalty_core.piccolo_conf import DB
from loyalty_core.tables import ScheduledJob

log = logging.getLogger("kopilka.jobs")

# the advisory lock's key: any constant no other part of Kopilka uses ("kopilka-jobs" as 8 bytes)
LEADER_LOCK_KEY = int.from_bytes(b"kopjobs!", "big") >> 1
DEFAULT_SCHEDULE = "settle=10m,segments=1h,member_events=1h,campaigns=1m,reports=10m,partitions=1d"
TICK = dt.timedelta(seconds=15)


class JobSpec(msgspec.Struct, frozen=True):
    name: str
    every: dt.timedelta
    description: str


class JobStatus(msgspec.Struct, frozen=True):
    name: str
    every: dt.timedelta | None  # None: disabled
    description: str
    last_started_at: dt.datetime | None
    last_finished_at: dt.datetime | None
    last_result: str
    next_at: dt.datetime | None


# --- the jobs -----------------------------------------------------------------------------------


class SettleResult(msgspec.Struct):
    accounts: int = 0
    activated_points: int = 0
    expired_points: int = 0
    batches: int = 0
    expiring_soon_queued: int = 0
    tier_changes: int = 0

    def summary(self) -> str:
        return (f"settled {self.accounts} accounts in {self.batches} batches: {self.activated_points} points "
                f"activated, {self.expired_points} expired; {self.expiring_soon_queued} 'expiring soon' messages; "
                f"{self.tier_changes} tier changes")


async def settle(now: dt.datetime, batch: int = 500, progress: Callable[[object], None] | None = None) -> SettleResult:
    """Due activations and expirations in batches (with their messages), 'expiring soon' messages, and the tier
    pass over every member whose 12-month window changed since the last settle (its watermark)."""
    from loyalty_core.ledger.settle import settle_due
    from loyalty_core.messaging.notifications import after_settle, queue_expiring_soon
    from loyalty_core.members.tiers import recompute_lapsed_tiers

    report = await settle_due(now, batch, progress=progress, on_settled=after_settle)
    result = SettleResult(accounts=report.accounts, activated_points=report.activated_points,
                          expired_points=report.expired_points, batches=report.batches)
    result.expiring_soon_queued = await queue_expiring_soon(now)
    rows = await ScheduledJob.raw("SELECT watermark FROM scheduled_job WHERE name = 'settle'")
    since = rows[0]["watermark"] if rows else None
    result.tier_changes = len(await recompute_lapsed_tiers(now, since=since))
    await ScheduledJob.raw(
        "INSERT INTO scheduled_job (name, last_result, watermark) VALUES ('settle', '', {}) "
        "ON CONFLICT (name) DO UPDATE SET watermark = GREATEST(scheduled_job.watermark, EXCLUDED.watermark)",
        now,
    )
    return result


async def _settle_job(now: dt.datetime) -> str:
    return (await settle(now)).summary()


async def _segments_job(now: dt.datetime) -> str:
    from loyalty_core.marketing.segments import recompute_all

    results = await recompute_all(now)
    changed = sum(r.added + r.removed for r in results)
    return f"{len(results)} dynamic segments recomputed, {changed} memberships changed"


async def _member_events_job(now: dt.datetime) -> str:
    from loyalty_core.marketing.events import run_member_events

    return (await run_member_events(now)).summary()


async def _campaigns_job(now: dt.datetime) -> str:
    from loyalty_core.campaigns.queueing import queue_due

    queued = await queue_due(now)
    return "; ".join(f"{q.campaign}: {q.messages} messages queued, {q.control} in control, {q.capped} capped"
                     for q in queued) or "no campaign due"


async def _reports_job(now: dt.datetime) -> str:
    from loyalty_core.reports.refresh import job

    return await job(now)


async def _partitions_job(now: dt.datetime) -> str:
    from backend.settings import get_settings
    from loyalty_core.messaging.partitions import maintain

    return (await maintain(now, retention_days=get_settings().database.notification_retention_days)).summary()


JOBS: dict[str, tuple[str, Callable[[dt.datetime], Awaitable[str]]]] = {
    "settle": ("activate and expire points, 'expiring soon' messages, tiers whose window changed", _settle_job),
    "partitions": ("the outbox's monthly partitions: months ahead created, months past retention dropped",
                   _partitions_job),
    "reports": ("the finance reports' daily sums, liability aging and balances (loyalty_core/reports)", _reports_job),
    "campaigns": ("queue the launched campaigns whose send time has come", _campaigns_job),
    "segments": ("recompute every dynamic segment (membership.segments), one statement each", _segments_job),
    "member_events": ("first purchase and referral, birthday, reactivation bonuses; tier-at-risk messages",
                      _member_events_job),
}


# --- the schedule -------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleError(ValueError):
    pass


def parse_schedule(text: str | None = None) -> dict[str, dt.timedelta | None]:
    """`settle=10m,segments=1h`; `name=off` disables. Every known job not named keeps its default."""
    text = os.environ.get("KOPILKA_JOBS", "") if text is None else text
    schedule: dict[str, dt.timedelta | None] = {}
    for part in f"{DEFAULT_SCHEDULE},{text}".split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = name.strip(), value.strip().lower()
        if name not in JOBS:
            raise ScheduleError(f"KOPILKA_JOBS: unknown job {name!r} (known: {', '.join(JOBS)})")
        if value == "off":
            schedule[name] = None
            continue
        match = re.fullmatch(r"(\d+)([smhd])", value)
        if match is None or int(match[1]) == 0:
            raise ScheduleError(f"KOPILKA_JOBS: {part!r}: give an interval like 30s, 10m, 1h or 1d, or off")
        schedule[name] = dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    return schedule


async def statuses(schedule: dict[str, dt.timedelta | None] | None = None) -> list[JobStatus]:
    schedule = parse_schedule() if schedule is None else schedule
    rows = {r["name"]: r for r in await ScheduledJob.raw(
        "SELECT name, last_started_at, last_finished_at, last_result FROM scheduled_job")}
    out = []
    for name, (description, _) in JOBS.items():
        row = rows.get(name, {})
        every = schedule.get(name)
        started = row.get("last_started_at")
        next_at = None if every is None else (started + every if started else dt.datetime.now(dt.UTC))
        out.append(JobStatus(name=name, every=every, description=description, last_started_at=started,
                             last_finished_at=row.get("last_finished_at"), last_result=row.get("last_result") or "",
                             next_at=next_at))
    return out


async def run_due(now: dt.datetime, schedule: dict[str, dt.timedelta | None]) -> list[str]:
    """Run every job whose interval has passed since it last started (the leader calls this). Returns their names."""
    ran = []
    for status in await statuses(schedule):
        if status.every is None or (status.last_started_at is not None and status.last_started_at + status.every > now):
            continue
        await ScheduledJob.raw(
            "INSERT INTO scheduled_job (name, last_started_at, last_result) VALUES ({}, {}, 'running') "
            "ON CONFLICT (name) DO UPDATE SET last_started_at = EXCLUDED.last_started_at, last_result = 'running'",
            status.name, now,
        )
        started, outcome = time.monotonic(), "ok"
        try:
            result = await JOBS[status.name][1](now)
        except Exception as exc:  # a failing job is reported and retried at its next turn; the others still run
            log.exception("jobs: %s failed", status.name)
            result, outcome = f"failed: {type(exc).__name__}: {exc}", "failed"
        metrics.JOB_RUNS.labels(status.name, outcome).inc()
        metrics.JOB_DURATION.labels(status.name).observe(time.monotonic() - started)
        await ScheduledJob.raw(
            "UPDATE scheduled_job SET last_finished_at = {}, last_result = {} WHERE name = {}",
            dt.datetime.now(dt.UTC), result[:2000], status.name,
        )
        log.info("jobs: %s: %s", status.name, result)
        ran.append(status.name)
    return ran


# --- the leader ---------------------------------------------------------------------------------


class Leader:
    """The advisory lock on a connection of its own (the pool's connections skip the session reset)."""

    def __init__(self) -> None:
        self._conn: asyncpg.Connection | None = None

    async def acquire(self) -> bool:
        """True while this process leads; tries to become the leader when it does not."""
        if self._conn is not None:
            try:
                await self._conn.fetchval("SELECT 1")  # still connected, so still holding the lock
                return True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self.release()
        conn = await asyncpg.connect(DB.config["dsn"])
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY):
            self._conn = conn
            log.info("jobs: this worker leads the scheduled jobs")
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if not conn.is_closed():
                await conn.close()  # closing the session releases the lock


async def run_scheduler(stop: asyncio.Event, *, schedule: dict[str, dt.timedelta | None] | None = None,
                        clock: Callable[[], dt.datetime] | None = None, tick: dt.timedelta = TICK) -> None:
    """Every `tick`: lead if no one else does, and run what is due. Until `stop` is set."""
    schedule = parse_schedule() if schedule is None else schedule
    clock = clock or (lambda: dt.datetime.now(dt.UTC))
    leader = Leader()
    try:
        while not stop.is_set():
            try:
                if await leader.acquire():
                    await run_due(clock(), schedule)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("jobs: %s; trying again in %ss", exc, tick.total_seconds())
                await leader.release()
            try:
                await asyncio.wait_for(stop.wait(), tick.total_seconds())
            except TimeoutError:
                pass
    finally:
        await leader.release()
