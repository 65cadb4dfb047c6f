"""The outbox partitioned by month (migration 2026-11-29T18:40, loyalty_core/messaging/partitions.py), on a
database of this module's own: the `partitions` job drops whole months, which must not touch the suite's.

A message lands in its month's partition; a dedupe key still queues a message once; the job keeps months
ahead, moves a row that landed in the default partition into its month once that month exists, and drops
the months past retention with their delivery records and dedupe keys, leaving the newer ones whole.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from loyalty_core import db
from loyalty_core.messaging import partitions
from loyalty_core.piccolo_conf import DB

pytestmark = pytest.mark.asyncio(loop_scope="session")

UTC = dt.UTC


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@pytest.fixture(scope="module")
async def own_database(services: tuple[str, str]) -> AsyncIterator[str]:
    name = f"kopilka_partitions_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_with_database(services[0], "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    saved_dsn, saved_pool = DB.config["dsn"], DB.pool
    DB.config["dsn"], DB.pool = _with_database(services[0], name), None
    try:
        await db.migrate()
        await DB.start_connection_pool(min_size=1, max_size=4)
        yield name
    finally:
        await DB.close_connection_pool()
        DB.config["dsn"], DB.pool = saved_dsn, saved_pool
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def _message(created_at: dt.datetime, dedupe_key: str | None = None) -> int | None:
    rows = await DB.run_ddl(
        "INSERT INTO notification (kind, payload, status, attempts, next_attempt_at, last_error, created_at, dedupe_key) "
        f"VALUES ('pass_update', '{{}}', 'pending', 0, now(), '', '{created_at.isoformat()}', "
        f"{'NULL' if dedupe_key is None else repr(dedupe_key)}) RETURNING id")
    return rows[0]["id"] if rows else None


async def _where(message_id: int) -> str:
    rows = await DB.run_ddl(f"SELECT tableoid::regclass::text AS part FROM notification WHERE id = {message_id}")
    return rows[0]["part"] if rows else "gone"


async def test_a_message_lands_in_its_months_partition_and_months_ahead_exist(own_database: str) -> None:
    now = dt.datetime.now(UTC)
    message = await _message(now)
    assert message is not None
    assert await _where(message) == partitions.name_of(partitions.month_of(now))
    months = await partitions.months()
    month = partitions.month_of(now)
    for _ in range(partitions.DEFAULT_AHEAD_MONTHS + 1):
        assert month in months
        month = partitions.next_month(month)


async def test_a_dedupe_key_still_queues_a_message_once(own_database: str) -> None:
    now = dt.datetime.now(UTC)
    key = f"points_expiring:{secrets.token_hex(4)}:2026-12-01"
    first = await _message(now, key)
    assert first is not None
    assert await _message(now, key) is None  # skipped, as ON CONFLICT DO NOTHING did
    assert await _message(now + dt.timedelta(days=40), key) is None  # in another month too
    rows = await DB.run_ddl(f"SELECT count(*) AS n FROM notification WHERE dedupe_key = '{key}'")
    assert rows[0]["n"] == 1


async def test_the_job_moves_a_row_out_of_the_default_partition_when_its_month_is_made(own_database: str) -> None:
    now = dt.datetime.now(UTC)
    far = now + dt.timedelta(days=31 * (partitions.DEFAULT_AHEAD_MONTHS + 2))
    message = await _message(far)  # a clock far ahead: no month holds it yet
    assert message is not None
    assert await _where(message) == partitions.DEFAULT_PARTITION
    result = await partitions.maintain(far)
    assert partitions.name_of(partitions.month_of(far)) in result.created
    assert result.moved_from_default == 1
    assert await _where(message) == partitions.name_of(partitions.month_of(far))


async def test_months_past_retention_are_dropped_with_their_deliveries_and_keys(own_database: str) -> None:
    now = dt.datetime.now(UTC)
    old_month = partitions.month_of(now - dt.timedelta(days=200))
    await partitions.create_month(old_month)
    old_at = dt.datetime.combine(old_month, dt.time(12), UTC)
    old = await _message(old_at, f"old:{secrets.token_hex(4)}")
    recent = await _message(now - dt.timedelta(days=1), f"recent:{secrets.token_hex(4)}")
    assert old is not None and recent is not None
    assert await _where(old) == partitions.name_of(old_month)
    for message in (old, recent):
        await DB.run_ddl("INSERT INTO notification_delivery (notification, target, outcome, provider_id, detail) "
                         f"VALUES ({message}, 'device:1', 'delivered', '', '')")

    result = await partitions.maintain(now, retention_days=90)

    assert partitions.name_of(old_month) in result.dropped
    assert partitions.name_of(partitions.month_of(now)) not in result.dropped
    assert await _where(old) == "gone" and await _where(recent) != "gone"
    deliveries = await DB.run_ddl("SELECT notification FROM notification_delivery ORDER BY notification")
    assert [d["notification"] for d in deliveries] == [recent]
    keys = await DB.run_ddl("SELECT key FROM notification_dedupe WHERE key LIKE 'old:%' OR key LIKE 'recent:%'")
    assert [k["key"].split(":")[0] for k in keys] == ["recent"]
    assert (await partitions.maintain(now, retention_days=90)).dropped == []  # safe to repeat


async def test_the_partitions_job_runs_from_the_workers_schedule(own_database: str) -> None:
    from backend import jobs

    assert jobs.parse_schedule("")["partitions"] == dt.timedelta(days=1)
    summary = await jobs.JOBS["partitions"][1](dt.datetime.now(UTC))
    assert summary.startswith("notification partitions: created none; dropped none")
