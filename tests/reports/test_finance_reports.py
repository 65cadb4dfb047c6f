"""A chain's finance reports over a real ledger: a shop whose members earn and pay at the till, return part of a
purchase, get adjusted by the call centre, bring points from a legacy system and let points burn. The reports,
read from the job's aggregates, reconcile to the point with the account balances and the ledger's own sums (what
`kopilka ledger verify` checks), and a second refresh counts nothing twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import msgspec
import pytest

from loyalty_core import db
from loyalty_core.adjustments import adjustments
from loyalty_core.errors import ValidationFailed
from loyalty_core.ledger import ops
from loyalty_core.ledger.verify import verify_all
from loyalty_core.reports import finance
from loyalty_core.reports.export import BOM, Money, Rate, to_csv
from loyalty_core.reports.refresh import refresh
from loyalty_core.reports.rows import Period
from tests.factories import Shop, make_member, sale_body

UTC = dt.UTC


async def _program_sums(program_id: int) -> dict[str, int]:
    """The balances and the ledger's entries of every account of the program, summed as verify sums them."""
    row = await db.fetchrow(
        "SELECT COALESCE(SUM(a.active), 0) AS active, COALESCE(SUM(a.pending), 0) AS pending, "
        "COALESCE(SUM(a.debt), 0) AS debt, "
        "(SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entry e JOIN account a2 ON a2.id = e.account "
        " JOIN membership m2 ON m2.id = a2.membership WHERE m2.program = $1 AND e.bucket IN ('active', 'pending')) "
        "AS entries, "
        "(SELECT COALESCE(SUM(l.remaining), 0) FROM point_lot l JOIN account a3 ON a3.id = l.account "
        " JOIN membership m3 ON m3.id = a3.membership WHERE m3.program = $1 AND l.state IN ('pending', 'active', 'spent')) "
        "AS lots "
        "FROM account a JOIN membership m ON m.id = a.membership WHERE m.program = $1", program_id)
    return dict(row)  # type: ignore[arg-type]


async def _our_violations(account_ids: list[int]) -> list[Any]:
    ours = {f"account {a}" for a in account_ids}
    return [v for v in await verify_all() if v.subject in ours or v.subject.split(" lot ")[0] in ours]


