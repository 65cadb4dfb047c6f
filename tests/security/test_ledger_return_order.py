"""Abuse: a till (or a shopper with a friendly cashier) cannot make points by choosing the order of returns.
Buy, spend what the purchase earned, return the purchase, then return the spending sale: the card ends
where it started, over real HTTP; the points the first return could not take back were a recorded debt."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import Shop, basic_rules, make_member, make_shop, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


async def test_returning_the_earning_sale_before_the_spending_one_does_not_mint_points(
    http: httpx.AsyncClient, db_pool: None
) -> None:
    shop: Shop = await make_shop(basic_rules(pending_days=0))  # points spendable at once: no clock to move
    member = await make_member(shop, 500)
    earn = await _ok(await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                                     json=sale_body(shop, [("cheese", 3, 149_990)], card=member.card)))
    assert earn["totals"]["accrued_points"] == 134
    spend = await _ok(await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                                      json=sale_body(shop, [("cheese", 2, 149_990)], card=member.card, redeem=634)))
    assert spend["totals"]["redeemed_points"] == 634
    earned_by_spend = spend["totals"]["accrued_points"]
    first = await _ok(await http.post(f"/pos/v1/sales/{earn['sale_id']}/returns", headers=shop.headers,
                                      json={"return_id": "A", "lines": [{"line_no": 1, "quantity": 3}]}))
    # the spend's own points were taken first; what is still missing is owed, not forgotten
    assert first["clawed_back_points"] == earned_by_spend
    assert first["unrecovered_points"] == 134 - earned_by_spend
    second = await _ok(await http.post(f"/pos/v1/sales/{spend['sale_id']}/returns", headers=shop.headers,
                                       json={"return_id": "B", "lines": [{"line_no": 1, "quantity": 2}]}))
    assert second["balance_after"] == {"active": 500, "pending": 0}
    identified = await _ok(await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": member.card}))
    assert identified["balance"]["active"] == 500
