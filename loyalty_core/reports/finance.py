"""The finance reports: liability, movements, breakage, aging, stores. Reads of the aggregates only (the
`reports` job keeps them, loyalty_core/reports/refresh.py); definitions in docs/back-office.md."""

from __future__ import annotations

import datetime as dt
from typing import Any, get_args

import msgspec

from loyalty_core import db
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.replicas import reading
from loyalty_core.reports import queries as q
from loyalty_core.reports.rows import (
    AgingBucket,
    Breakage,
    Grain,
    Liability,
    LiabilityPoint,
    Movement,
    Period,
    ProgramFacts,
    Reconciliation,
    StoreRef,
    StoreTotals,
)

DEFAULT_DAYS = 30
# the longest range per grain: a page of a few hundred rows, a chart that can still be read
MAX_DAYS: dict[str, int] = {"day": 366, "week": 3 * 366, "month": 10 * 366}
EARLIEST = dt.date(2000, 1, 1)


# --- what a report is asked ------------------------------------------------------------------------------------


def parse_period(since: str, until: str, grain: str, today: dt.date) -> Period:
    """The form's dates (YYYY-MM-DD, both days included) and grain; empty: the last 30 days by day.
    Raises ValidationFailed with a message a person can act on."""
    grain = grain or "day"
    if grain not in get_args(Grain):
        raise ValidationFailed("Group by: day, week or month")
    last = _date(until, "Until: a date as YYYY-MM-DD") if until else today
    first = _date(since, "Since: a date as YYYY-MM-DD") if since else last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValidationFailed("Since must not be after Until")
    if first < EARLIEST or last > today + dt.timedelta(days=366):
        raise ValidationFailed("The dates must lie between 2000-01-01 and a year from today")
    if (last - first).days + 1 > MAX_DAYS[grain]:
        raise ValidationFailed({"day": "At most 366 days by day: group by week or month",
                                "week": "At most 3 years by week: group by month",
                                "month": "At most 10 years"}[grain])
    return Period(since=first, until=last, grain=grain)  # type: ignore[arg-type]


def _date(text: str, message: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(message) from None


def period_starts(period: Period) -> list[dt.date]:
    """The first day of every period the range touches (weeks start on Monday, as ISO and date_trunc)."""
    start = _trunc(period.since, period.grain)
    out = []
    while start <= period.until:
        out.append(start)
        start = _next(start, period.grain)
    return out


def _trunc(day: dt.date, grain: str) -> dt.date:
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def _next(start: dt.date, grain: str) -> dt.date:
    if grain == "week":
        return start + dt.timedelta(days=7)
    if grain == "month":
        return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return start + dt.timedelta(days=1)


def whole_months(period: Period) -> tuple[dt.date, dt.date]:
    """[first, after): the calendar months that lie wholly inside the range (first == after: none)."""
    first = period.since if period.since.day == 1 else _next(period.since.replace(day=1), "month")
    after = _next(period.until.replace(day=1), "month")
    if period.until != after - dt.timedelta(days=1):
        after = period.until.replace(day=1)
    return first, max(first, after)


def period_end(start: dt.date, period: Period) -> dt.date:
    """The last day of the period starting at `start`, within the range."""
    return min(_next(start, period.grain) - dt.timedelta(days=1), period.until)


# --- programs and stores ---------------------------------------------------------------------------------------


async def programs() -> list[ProgramFacts]:
    return [await _facts(row) for row in await db.fetch(q.PROGRAMS)]


async def program(code: str | None) -> ProgramFacts:
    """The program by code; without one, the first (a deployment usually runs one)."""
    rows = await db.fetch(q.PROGRAM, code) if code else (await db.fetch(q.PROGRAMS))[:1]
    if not rows:
        raise NotFound("No such program" if code else "No program yet")
    return await _facts(rows[0])


async def _facts(row: Any) -> ProgramFacts:
    from loyalty_core.rules.programs import rules_document

    facts = {k: row[k] for k in ("id", "code", "name", "timezone")}
    try:
        settings = (await rules_document(row["id"], row["rules_version"])).settings  # type: ignore[attr-defined]
    except NotFound:  # a program without rules yet: the default point value
        return ProgramFacts(**facts)
    return ProgramFacts(**facts, currency=settings.currency, point_value_minor=settings.point_value_minor)


async def stores(program_id: int) -> list[StoreRef]:
    return [StoreRef(r["id"], r["code"], r["name"]) for r in await db.fetch(q.STORES, program_id)]


def today_in(facts: ProgramFacts, now: dt.datetime) -> dt.date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(facts.timezone)).date()


# --- the reports ------------------------------------------------------------------------------------------------


@reading
async def movements(facts: ProgramFacts, period: Period, store_id: int | None = None) -> list[Movement]:
    """Every period of the range, with zeros where nothing moved."""
    if store_id is None:
        rows = await db.fetch(q.MOVEMENTS, facts.id, period.grain, period.since, period.until)
    else:
        rows = await db.fetch(q.MOVEMENTS_AT_STORE, facts.id, period.grain, period.since, period.until, store_id)
    found = {r["period"]: msgspec.convert(dict(r), Movement) for r in rows}
    return [found.get(start) or Movement(period=start) for start in period_starts(period)]


@reading
async def liability(facts: ProgramFacts, period: Period) -> Liability:
    """The liability (active + pending points) at the end of each period, from the day before the range on."""
    opening = await db.fetchrow(q.OPENING, facts.id, period.since)
    changes = {r["period"]: (r["active"], r["pending"])
               for r in await db.fetch(q.CHANGES, facts.id, period.grain, period.since, period.until)}
    active, pending = opening["active"], opening["pending"]  # type: ignore[index]
    points = []
    for start in period_starts(period):
        delta = changes.get(start, (0, 0))
        active, pending = active + delta[0], pending + delta[1]
        points.append(LiabilityPoint(period=start, active=active, pending=pending))
    before = LiabilityPoint(period=period.since - dt.timedelta(days=1), active=opening["active"],  # type: ignore[index]
                            pending=opening["pending"])  # type: ignore[index]
    return Liability(opening=before, points=points, reconciliation=await reconciliation(facts))


@reading
async def as_of(facts: ProgramFacts) -> dt.datetime | None:
    """When the aggregates were last refreshed (None: never)."""
    row = await db.fetchrow(q.AS_OF, facts.id)
    return None if row is None else row["as_of"]  # type: ignore[no-any-return]


@reading
async def reconciliation(facts: ProgramFacts) -> Reconciliation | None:
    row = await db.fetchrow(q.RECONCILE, facts.id)
    return None if row is None else msgspec.convert(dict(row), Reconciliation)


def breakage(moves: list[Movement]) -> list[Breakage]:
    return [Breakage(period=m.period, accrued=m.accrued, expired=-m.expired) for m in moves]


def breakage_total(moves: list[Movement]) -> Breakage | None:
    if not moves:
        return None
    return Breakage(period=moves[0].period, accrued=sum(m.accrued for m in moves),
                    expired=-sum(m.expired for m in moves))


@reading
async def aging(facts: ProgramFacts) -> list[AgingBucket]:
    return [msgspec.convert(dict(r), AgingBucket) for r in await db.fetch(q.AGING, facts.id)]


@reading
async def by_store(facts: ProgramFacts, period: Period) -> list[StoreTotals]:
    first, after = whole_months(period)
    rows = await db.fetch(q.BY_STORE, facts.id, period.since, period.until, first, after)
    return [msgspec.convert(dict(r), StoreTotals) for r in rows]
