"""A marketer changes the rules over HTTP: every change validated, published as a new version, simulated."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.admin.conftest import Operators, problem, row_counts
from tests.factories import Shop, make_member, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

MSK = dt.timezone(dt.timedelta(hours=3))


def _last_wednesday() -> dt.date:
    """The latest Wednesday whose 10:30 has passed: a till's sale may be at most 7 days old."""
    now = dt.datetime.now(MSK)
    day = now.date() - dt.timedelta(days=(now.weekday() - 2) % 7)
    if dt.datetime.combine(day, dt.time(10, 30), MSK) > now:
        day -= dt.timedelta(days=7)
    return day


WEDNESDAY_10_30 = dt.datetime.combine(_last_wednesday(), dt.time(10, 30), MSK)
WEDNESDAY_15_00 = dt.datetime.combine(_last_wednesday(), dt.time(15, 0), MSK)


def happy_hours(end: Any = 12) -> dict[str, Any]:
    return {
        "code": "promo", "name": "Promotions", "stage": "accrual", "mode": "stack",
        "rules": [{
            "code": "happy-hours", "name": "Happy hours x2",
            "effect": {"kind": "multiplier", "factor_bp": 20_000},
            "schedule": {"weekdays": [3], "hours": [{"start": 9, "end": end}]},
        }],
    }


def rules_url(shop: Shop, tail: str = "") -> str:
    return f"/admin/v1/programs/{shop.program_code}/rules{tail}"


async def simulate(http: httpx.AsyncClient, operator: Operators, shop: Shop, when: dt.datetime, **extra: Any) -> dict:
    body = {"program": shop.program_code, "occurred_at": when.isoformat(),
            "lines": [{"line_no": 1, "sku": shop.skus["milk"], "quantity": 10, "price": 10_000, "amount": 100_000}],
            **extra}
    r = await http.post("/admin/v1/simulate", json=body, headers=operator("marketer"))
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_marketer_publishes_happy_hours_and_confirmed_sales_keep_their_version(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    member = await make_member(shop)
    before = await simulate(http, operator, shop, WEDNESDAY_10_30, membership_id=member.membership_id)
    assert before["result"]["totals"]["accrued_points"] == 30  # Basic 3% of 1 000.00 RUB
    assert before["rules_version"] == 1 and before["draft"] is False

    sold = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                           json=sale_body(shop, [("milk", 10, 10_000)], card=member.card, when=WEDNESDAY_10_30))
    assert sold.status_code == 200, sold.text
    assert sold.json()["rules_version"] == 1 and sold.json()["totals"]["accrued_points"] == 30

    r = await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=operator("marketer"),
                        params={"comment": "happy hours on Wednesdays"})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["published"] is True
    assert r.json()["group"]["rules"][0]["code"] == "happy-hours"

    after = await simulate(http, operator, shop, WEDNESDAY_10_30, card=member.card)
    assert after["result"]["totals"]["accrued_points"] == 60
    assert after["rules_version"] == 2
    assert "happy-hours" in [a["rule"] for a in after["result"]["applied"]]
    fired = [t for t in after["trace"] if t["rule"] == "happy-hours"]
    assert fired and fired[0]["fired"] is True
    out_of_hours = await simulate(http, operator, shop, WEDNESDAY_15_00, card=member.card)
    assert out_of_hours["result"]["totals"]["accrued_points"] == 30
    assert any(t["rule"] == "happy-hours" and not t["fired"] for t in out_of_hours["trace"])

    # the sale confirmed before the change is untouched; a new sale uses the new version
    from loyalty_core.tables import Sale

    old = await Sale.select(Sale.rules_version, Sale.accrued_points).where(Sale.id == sold.json()["sale_id"]).first()
    assert old == {"rules_version": 1, "accrued_points": 30}
    new = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                          json=sale_body(shop, [("milk", 10, 10_000)], card=member.card, when=WEDNESDAY_10_30))
    assert new.json()["rules_version"] == 2 and new.json()["totals"]["accrued_points"] == 60

    versions = (await http.get(rules_url(shop, "/versions"), headers=operator("marketer"))).json()
    assert [(v["version"], v["live"]) for v in versions] == [(2, True), (1, False)]
    assert versions[0]["comment"] == "happy hours on Wednesdays" and versions[0]["created_by"].startswith("marketer")
    first = (await http.get(rules_url(shop, "/versions/1"), headers=operator("support"))).json()
    assert first["document"]["groups"] == [] and first["live"] is False
    problem(await http.get(rules_url(shop, "/versions/9"), headers=operator("marketer")), 404, "not-found")


