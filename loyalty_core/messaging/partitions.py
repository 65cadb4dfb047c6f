"""The outbox's monthly partitions: `notification` is partitioned by RANGE (created_at), one partition a
calendar month (UTC), named notification_yYYYYmMM, plus notification_default for a row no month holds (a
safety net: a confirm must never fail because the `partitions` job did not run; it stays empty normally).

The `partitions` job (backend/jobs.py) keeps `ahead` months created and drops whole months older than
KOPILKA_NOTIFICATION_RETENTION_DAYS: a DROP of a month is instant and leaves no dead rows to vacuum, where a
DELETE of millions of messages would. With the months go their delivery records (notification_delivery rows
whose message is gone) and their dedupe keys (notification_dedupe). docs/scaling.md, docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec

from loyalty_core.piccolo_conf import DB

PARENT = "notification"
DEFAULT_PARTITION = "notification_default"
DEFAULT_RETENTION_DAYS = 90
DEFAULT_AHEAD_MONTHS = 3
_NAME = re.compile(r"^notification_y(\d{4})m(\d{2})$")
# a partition DROP waits for the parent's lock behind in-flight inserts (the till's confirm writes messages):
# never longer than this; the job tries again at its next turn
LOCK_TIMEOUT = "2s"


class PartitionsResult(msgspec.Struct):
    created: list[str] = []
    dropped: list[str] = []
    moved_from_default: int = 0
    expired_in_default: int = 0
    deliveries_deleted: int = 0
    dedupe_keys_deleted: int = 0

    def summary(self) -> str:
        return (f"notification partitions: created {', '.join(self.created) or 'none'}; dropped "
                f"{', '.join(self.dropped) or 'none'}; {self.moved_from_default} rows moved out of the default "
                f"partition, {self.expired_in_default} expired there; {self.deliveries_deleted} delivery records and {self.dedupe_keys_deleted} dedupe keys "
                "of dropped months deleted")


def month_of(moment: dt.datetime | dt.date) -> dt.date:
    day = moment.astimezone(dt.UTC).date() if isinstance(moment, dt.datetime) else moment
    return day.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def name_of(month: dt.date) -> str:
    return f"notification_y{month.year:04d}m{month.month:02d}"


def _bounds(month: dt.date) -> tuple[str, str]:
    return f"{month.isoformat()} 00:00:00+00", f"{next_month(month).isoformat()} 00:00:00+00"


async def months() -> dict[dt.date, str]:
    """The monthly partitions that exist: month -> table name."""
    rows = await DB.run_ddl(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        f"WHERE i.inhparent = '{PARENT}'::regclass")
    found = {}
    for row in rows:
        if match := _NAME.match(row["relname"]):
            found[dt.date(int(match[1]), int(match[2]), 1)] = row["relname"]
    return found


async def create_month(month: dt.date) -> int:
    """Create one month's partition; rows of that month that landed in the default partition move into it.
    Returns how many moved. One transaction: the parent is briefly locked while the partition is attached."""
    name, (start, end) = name_of(month), _bounds(month)
    async with DB.transaction():
        await DB.run_ddl(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await DB.run_ddl(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        moved = await DB.run_ddl(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= '{start}' AND created_at < '{end}' "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved RETURNING 1")
        await DB.run_ddl(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ('{start}') TO ('{end}')")
    return len(moved)


async def ensure_ahead(now: dt.datetime, ahead: int = DEFAULT_AHEAD_MONTHS) -> tuple[list[str], int]:
    """This month's partition and the next `ahead` months' exist. Returns (created, rows moved)."""
    have = await months()
    created, moved = [], 0
    month = month_of(now)
    for _ in range(ahead + 1):
        if month not in have:
            moved += await create_month(month)
            created.append(name_of(month))
        month = next_month(month)
    return created, moved


async def drop_expired(now: dt.datetime, retention_days: int = DEFAULT_RETENTION_DAYS) -> tuple[list[str], int]:
    """Drop the months that ended more than `retention_days` ago (every message in them is older).
    Returns the dropped partitions and the highest message id they held (0: none)."""
    cutoff = now - dt.timedelta(days=retention_days)
    dropped, highest = [], 0
    for month, name in sorted((await months()).items()):
        end = dt.datetime.combine(next_month(month), dt.time(), dt.UTC)
        if end > cutoff:
            break
        async with DB.transaction():
            await DB.run_ddl(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            rows = await DB.run_ddl(f"SELECT COALESCE(max(id), 0) AS top FROM {name}")
            await DB.run_ddl(f"DROP TABLE {name}")
        dropped.append(name)
        highest = max(highest, rows[0]["top"])
    return dropped, highest


async def maintain(now: dt.datetime, *, retention_days: int = DEFAULT_RETENTION_DAYS,
                   ahead: int = DEFAULT_AHEAD_MONTHS) -> PartitionsResult:
    """The `partitions` job: months ahead created, months past retention dropped with their leftovers."""
    result = PartitionsResult()
    result.created, result.moved_from_default = await ensure_ahead(now, ahead)
    result.dropped, highest = await drop_expired(now, retention_days)
    if highest:
        # the delivery records of messages that are gone (ids up to the highest dropped one; the index on
        # (notification, target) bounds the scan, and a kept message's id below it keeps its records)
        rows = await DB.run_ddl(
            "WITH gone AS (DELETE FROM notification_delivery d WHERE d.notification <= " + str(int(highest)) +
            " AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.id = d.notification) RETURNING 1) "
            "SELECT count(*) AS n FROM gone")
        result.deliveries_deleted = rows[0]["n"]
    cutoff = now - dt.timedelta(days=retention_days)
    # a message dated before every month (a clock far off) sits in the default partition: it expires too
    rows = await DB.run_ddl(
        f"WITH gone AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at < '{cutoff.isoformat()}'::timestamptz "
        "RETURNING 1) SELECT count(*) AS n FROM gone")
    result.expired_in_default = rows[0]["n"]
    rows = await DB.run_ddl(
        "WITH gone AS (DELETE FROM notification_dedupe WHERE created_at < "
        f"'{cutoff.isoformat()}'::timestamptz RETURNING 1) SELECT count(*) AS n FROM gone")
    result.dedupe_keys_deleted = rows[0]["n"]
    return result
