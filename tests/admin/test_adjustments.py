"""The call centre adjusts points and answers a shopper's question from the member's whole history."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.admin.conftest import Operators, problem, row_counts
from tests.factories import Shop, account_balance, count_rows, make_member, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


def url(membership_id: int | None) -> str:
    return f"/admin/v1/members/{membership_id}/adjustments"


async def test_accrual_at_once_or_later_and_a_write_off_from_the_earliest_expiring_lots(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    support = operator("support")
    member = await make_member(shop, points=100, expires_in_days=300)
    passes = await count_rows("notification", "card = {} AND kind = 'pass_update'", member.card_id)

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    r = await http.post(url(member.membership_id), headers=support,
                        json={"points": 50, "reason": "apology for a queue", "expires_at": soon})
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "active" and r.json()["balance"] == {"active": 150, "pending": 0}
    assert r.json()["operator"].startswith("support")

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    r = await http.post(url(member.membership_id), headers=support, json={"points": 20, "reason": "gift", "activates_at": later})
    assert r.json()["state"] == "pending" and r.json()["balance"] == {"active": 150, "pending": 20}
    assert r.json()["expires_at"] > later  # the program's expiry period, counted from activation

    r = await http.post(url(member.membership_id), headers=support, json={"points": -70, "reason": "fraudulent receipt"})
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "written_off" and r.json()["balance"] == {"active": 80, "pending": 20}
    from loyalty_core.tables import PointLot

    lots = await PointLot.select(PointLot.source, PointLot.amount, PointLot.remaining).where(
        PointLot.account == member.account_id).order_by(PointLot.id)
    # the 50 expiring in 30 days went first, then 20 of the 100 expiring in 300 days
    assert [(lot["source"], lot["remaining"]) for lot in lots] == [("import", 80), ("adjust", 0), ("adjust", 20)]
    entries = await count_rows("ledger_entry", "account = {} AND kind = 'adjust' AND reason = 'fraudulent receipt'",
                               member.account_id)
    assert entries == 2  # one per lot it touched
    assert await count_rows("notification", "card = {} AND kind = 'pass_update'", member.card_id) == passes + 3
    assert await count_rows("notification", "customer = {} AND kind = 'points_adjusted'", member.customer_id) == 3

    counts = await row_counts()
    refused = problem(await http.post(url(member.membership_id), headers=support,
                                      json={"points": -81, "reason": "too much"}), 409, "insufficient-points")
    assert refused["available"] == 80
    for bad in ({"points": 5}, {"points": 5, "reason": ""}, {"points": 0, "reason": "zero"},
                {"points": -5, "reason": "x", "expires_at": soon}, {"points": 5, "reason": "past", "expires_at": "2020-01-01T00:00:00Z"},
                {"points": 5, "reason": "x", "extra": 1}):
        problem(await http.post(url(member.membership_id), headers=support, json=bad), 422, "validation-error")
    problem(await http.post(url(999_999_999), headers=support, json={"points": 5, "reason": "x"}), 404, "not-found")
    problem(await http.post(url(member.membership_id), headers=operator("marketer"), json={"points": 5, "reason": "x"}),
            403, "forbidden")
    assert await row_counts() == counts
    assert await account_balance(member.account_id) == (80, 20)


async def test_an_adjustment_is_applied_once_per_idempotency_key(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    member = await make_member(shop)
    headers = {**operator("support"), "Idempotency-Key": "ticket-4711"}
    first = await http.post(url(member.membership_id), headers=headers, json={"points": 30, "reason": "ticket 4711"})
    again = await http.post(url(member.membership_id), headers=headers, json={"points": 30, "reason": "ticket 4711"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert await account_balance(member.account_id) == (30, 0)
    problem(await http.post(url(member.membership_id), headers=headers, json={"points": 31, "reason": "ticket 4711"}),
            409, "idempotency-conflict")
    by_body = {"points": 5, "reason": "ticket 4712", "operation_id": "ticket-4712"}
    for _ in range(2):
        assert (await http.post(url(member.membership_id), headers=operator("support"), json=by_body)).status_code == 201
    assert await account_balance(member.account_id) == (35, 0)


async def test_a_mass_adjustment_is_all_or_nothing_and_names_every_bad_member(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    rich, poor, other = await make_member(shop, points=100), await make_member(shop, points=5), await make_member(shop, points=20)
    ids = [rich.membership_id, poor.membership_id, other.membership_id]
    before = await row_counts()
    for bad_ids, named in (([999_999_999], ["999999999"]), ([2_147_483_648], ["2147483648"]),
                           ([999_999_999, 2_147_483_648], ["999999999", "2147483648"])):
        body = {"membership_ids": [*ids, *bad_ids], "points": -1, "reason": "storm closure", "operation_id": "mass-0"}
        refused = problem(await http.post("/admin/v1/adjustments/mass", headers=operator("support"), json=body),
                          422, "validation-error")
        assert [item["member"] for item in refused["failed"]] == named
        assert all(item["problem"]["type"].endswith("/not-found") for item in refused["failed"])
        assert all(name in refused["detail"] for name in named)
    assert await row_counts() == before

    body = {"membership_ids": ids, "points": -10, "reason": "expired promo clawback", "operation_id": "mass-1"}
    refused = problem(await http.post("/admin/v1/adjustments/mass", headers=operator("support"), json=body),
                      422, "validation-error")
    assert [(item["member"], item["problem"]["type"].rsplit("/", 1)[1]) for item in refused["failed"]] == [
        (str(poor.membership_id), "insufficient-points")]
    assert await row_counts() == before
    assert [await account_balance(m.account_id) for m in (rich, poor, other)] == [(100, 0), (5, 0), (20, 0)]

    body["membership_ids"] = [rich.membership_id, other.membership_id]  # fixed: sent again whole
    r = await http.post("/admin/v1/adjustments/mass", headers=operator("support"), json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["done"], out["failed"]) == (2, 0)
    assert [x["membership_id"] for x in out["results"]] == [rich.membership_id, other.membership_id]
    replay = (await http.post("/admin/v1/adjustments/mass", headers=operator("support"), json=body)).json()
    assert replay["results"] == out["results"]
    assert await account_balance(rich.account_id) == (90, 0) and await account_balance(other.account_id) == (10, 0)

    by_card = {"card_numbers": [rich.card, "2999999999990"], "points": 15, "reason": "storm closure"}
    refused = problem(await http.post("/admin/v1/adjustments/mass", headers=operator("admin"), json=by_card),
                      422, "validation-error")
    assert refused["failed"][0]["member"] == "2999999999990"
    assert refused["failed"][0]["problem"]["type"].endswith("/card-not-found")
    assert await account_balance(rich.account_id) == (90, 0)
    by_card["card_numbers"] = [rich.card]
    assert (await http.post("/admin/v1/adjustments/mass", headers=operator("admin"), json=by_card)).status_code == 200
    assert await account_balance(rich.account_id) == (105, 0)
    problem(await http.post("/admin/v1/adjustments/mass", headers=operator("support"),
                            json={"points": 1, "reason": "x"}), 422, "validation-error")


async def test_the_members_whole_history(http: httpx.AsyncClient, shop: Shop, operator: Operators) -> None:
    member = await make_member(shop, points=200)
    receipt = sale_body(shop, [("milk", 10, 10_000), ("bread", 1, 4_990)], card=member.card, redeem=50)
    sold = await http.post("/pos/v1/sales/confirm", headers=shop.headers, json=receipt)
    assert sold.status_code == 200, sold.text
    sale_id = sold.json()["sale_id"]
    r = await http.post(f"/pos/v1/sales/{sale_id}/returns", headers=shop.headers,
                        json={"return_id": "ret-1", "lines": [{"line_no": 2, "quantity": 1}]})
    assert r.status_code == 200, r.text
    await http.post(url(member.membership_id), headers=operator("support"), json={"points": 7, "reason": "sorry"})

    history = await http.get(f"/admin/v1/members/{member.membership_id}/history", headers=operator("support"))
    assert history.status_code == 200, history.text
    h = history.json()
    assert h["member"]["customer"]["phone"] == member.phone and h["member"]["tier"] == "basic"
    assert [c["number"] for c in h["cards"]] == [member.card] and h["cards"][0]["status"] == "active"
    kinds = [(e["kind"], e["reason"]) for e in h["ledger"]["items"]]
    assert kinds[0] == ("adjust", "sorry") and ("import", "test grant") in kinds
    redeem = next(e for e in h["ledger"]["items"] if e["kind"] == "redeem")
    assert redeem["sale_id"] == sale_id and redeem["receipt_id"] == receipt["receipt_id"]
    assert any(e["return_id"] == "ret-1" for e in h["ledger"]["items"])
    sale = h["sales"]["items"][0]
    assert sale["id"] == sale_id and [ln["line_no"] for ln in sale["lines"]] == [1, 2]
    assert sale["lines"][1]["returned_quantity"] == 1.0 and sale["returns"][0]["return_id"] == "ret-1"
    assert sale["redeemed_points"] == 50 and sale["applied"]

    page = (await http.get(f"/admin/v1/members/{member.membership_id}/history/ledger", params={"limit": 2},
                           headers=operator("support"))).json()
    rest = (await http.get(f"/admin/v1/members/{member.membership_id}/history/ledger",
                           params={"limit": 100, "cursor": page["next_cursor"]}, headers=operator("support"))).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [e["id"] for e in h["ledger"]["items"]]
    problem(await http.get(f"/admin/v1/members/{member.membership_id}/history/sales", params={"cursor": "junk"},
                           headers=operator("support")), 422, "validation-error")
    problem(await http.get(f"/admin/v1/members/{member.membership_id}/history", headers=operator("marketer")),
            403, "forbidden")
    problem(await http.get("/admin/v1/members/999999999/history", headers=operator("support")), 404, "not-found")