async def test_validation_errors_name_the_rule_and_the_field_and_nothing_is_written(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    counts = await row_counts()
    body = problem(await http.post(rules_url(shop, "/groups"), json=happy_hours(end=25), headers=operator("marketer")),
                   422, "validation-error")
    assert "rule 'happy-hours': schedule.hours: end 25 is outside 0..24" in body["errors"]

    body = problem(await http.post(rules_url(shop, "/groups"), json=happy_hours(end="noon"), headers=operator("marketer")),
                   422, "validation-error")
    assert any(e.startswith("rule 'happy-hours': schedule.hours") for e in body["errors"]), body

    wrong_stage = happy_hours()
    wrong_stage["stage"] = "discount"
    body = problem(await http.post(rules_url(shop, "/groups"), json=wrong_stage, headers=operator("marketer")),
                   422, "validation-error")
    assert "rule 'happy-hours': effect.kind: 'multiplier' does not belong in a discount group" in body["errors"]

    bad_tier = {"tiers": [{"code": "basic", "name": "Basic", "rank": 1, "threshold_spend_minor": 0, "accrual_bp": 30_000}]}
    body = problem(await http.put(rules_url(shop, "/settings"), json=bad_tier, headers=operator("marketer")),
                   422, "validation-error")
    assert "tier 'basic': accrual_bp: 30000 is outside 0..10000" in body["errors"]

    problem(await http.post(rules_url(shop, "/groups"), json={"name": "no code"}, headers=operator("marketer")),
            422, "validation-error")
    assert await row_counts() == counts


async def test_dry_run_stale_edits_and_the_rule_by_rule_lifecycle(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    marketer = operator("marketer")
    counts = await row_counts()
    r = await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=marketer, params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["published"] is False and r.json()["version"] == 1
    assert await row_counts() == counts

    assert (await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=marketer)).json()["version"] == 2
    problem(await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=marketer), 409, "conflict")
    stale = await http.put(rules_url(shop, "/groups/promo"), json=happy_hours(), headers=marketer,
                           params={"expected_version": 1})
    assert problem(stale, 409, "conflict")["live_version"] == 2

    own_brand = {"code": "own-brand", "name": "Own brand +2%", "effect": {"kind": "percent_points", "bp": 200},
                 "lines": {"own_brand": True}}
    r = await http.post(rules_url(shop, "/groups/promo/rules"), json=own_brand, headers=marketer,
                        params={"expected_version": 2})
    assert r.status_code == 201 and r.json()["version"] == 3 and r.json()["rule"]["code"] == "own-brand"
    r = await http.put(rules_url(shop, "/groups/promo/rules/own-brand"), json={**own_brand, "name": "Own brand +3%",
                       "effect": {"kind": "percent_points", "bp": 300}}, headers=marketer)
    assert r.status_code == 200 and r.json()["rule"]["effect"]["bp"] == 300
    problem(await http.put(rules_url(shop, "/groups/promo/rules/nope"), json=own_brand, headers=marketer),
            422, "validation-error")  # the body names another rule than the path
    problem(await http.delete(rules_url(shop, "/groups/promo/rules/nope"), headers=marketer), 404, "not-found")
    r = await http.delete(rules_url(shop, "/groups/promo/rules/happy-hours"), headers=marketer)
    assert [rule["code"] for rule in r.json()["group"]["rules"]] == ["own-brand"] and r.json()["version"] == 5

    group = (await http.get(rules_url(shop, "/groups/promo"), headers=marketer)).json()
    assert group["rules"][0]["name"] == "Own brand +3%"
    assert (await http.delete(rules_url(shop, "/groups/promo"), headers=marketer)).json()["version"] == 6
    assert (await http.get(rules_url(shop, "/groups"), headers=marketer)).json() == []
    restored = await http.post(rules_url(shop, "/versions/3/restore"), headers=marketer)
    assert restored.status_code == 201 and restored.json()["version"] == 7
    live = (await http.get(rules_url(shop), headers=marketer)).json()
    assert live["version"] == 7 and [r["code"] for r in live["document"]["groups"][0]["rules"]] == ["happy-hours", "own-brand"]


async def test_roles_and_keys(http: httpx.AsyncClient, shop: Shop, operator: Operators) -> None:
    counts = await row_counts()
    for role in ("support", "import"):
        body = problem(await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=operator(role)),
                       403, "forbidden")
        assert "marketer" in body["detail"]
    assert (await http.get(rules_url(shop, "/groups"), headers=operator("support"))).status_code == 200
    problem(await http.get(rules_url(shop, "/groups"), headers=operator("import")), 403, "forbidden")

    key = operator.keys["marketer"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    for headers in ({"Authorization": f"Bearer {tampered}"}, {"Authorization": "Bearer ok_unknown"}, {},
                    {"Authorization": f"Basic {key}"}, shop.headers):
        problem(await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=headers), 401, "unauthorized")
    assert await row_counts() == counts

    r = await http.post(rules_url(shop, "/groups"), json=happy_hours(), headers=operator("admin"))
    assert r.status_code == 201, r.text
