"""A marketer runs a coupon campaign: a series, generated codes, a rule that needs one, the till uses them once."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import Operators, problem, row_counts
from tests.factories import Shop, count_rows, make_member, sale_body, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


def coupon_rule(series: list[str] | None = None, codes: list[str] | None = None) -> dict:
    return {
        "code": unique("coupons"), "name": "Coupons", "stage": "discount",
        "rules": [{"code": unique("ten-off"), "name": "10% with a coupon", "effect": {"kind": "percent_discount", "bp": 1000},
                   "target": {"coupon_series": series or [], "coupon_codes": codes or []}}],
    }


async def test_generated_codes_are_used_once_at_the_till_then_refused(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    marketer, series = operator("marketer"), unique("spring")
    r = await http.post("/admin/v1/coupons/series", headers=marketer,
                        json={"code": series, "name": "Spring 10%", "program": shop.program_code})
    assert r.status_code == 201, r.text
    assert r.json()["personal"] is True and r.json()["codes"] == 0
    r = await http.post(f"/admin/v1/programs/{shop.program_code}/rules/groups", json=coupon_rule([series]), headers=marketer)
    assert r.status_code == 201, r.text

    generated = await http.post(f"/admin/v1/coupons/series/{series}/codes", json={"count": 3, "prefix": "sp"}, headers=marketer)
    assert generated.status_code == 201, generated.text
    codes = generated.json()["codes"]
    assert len(set(codes)) == 3 and all(c.startswith("SP") for c in codes)
    listed = (await http.get(f"/admin/v1/coupons/series/{series}/codes", headers=operator("support"))).json()
    assert sorted(c["code"] for c in listed["items"]) == sorted(codes) and listed["next_cursor"] is None
    first_page = (await http.get(f"/admin/v1/coupons/series/{series}/codes", params={"limit": 2}, headers=marketer)).json()
    assert len(first_page["items"]) == 2 and first_page["next_cursor"]

    member = await make_member(shop)
    body = sale_body(shop, [("milk", 2, 10_000)], card=member.card, coupons=[codes[0].lower()])
    used = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert used.status_code == 200, used.text
    assert used.json()["coupons"] == [{"code": codes[0], "status": "applied", "reason": None}]
    assert used.json()["totals"]["discount"] == 2_000

    second = sale_body(shop, [("milk", 2, 10_000)], card=member.card, coupons=[codes[0]])
    calc = await http.post("/pos/v1/sales/calculate", headers=shop.headers, json=second)
    assert calc.json()["coupons"][0]["status"] == "rejected" and calc.json()["totals"]["discount"] == 0
    assert "used" in calc.json()["coupons"][0]["reason"]
    # a confirm never goes through with a coupon the shopper did not get: the till calculates again
    sales_before = await count_rows("sale", "membership = {}", member.membership_id)
    again = problem(await http.post("/pos/v1/sales/confirm", headers=shop.headers, json=second), 422, "coupon-invalid")
    assert again["coupons"][0]["code"] == codes[0] and "used" in again["coupons"][0]["reason"]
    assert await count_rows("sale", "membership = {}", member.membership_id) == sales_before
    used_codes = (await http.get(f"/admin/v1/coupons/series/{series}/codes", params={"status": "used"},
                                 headers=marketer)).json()["items"]
    assert [c["code"] for c in used_codes] == [codes[0]]
    assert (await http.get(f"/admin/v1/coupons/series/{series}", headers=marketer)).json()["used"] == 1


async def test_a_shared_promo_code_and_a_personal_coupon_issued_to_a_member(
    http: httpx.AsyncClient, shop: Shop, operator: Operators
) -> None:
    marketer, series, promo = operator("marketer"), unique("promo"), unique("SALE").replace("-", "")
    r = await http.post("/admin/v1/coupons/series", headers=marketer, json={
        "code": series, "name": "Shared", "personal": False, "promo_code": promo, "max_uses_per_code": 0,
        "max_uses_per_member": 0, "program": shop.program_code})
    assert r.status_code == 201 and r.json()["promo_code"] == promo.upper()
    await http.post(f"/admin/v1/programs/{shop.program_code}/rules/groups", json=coupon_rule(codes=[promo.upper()]),
                    headers=marketer)
    for shopper in (await make_member(shop), await make_member(shop)):
        sold = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                               json=sale_body(shop, [("milk", 1, 10_000)], card=shopper.card, coupons=[promo]))
        assert sold.json()["coupons"][0]["status"] == "applied", sold.text
        assert sold.json()["totals"]["discount"] == 1_000
    problem(await http.post(f"/admin/v1/coupons/series/{series}/codes", json={"count": 1}, headers=marketer), 409, "conflict")

    personal = unique("gift")
    await http.post("/admin/v1/coupons/series", headers=marketer, json={"code": personal, "name": "Gift", "program": shop.program_code})
    member = await make_member(shop)
    notes = await count_rows("notification", "customer = {} AND kind = 'coupon_issued'", member.customer_id)
    issued = await http.post(f"/admin/v1/coupons/series/{personal}/issue", json={"membership_id": member.membership_id},
                             headers=operator("support"))
    assert issued.status_code == 201, issued.text
    assert issued.json()["membership_id"] == member.membership_id and issued.json()["status"] == "active"
    assert await count_rows("notification", "customer = {} AND kind = 'coupon_issued'", member.customer_id) == notes + 1


async def test_bad_coupon_requests_write_nothing(http: httpx.AsyncClient, shop: Shop, operator: Operators) -> None:
    marketer, series = operator("marketer"), unique("bad")
    await http.post("/admin/v1/coupons/series", headers=marketer, json={"code": series, "name": "B", "program": shop.program_code})
    counts = await row_counts()
    problem(await http.post("/admin/v1/coupons/series", headers=marketer, json={"code": series, "name": "again"}), 409, "conflict")
    problem(await http.post("/admin/v1/coupons/series", headers=marketer, json={"code": "x", "name": "shared", "personal": False}),
            422, "validation-error")
    problem(await http.post("/admin/v1/coupons/series", headers=marketer, json={"code": "bad code!", "name": "n"}),
            422, "validation-error")
    problem(await http.post(f"/admin/v1/coupons/series/{series}/codes", json={"count": 0}, headers=marketer), 422, "validation-error")
    problem(await http.post("/admin/v1/coupons/series/nope/codes", json={"count": 1}, headers=marketer), 404, "not-found")
    problem(await http.post(f"/admin/v1/coupons/series/{series}/issue", json={"membership_id": 999_999_999}, headers=marketer),
            404, "not-found")
    problem(await http.post(f"/admin/v1/coupons/series/{series}/codes", json={"count": 1}, headers=operator("support")),
            403, "forbidden")
    assert await row_counts() == counts