async def _a_month_of_trading(http: httpx.AsyncClient, shop: Shop) -> dict[str, Any]:
    """What happened, as the till and the call centre did it; returns the till's answers and the members."""
    now = dt.datetime.now(UTC)
    shopper = await make_member(shop, points=1_000)  # brought from the legacy system (an import entry)
    sale = await http.post("/pos/v1/sales/confirm", headers=shop.headers, json=sale_body(
        shop, [("cheese", 1, 100_000), ("milk", 2, 10_000)], card=shopper.card, redeem=300))
    assert sale.status_code == 200, sale.text
    sold = sale.json()
    returned = await http.post(f"/pos/v1/sales/{sold['sale_id']}/returns", headers=shop.headers,
                               json={"return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]})
    assert returned.status_code == 200, returned.text
    await adjustments.adjust_points(shopper.membership_id, msgspec.convert(
        {"points": 50, "reason": "Goodwill"}, adjustments.AdjustmentIn), now, operator="tests", origin="")
    await adjustments.adjust_points(shopper.membership_id, msgspec.convert(
        {"points": -20, "reason": "Correction of an error"}, adjustments.AdjustmentIn), now, operator="tests", origin="")
    # a member who came from the legacy system a year ago: her points burn when the ledger settles her account
    lapsed = await make_member(shop, points=500, now=now - dt.timedelta(days=400), expires_in_days=365)
    async with db.DB.transaction():
        await ops.lock_account(lapsed.account_id, now)
    return {"shopper": shopper, "lapsed": lapsed, "sale": sold, "return": returned.json(), "now": now}


async def test_the_reports_reconcile_with_the_accounts_and_the_ledger(http: httpx.AsyncClient, shop: Shop) -> None:
    story = await _a_month_of_trading(http, shop)
    await refresh(full=True)

    facts = await finance.program(shop.program_code)
    assert facts.point_value_minor == 100 and facts.currency == "RUB"
    today = finance.today_in(facts, story["now"])
    period = Period(since=today - dt.timedelta(days=6), until=today, grain="day")
    sums = await _program_sums(shop.program_id)
    assert sums["active"] + sums["pending"] == sums["entries"] == sums["lots"]  # the ledger agrees with itself
    assert await _our_violations([story["shopper"].account_id, story["lapsed"].account_id]) == []

    # the liability: what the accounts hold, in points and in money at 1 point = 1.00 RUB
    liability = await finance.liability(facts, period)
    closing = liability.points[-1]
    assert closing.total == sums["active"] + sums["pending"]
    assert (closing.active, closing.pending) == (sums["active"], sums["pending"])
    assert facts.money(closing.total) == closing.total * 100
    assert liability.opening.total == 500  # the lapsed member's points, brought in 400 days ago
    rec = liability.reconciliation
    assert rec is not None and rec.difference == 0
    assert rec.accounts_active == sums["active"] and rec.accounts_pending == sums["pending"]

    # every movement, signed as it moves the liability, adds up to the change of the liability
    moves = await finance.movements(facts, period)
    assert len(moves) == 7 and [m.period for m in moves] == [period.since + dt.timedelta(days=i) for i in range(7)]
    total = {f: sum(getattr(m, f) for m in moves) for f in Movement_fields}
    sold, back = story["sale"]["totals"], story["return"]
    assert total["accrued"] == sold["accrued_points"] > 0
    assert total["redeemed"] == -300
    assert total["clawed_back"] == -back["clawed_back_points"] and back["clawed_back_points"] > 0
    assert total["refunded"] == back["refunded_points"] > 0
    assert total["adjusted"] == 30
    assert total["imported"] == 1_000
    assert total["expired"] == -500
    assert total["net"] == sum(total[f] for f in Movement_fields if f != "net") == closing.total - 500

    # breakage: what burnt against what was accrued in the range
    whole = finance.breakage_total(moves)
    assert whole is not None and whole.expired == 500 and whole.accrued == sold["accrued_points"]
    assert whole.rate_bp == (500 * 20_000 + whole.accrued) // (2 * whole.accrued)

    # aging: the live lots by expiry month add up to the liability; the burnt lot is not there
    aging = await finance.aging(facts)
    assert sum(b.total for b in aging) == closing.total
    assert all(b.expires_month is None or b.expires_month >= today.replace(day=1) for b in aging)

    # per store: the till's sale and return under its store, the rest (import, adjustments, expiry) under none
    stores = {s.store_id: s for s in await finance.by_store(facts, period)}
    ours = stores[shop.store_id]
    assert (ours.accrued, ours.redeemed) == (sold["accrued_points"], -300)
    assert ours.clawed_back == -back["clawed_back_points"] and ours.refunded == back["refunded_points"]
    assert stores[0].net == 1_000 + 30 - 500
    assert sum(s.net for s in stores.values()) == closing.total - liability.opening.total

    # a store filter narrows the movements to that store's
    at_store = await finance.movements(facts, period, shop.store_id)
    assert sum(m.net for m in at_store) == ours.net


Movement_fields = ("accrued", "redeemed", "expired", "adjusted", "clawed_back", "refunded", "imported", "debt_repaid",
                   "other", "net")


async def test_later_refreshes_add_new_movements_and_count_nothing_twice(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=400)
    await refresh(full=True)
    facts = await finance.program(shop.program_code)
    today = finance.today_in(facts, dt.datetime.now(UTC))
    period = Period(since=today - dt.timedelta(days=1), until=today + dt.timedelta(days=30), grain="month")
    first = (await finance.liability(facts, period)).points[-1].total
    assert first == 400

    sale = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                           json=sale_body(shop, [("cheese", 1, 100_000)], card=member.card, redeem=100))
    assert sale.status_code == 200, sale.text
    for _ in range(2):  # the job's incremental run, twice: the same numbers
        result = await refresh()
        assert not result.skipped and result.since is not None
        liability = await finance.liability(facts, period)
        accrued = sale.json()["totals"]["accrued_points"]
        assert liability.points[-1].total == 400 - 100 + accrued
        assert liability.reconciliation is not None and liability.reconciliation.difference == 0

    # the per-store report reads whole months from the monthly sums and the rest from the days: the same numbers
    month_end = (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    for since, until in ((today, today), (today.replace(day=1) - dt.timedelta(days=3), month_end)):
        ours = {s.store_id: s for s in await finance.by_store(facts, Period(since=since, until=until))}[shop.store_id]
        assert (ours.accrued, ours.redeemed) == (accrued, -100), (since, until)

    # the points becoming active two weeks later move nothing in the liability, only between its parts
    async with db.DB.transaction():
        await ops.lock_account(member.account_id, dt.datetime.now(UTC) + dt.timedelta(days=15))
    await refresh()
    later = await finance.liability(facts, Period(since=period.since, until=today + dt.timedelta(days=20)))
    assert later.points[-1].total == 400 - 100 + accrued and later.points[-1].pending == 0
    assert later.reconciliation is not None and later.reconciliation.difference == 0


@pytest.mark.parametrize(("since", "until", "grain", "message"), [
    ("2026-13-01", "", "day", "Since: a date as YYYY-MM-DD"),
    ("yesterday", "", "day", "Since: a date as YYYY-MM-DD"),
    ("", "2026-02-30", "day", "Until: a date as YYYY-MM-DD"),
    ("2026-11-20", "2026-11-01", "day", "Since must not be after Until"),
    ("2024-01-01", "2026-11-01", "day", "At most 366 days by day: group by week or month"),
    ("1999-12-31", "2000-01-10", "day", "The dates must lie between 2000-01-01 and a year from today"),
    ("", "", "year", "Group by: day, week or month"),
    ("2026-1-1", "", "day", "Since: a date as YYYY-MM-DD"),
])
def test_a_period_that_makes_no_sense_is_refused_with_a_reason(since: str, until: str, grain: str,
                                                                message: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        finance.parse_period(since, until, grain, dt.date(2026, 11, 29))
    assert refused.value.detail == message


def test_periods_default_to_the_last_30_days_and_cover_whole_weeks_and_months() -> None:
    period = finance.parse_period("", "", "", dt.date(2026, 11, 29))
    assert (period.since, period.until, period.grain) == (dt.date(2026, 10, 31), dt.date(2026, 11, 29), "day")
    weeks = finance.parse_period("2026-11-01", "2026-11-29", "week", dt.date(2026, 11, 29))
    assert finance.period_starts(weeks)[0] == dt.date(2026, 10, 26)  # the Monday of the first day's week
    assert finance.period_end(dt.date(2026, 10, 26), weeks) == dt.date(2026, 11, 1)
    months = finance.parse_period("2025-12-15", "2026-02-10", "month", dt.date(2026, 11, 29))
    assert finance.period_starts(months) == [dt.date(2025, 12, 1), dt.date(2026, 1, 1), dt.date(2026, 2, 1)]
    assert finance.period_end(dt.date(2026, 2, 1), months) == dt.date(2026, 2, 10)


def test_whole_months_inside_a_range() -> None:
    def months(since: str, until: str) -> tuple[dt.date, dt.date]:
        return finance.whole_months(Period(since=dt.date.fromisoformat(since), until=dt.date.fromisoformat(until)))

    assert months("2026-01-01", "2026-12-31") == (dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    assert months("2026-01-15", "2026-03-10") == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    assert months("2026-01-02", "2026-02-28") == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    first, after = months("2026-01-15", "2026-01-20")
    assert first == after  # none


def test_csv_opens_in_a_russian_excel_and_runs_no_formula() -> None:
    body = to_csv(["Период", "Магазин", "Баллы", "Деньги, RUB", "Breakage, %"],
                  [[dt.date(2026, 11, 1), '=HYPERLINK("http://x")', -1200, Money(-123456), Rate(1234)],
                   [dt.date(2026, 11, 2), 'Тверская; "угол"', 0, Money(5), None]], "ru")
    assert body.startswith(BOM.encode())
    text = body.decode("utf-8-sig")
    assert text.split("\r\n") == [
        "Период;Магазин;Баллы;Деньги, RUB;Breakage, %",
        '2026-11-01;"\'=HYPERLINK(""http://x"")";-1200;-1234,56;12,34',
        "2026-11-02;\"Тверская; \"\"угол\"\"\";0;0,05;",
        "",
    ]
    english = to_csv(["Day", "Money"], [[dt.date(2026, 11, 1), Money(123456)]], "en").decode("utf-8-sig")
    assert english == "Day,Money\r\n2026-11-01,1234.56\r\n"
