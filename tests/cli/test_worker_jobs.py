"""The worker runs the scheduled jobs (settle now) on its own, one worker at a time (the leader), on a schedule
an operator sets (KOPILKA_JOBS) and can see (`kopilka worker --jobs`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from typing import Any

import pytest

from backend import jobs
from loyalty_core.tables import ScheduledJob
from tests.cli.conftest import run_kopilka
from tests.factories import account_balance, make_member

UTC = dt.timezone.utc


async def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_two_workers_settle_on_schedule_and_only_the_leader_runs_the_job(shop: Any) -> None:
    await ScheduledJob.raw("DELETE FROM scheduled_job WHERE name = 'settle'")
    member = await make_member(shop, 250, now=dt.datetime.now(UTC) - dt.timedelta(days=400), expires_in_days=365)
    assert await account_balance(member.account_id) == (250, 0)  # burnt, and nobody ran settle
    schedule = jobs.parse_schedule("settle=1h")
    stop = asyncio.Event()
    workers = [asyncio.create_task(jobs.run_scheduler(stop, schedule=schedule, tick=dt.timedelta(milliseconds=50)))
               for _ in range(2)]
    try:
        async def settled() -> bool:
            return await account_balance(member.account_id) == (0, 0)

        async def finished() -> bool:
            rows = await ScheduledJob.raw("SELECT last_finished_at FROM scheduled_job WHERE name = 'settle'")
            return bool(rows) and rows[0]["last_finished_at"] is not None

        await _wait_for(settled)
        await _wait_for(finished)
        holders = await ScheduledJob.raw(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((classid::bigint << 32) | objid::bigint) = {}", jobs.LEADER_LOCK_KEY,
        )
        assert holders[0]["n"] == 1
        # several ticks later the job has not run again: its hour has not passed
        first = (await ScheduledJob.raw("SELECT last_started_at FROM scheduled_job WHERE name = 'settle'"))[0]
        await asyncio.sleep(0.3)  # several scheduler ticks, to see that nothing happens
        again = (await ScheduledJob.raw("SELECT last_started_at FROM scheduled_job WHERE name = 'settle'"))[0]
        assert again == first
        expired = await ScheduledJob.raw(
            "SELECT count(*) AS n FROM ledger_entry WHERE account = {} AND kind = 'expire'", member.account_id
        )
        assert expired[0]["n"] == 1
    finally:
        stop.set()
        await asyncio.gather(*workers)
    shown = run_kopilka("worker", "--jobs")
    assert shown.returncode == 0, shown.stderr
    line = next(ln for ln in shown.stdout.splitlines() if ln.startswith("settle\t"))
    assert "every 0:10:00" in line and "settled" in line


async def test_the_leader_lock_admits_one_worker_until_it_lets_go(db_pool: None) -> None:
    first, second = jobs.Leader(), jobs.Leader()
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.acquire()  # still leading
        await first.release()
        assert await second.acquire()
    finally:
        await first.release()
        await second.release()


@pytest.mark.parametrize("value", ["bogus=1m", "settle=soon", "settle=0m"])
def test_a_bad_schedule_is_refused_before_the_worker_starts(value: str) -> None:
    result = run_kopilka("worker", "--jobs", env=dict(os.environ, KOPILKA_JOBS=value))
    assert result.returncode == 1
    assert "KOPILKA_JOBS" in result.stderr


def test_a_job_can_be_switched_off() -> None:
    assert jobs.parse_schedule("settle=off")["settle"] is None
    assert jobs.parse_schedule("settle=30s")["settle"] == dt.timedelta(seconds=30)
    assert jobs.parse_schedule("reports=off")["reports"] is None
