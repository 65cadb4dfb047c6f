"""A chain's program reports over real sales: shoppers buy at two stores through the till, one with a coupon, one
without a card, one climbs to Silver; the reports read from the job's aggregates say what each rule cost (adding up
to what the ledger accrued on the sales and to the receipts' discounts), which store sells most on cards, who was
active against who is registered, how many moved up a tier and how many coupons were redeemed. A second,
incremental refresh counts nothing twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import msgspec
import pytest

from loyalty_core import db
from loyalty_core.coupons import codes as coupons
from loyalty_core.engine import ProgramRules
from loyalty_core.errors import ValidationFailed
from loyalty_core.reports import finance, program
from loyalty_core.reports.refresh import refresh
from loyalty_core.reports.rows import Period
from loyalty_core.setup import entities as setup
from loyalty_core.tables import CouponSeries, Membership
from tests.factories import Shop, basic_rules, emit_card, make_member, make_shop, sale_body, unique

UTC = dt.UTC


async def _promo_shop() -> tuple[Shop, str]:
    series = unique("ten")
    rules = msgspec.convert(
        {**msgspec.to_builtins(basic_rules()), "groups": [
            {"code": "coupons", "name": "Coupons", "stage": "discount",
             "rules": [{"code": "ten-off", "name": "10% with a coupon", "effect": {"kind": "percent_discount", "bp": 1000},
                        "target": {"coupon_series": [series]}}]},
            {"code": "promo", "name": "Promo", "stage": "accrual", "mode": "stack",
             "rules": [{"code": "bonus-50", "name": "50 points a receipt", "effect": {"kind": "fixed_points", "points": 50}}]},
        ]},
        ProgramRules,
    )
    shop = await make_shop(rules)
    await CouponSeries.insert(CouponSeries(program=shop.program_id, code=series, name="Ten off", personal=True,
                                           max_uses_per_code=1, max_uses_per_member=1))
    return shop, series


async def _confirm(http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    answer = await http.post("/pos/v1/sales/confirm", headers=headers, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _a_day_of_trading(http: httpx.AsyncClient) -> dict[str, Any]:
    shop, series = await _promo_shop()
    corner = unique("corner")  # a second store, bound to the program: its receipts without a card are ours
    corner_id = await setup.create_store(corner, "Corner shop", program=shop.program_id)
    corner_till = {"Authorization": f"Bearer {(await setup.create_till_key(corner, 'till-1')).key}"}
    anna, boris, vera = [await make_member(shop) for _ in range(3)]
    await Membership.update({Membership.registration_channel: "app"}).where(Membership.id == anna.membership_id)
    codes = await coupons.generate_codes(series, 4)
    sales = [
        # Anna climbs to Silver (30 000 RUB over the window) with a coupon
        await _confirm(http, shop.headers, sale_body(shop, [("cheese", 35, 100_000)], card=anna.card, coupons=[codes[0]])),
        await _confirm(http, corner_till, sale_body(shop, [("milk", 2, 10_000)], card=boris.card)),
        await _confirm(http, corner_till, sale_body(shop, [("bread", 1, 5_000)], card=anna.card)),
    ]
    anonymous = await _confirm(http, corner_till, sale_body(shop, [("cheese", 1, 100_000)]))
    # an emitted card nobody registered: a receipt with a card for the share, not a registered member
    emitted = await emit_card(shop)
    sales.append(await _confirm(http, corner_till, sale_body(shop, [("bread", 1, 5_000)], card=emitted)))
    return {"shop": shop, "corner": corner_id, "sales": sales, "anonymous": anonymous, "anna": anna, "boris": boris,
            "vera": vera, "series": series}


async def _today(shop: Shop) -> tuple[Any, dt.date]:
    facts = await finance.program(shop.program_code)
    return facts, finance.today_in(facts, dt.datetime.now(UTC))


async def test_the_program_reports_reconcile_with_the_sales_and_the_ledger(http: httpx.AsyncClient,
                                                                           db_pool: None) -> None:
    story = await _a_day_of_trading(http)
    shop = story["shop"]
    await refresh(full=True)
    facts, today = await _today(shop)
    period = Period(since=today - dt.timedelta(days=6), until=today, grain="day")
    carded = story["sales"]

    # cost per rule: the rules' points add up to what the sales accrued and the ledger wrote; discounts to the receipts'
    cost = await program.cost_per_rule(facts, period)
    by_rule = {r.rule: r for r in cost.totals}
    accrued = sum(s["totals"]["accrued_points"] for s in carded)
    assert sum(r.points for r in cost.totals) == accrued == cost.ledger_accrued > 0
    assert by_rule["bonus-50"].points == 50 * 4 and by_rule["bonus-50"].sales == 4  # not on the receipt without a card
    discount = sum(s["totals"]["discount"] for s in [*carded, story["anonymous"]])
    assert by_rule["ten-off"].discount == discount == carded[0]["totals"]["discount"] == 350_000
    assert by_rule["ten-off"].points == 0 and by_rule["ten-off"].sales == 1
    assert sum(r.points for r in cost.rows) == accrued and {r.period for r in cost.rows} == {today}
    assert cost.totals[0].rule == "ten-off"  # 3 500 RUB of discount is the costliest
    # at one store: that store's sales only, against that store's accruals in the ledger
    at_corner = await program.cost_per_rule(facts, period, story["corner"])
    corner_accrued = sum(s["totals"]["accrued_points"] for s in carded[1:])
    assert sum(r.points for r in at_corner.totals) == corner_accrued == at_corner.ledger_accrued
    assert "ten-off" not in {r.rule for r in at_corner.totals}

    # loyalty share: the corner shop took 3 receipts of 4 with a card (one an unregistered card), the test store all
    shares = {s.store_id: s for s in await program.loyalty_share(facts, period)}
    corner = shares[story["corner"]]
    assert (corner.receipts, corner.carded_receipts) == (4, 3)
    assert (corner.amount, corner.carded_amount) == (20_000 + 5_000 + 100_000 + 5_000, 30_000)
    assert corner.receipts_bp == 7500 and corner.amount_bp == 2308  # 23.077 %, half up
    ours = shares[shop.store_id]
    assert (ours.receipts, ours.carded_receipts, ours.amount_bp) == (1, 1, 10_000)
    assert [s.store_id for s in await program.loyalty_share(facts, period)] == [shop.store_id, story["corner"]]

    # active members against registered ones; new registrations by channel
    days = await program.activity(facts, period)
    assert (days[-1].active, days[-1].registered, days[-1].new) == (2, 3, {"app": 1, "": 2})
    assert days[-1].active_bp == 6667 and all(d.active == 0 for d in days[:-1])
    silver = await program.tier_filter(shop.program_id, "silver")
    assert silver is not None
    only_silver = await program.activity(facts, period, silver.id)
    assert (only_silver[-1].active, only_silver[-1].registered, only_silver[-1].new) == (1, 1, {"app": 1})

    # members per tier as the refresh counted them, and the move up
    basic = await program.tier_filter(shop.program_id, "basic")
    counts = await program.tier_counts(facts, period)
    assert [c.period for c in counts] == [today]
    assert counts[0].members == {basic.id: 2, silver.id: 1}  # type: ignore[union-attr]
    assert sum(counts[0].members.values()) == days[-1].registered  # the tiers add up to the registered members
    moves = await program.tier_moves(facts, period)
    assert moves[-1].up == {"silver": 1} and moves[-1].down == {}
    assert sum(sum(m.up.values()) for m in moves) == 1

    # coupons: four issued, one redeemed
    [series] = [c for c in await program.coupons(facts, period) if c.code == story["series"]]
    assert (series.issued, series.redemptions, series.rate_bp) == (4, 1, 2500)

    # the job's incremental run: the same numbers; a new sale is added once
    await refresh()
    assert await program.cost_per_rule(facts, period) == cost
    more = await _confirm(http, shop.headers, sale_body(shop, [("milk", 1, 10_000)], card=story["vera"].card))
    for _ in range(2):
        await refresh()
        again = await program.cost_per_rule(facts, period)
        assert sum(r.points for r in again.totals) == accrued + more["totals"]["accrued_points"] == again.ledger_accrued
        assert (await program.activity(facts, period))[-1].active == 3
        assert {s.store_id: s for s in await program.loyalty_share(facts, period)}[shop.store_id].receipts == 2

    # by week and month: the same sums
    for grain in ("week", "month"):
        wide = Period(since=period.since, until=period.until, grain=grain)  # type: ignore[arg-type]
        assert sum(r.points for r in (await program.cost_per_rule(facts, wide)).rows) == again.ledger_accrued
        assert (await program.activity(facts, wide))[-1].active == 3

    # Anna's coupon sale is cancelled at the till: the code can be used again and is no longer counted redeemed;
    # what the rules gave stays gross (the ledger's accrual stays, its clawback is a return's movement)
    cancelled = await http.post(f"/pos/v1/sales/{carded[0]['sale_id']}/cancel", headers=shop.headers)
    assert cancelled.status_code == 200, cancelled.text
    await refresh()
    [series] = [c for c in await program.coupons(facts, period) if c.code == story["series"]]
    assert (series.issued, series.redemptions) == (4, 0)
    after = await program.cost_per_rule(facts, period)
    assert sum(r.points for r in after.totals) == after.ledger_accrued == again.ledger_accrued


async def test_an_unknown_tier_is_refused(db_pool: None) -> None:
    shop = await make_shop()
    with pytest.raises(ValidationFailed) as refused:
        await program.tier_filter(shop.program_id, "platinum")
    assert refused.value.detail == "Tier: choose one from the list"
    assert await program.tier_filter(shop.program_id, "") is None
    assert await db.fetchval("SELECT count(*) FROM tier WHERE program = $1", shop.program_id) == 3


async def test_the_pages_show_the_same_numbers_and_the_csv_adds_up(http: httpx.AsyncClient, server: str) -> None:
    from tests.office.helpers import Office, make_staff

    story = await _a_day_of_trading(http)
    shop = story["shop"]
    await refresh()
    facts, today = await _today(shop)
    accrued = sum(s["totals"]["accrued_points"] for s in story["sales"])
    async with Office(server) as office:
        await office.signed_in(await make_staff("finance"))
        page = await office.get("/office/reports/rules", program=shop.program_code)
        assert page.status_code == 200 and 'data-testid="reconciled">да<' in page.text, page.text[-2000:]
        csv = await office.get("/office/reports/rules/csv", program=shop.program_code)
        lines = csv.content.decode("utf-8-sig").split("\r\n")
        assert lines[0] == "Период;Правило;Название правила;Баллы;Баллы в деньгах, RUB;Скидки, RUB;Стоимость, RUB;Покупки"
        totals = [line.split(";") for line in lines[1:] if line.startswith("Итого")]
        assert sum(int(cells[3]) for cells in totals) == accrued
        assert ["Итого", "ten-off", "10% with a coupon", "0", "0,00", "3500,00", "3500,00", "1"] in totals

        silver = await office.get("/office/reports/members", program=shop.program_code, tier="silver", grain="month")
        assert silver.status_code == 200 and 'value="silver" selected' in silver.text
        members = await office.get("/office/reports/members/csv", program=shop.program_code, tier="silver",
                                   grain="month", since=today.isoformat(), until=today.isoformat())
        rows = [line.split(";") for line in members.content.decode("utf-8-sig").split("\r\n")[1:] if line]
        assert rows[0][1:5] == ["1", "1", "100,00", "1"]  # Anna bought, the one Silver member, new through the app

        share = await office.get("/office/reports/share/csv", program=shop.program_code)
        rows = [line.split(";") for line in share.content.decode("utf-8-sig").split("\r\n")[1:] if line]
        assert len(rows) == 3 and rows[0][0] == shop.store_code and rows[-1][0] == "Итого"  # all on cards: first
        assert rows[-1][2:5] == ["5", "4", "80,00"]
        for name in ("tiers", "coupons"):
            chart = await office.get(f"/office/reports/{name}/chart.svg", program=shop.program_code)
            assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")


def test_shares_are_basis_points_rounded_half_up_and_none_without_a_whole() -> None:
    from loyalty_core.reports.rows import CouponRedemption, share_bp

    assert [share_bp(1, 3), share_bp(2, 3), share_bp(1, 8), share_bp(3, 13), share_bp(0, 5)] == [3333, 6667, 1250,
                                                                                                   2308, 0]
    assert share_bp(1, 0) is None and share_bp(0, 0) is None
    shared = CouponRedemption(series_id=1, code="SALE", name="Sale", personal=False, issued=1, redemptions=40)
    assert shared.rate_bp is None  # one shared code used 40 times is not a 4 000 % rate
