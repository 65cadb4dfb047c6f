"""Simulate before release: existing or described members, live or draft rules, the trace, nothing written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.admin.conftest import Operators, problem, row_counts
from tests.admin.test_rules_admin import WEDNESDAY_10_30, happy_hours
from tests.factories import Shop, make_member

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIRTHDAY_X10 = {
    "code": "birthday", "name": "Birthday", "stage": "accrual",
    "rules": [{"code": "birthday-x10", "name": "Birthday x10", "effect": {"kind": "multiplier", "factor_bp": 100_000},
               "target": {"birthday_window_days": 0, "registered_only": True}}],
}


def basket(shop: Shop, **extra: Any) -> dict[str, Any]:
    return {
        "program": shop.program_code, "occurred_at": WEDNESDAY_10_30.isoformat(), "store": shop.store_code,
        "lines": [
            {"line_no": 1, "sku": shop.skus["milk"], "quantity": 2, "price": 10_000, "amount": 20_000},
            {"line_no": 2, "sku": shop.skus["wine"], "quantity": 1, "price": 99_900, "amount": 99_900},
        ],
        **extra,
    }


async def test_a_described_gold_member_on_her_birthday_under_a_draft_group(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    counts = await row_counts()
    member = {"tier": "gold", "birth_date": f"1992-{WEDNESDAY_10_30:%m-%d}", "balance": 500, "segments": ["vip"]}
    live = await http.post("/admin/v1/simulate", json=basket(shop, member=member, redeem_points=20),
                           headers=operator("marketer"))
    assert live.status_code == 200, live.text
    result = live.json()["result"]
    assert result["totals"]["accrued_points"] == 12  # Gold 7% of 180.00 RUB paid with money; wine earns nothing
    assert result["totals"]["redeemed_points"] == 20
    assert result["balance_after"] == {"active": 480, "pending": 12}
    assert live.json()["member"]["tier_code"] == "gold"

    draft = await http.post("/admin/v1/simulate", json=basket(shop, member=member, group=BIRTHDAY_X10),
                            headers=operator("support"))
    assert draft.status_code == 200, draft.text
    body = draft.json()
    assert body["draft"] is True and body["rules_version"] is None
    assert body["result"]["totals"]["accrued_points"] == 140  # x10 of Gold 7% on 200.00 RUB
    birthday = next(a for a in body["applied"] if a["rule"] == "birthday-x10")
    assert birthday["details"] and birthday["explanation"]
    assert any(t["rule"] == "birthday-x10" and t["fired"] for t in body["trace"])

    not_her_birthday = {**member, "birth_date": f"1992-{WEDNESDAY_10_30.month % 12 + 1:02d}-01"}
    other = await http.post("/admin/v1/simulate", json=basket(shop, member=not_her_birthday, group=BIRTHDAY_X10),
                            headers=operator("marketer"))
    assert other.json()["result"]["totals"]["accrued_points"] == 14
    assert any(t["rule"] == "birthday-x10" and not t["fired"] for t in other.json()["trace"])
    assert await row_counts() == counts


async def test_an_existing_member_by_card_or_membership_and_a_whole_draft_document(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    member = await make_member(shop, points=300)
    counts = await row_counts()
    by_card = await http.post("/admin/v1/simulate", json=basket(shop, card=member.card, redeem_points=50),
                              headers=operator("marketer"))
    assert by_card.status_code == 200, by_card.text
    assert by_card.json()["result"]["balance_after"]["active"] == 250
    assert by_card.json()["member"]["membership_id"] == str(member.membership_id)

    live = (await http.get(f"/admin/v1/programs/{shop.program_code}/rules", headers=operator("marketer"))).json()
    document = {**live["document"], "groups": [happy_hours()]}
    by_id = await http.post("/admin/v1/simulate", json=basket(shop, membership_id=member.membership_id, rules=document),
                            headers=operator("marketer"))
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["result"]["totals"]["accrued_points"] == 12  # Basic 3% x2 on 200.00 RUB

    problem(await http.post("/admin/v1/simulate", json=basket(shop, card=member.card, redeem_points=301),
                            headers=operator("marketer")), 409, "insufficient-points")
    problem(await http.post("/admin/v1/simulate", json=basket(shop, card=member.card, redeem_points=300),
                            headers=operator("marketer")), 409, "redeem-limit")
    bad = problem(await http.post("/admin/v1/simulate", json=basket(shop, group=happy_hours(end=30)),
                                  headers=operator("marketer")), 422, "validation-error")
    assert "rule 'happy-hours': schedule.hours: end 30 is outside 0..24" in bad["errors"]
    problem(await http.post("/admin/v1/simulate", json=basket(shop, card=member.card, membership_id=member.membership_id),
                            headers=operator("marketer")), 422, "validation-error")
    problem(await http.post("/admin/v1/simulate", json=basket(shop, card="2000000000000"), headers=operator("marketer")),
            404, "card-not-found")
    problem(await http.post("/admin/v1/simulate", json=basket(shop, store="nowhere"), headers=operator("marketer")),
            404, "not-found")
    problem(await http.post("/admin/v1/simulate", json={"lines": []}, headers=operator("marketer")), 422, "validation-error")
    problem(await http.post("/admin/v1/simulate", json=basket(shop), headers=operator("import")), 403, "forbidden")
    assert await row_counts() == counts
