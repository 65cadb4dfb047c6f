"""Coupons at the till: a single-use code goes through once even when two tills race for it, a shared
promo code keeps to its per-shopper limit, and a cancelled sale gives its coupon back."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
import pytest

from loyalty_core.engine import ProgramRules
from loyalty_core.coupons import codes as coupons
from loyalty_core.setup import entities as setup
from loyalty_core.tables import Coupon, CouponSeries
from tests.factories import Shop, basic_rules, count_rows, make_member, make_shop, sale_body, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def coupon_shop(series: str, *, personal: bool, per_member: int, per_code: int) -> Shop:
    rules = msgspec.convert(
        {**msgspec.to_builtins(basic_rules()), "groups": [{
            "code": "coupons", "name": "Coupons", "stage": "discount",
            "rules": [{"code": "ten-off", "name": "10% with a coupon", "effect": {"kind": "percent_discount", "bp": 1000},
                       "target": {"coupon_series": [series]}}],
        }]},
        ProgramRules,
    )
    shop = await make_shop(rules)
    await CouponSeries.insert(CouponSeries(program=shop.program_id, code=series, name="Ten off", personal=personal,
                                           max_uses_per_code=per_code, max_uses_per_member=per_member))
    return shop


def problem_type(response: httpx.Response) -> str:
    return response.json()["type"].rsplit("/", 1)[-1]


async def test_two_tills_racing_for_one_single_use_code(http: httpx.AsyncClient, db_pool: None) -> None:
    series = unique("single")
    shop = await coupon_shop(series, personal=True, per_member=0, per_code=1)
    [code] = await coupons.generate_codes(series, 1)
    keys = [shop.key, (await setup.create_till_key(shop.store_code, "till-2")).key]
    shoppers = [await make_member(shop), await make_member(shop)]
    responses = await asyncio.gather(*(
        http.post("/pos/v1/sales/confirm", headers={"Authorization": f"Bearer {key}"},
                  json=sale_body(shop, [("cheese", 1, 100_000)], card=who.card, coupons=[code]))
        for key, who in zip(keys, shoppers)
    ))
    assert sorted(r.status_code for r in responses) == [200, 422], [r.text for r in responses]
    assert problem_type(next(r for r in responses if r.status_code == 422)) == "coupon-invalid"
    row = await Coupon.select(Coupon.uses, Coupon.status).where(Coupon.code == code).first()
    assert row == {"uses": 1, "status": "used"}
    assert await count_rows("coupon_use", "coupon = (SELECT id FROM coupon WHERE code = {})", code) == 1


async def test_a_shared_promo_code_once_per_shopper_and_back_after_a_cancel(http: httpx.AsyncClient, db_pool: None) -> None:
    series = unique("promo")
    shop = await coupon_shop(series, personal=False, per_member=1, per_code=0)
    promo = unique("SALE").replace("-", "").upper()
    series_id = (await CouponSeries.select(CouponSeries.id).where(CouponSeries.code == series).first())["id"]
    await Coupon.insert(Coupon(series=series_id, code=promo))
    anna, boris = await make_member(shop), await make_member(shop)

    first = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                            json=sale_body(shop, [("cheese", 1, 100_000)], card=anna.card, coupons=[promo]))
    assert first.status_code == 200 and first.json()["totals"]["discount"] == 10_000, first.text
    again = await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                            json=sale_body(shop, [("cheese", 1, 100_000)], card=anna.card, coupons=[promo]))
    assert again.json()["coupons"][0] == {"code": promo, "status": "rejected", "reason": "coupon already used by this member"}
    other = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                            json=sale_body(shop, [("cheese", 1, 100_000)], card=boris.card, coupons=[promo]))
    assert other.status_code == 200 and other.json()["coupons"][0]["status"] == "applied"

    cancelled = await http.post(f"/pos/v1/sales/{first.json()['sale_id']}/cancel", headers=shop.headers)
    assert cancelled.status_code == 200, cancelled.text
    back = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                           json=sale_body(shop, [("cheese", 1, 100_000)], card=anna.card, coupons=[promo]))
    assert back.status_code == 200 and back.json()["coupons"][0]["status"] == "applied", back.text
    assert (await Coupon.select(Coupon.uses).where(Coupon.code == promo).first())["uses"] == 2
