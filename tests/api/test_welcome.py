"""A new member gets what the program's event rules promise for registering: points and a coupon."""

from __future__ import annotations

import msgspec

from loyalty_core.engine.effects import EventBonus
from loyalty_core.engine.program import Rule, RuleGroup
from loyalty_core.tables import CouponSeries
from tests.factories import basic_rules, make_shop, unique
from tests.identity.shopper import Shopper, new_phone


async def test_welcome_points_and_coupon_from_the_rules(http, db_pool) -> None:
    series = unique("welcome")
    welcome = RuleGroup(code="events", name="Events", stage="event", rules=[
        Rule(code="welcome", name="Welcome bonus", effect=EventBonus(event="registered", points=150, issue_coupon=series)),
    ])
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[welcome]))
    await CouponSeries.insert(CouponSeries(program=shop.program_id, code=series, name="Welcome -10%"))
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in()
    balance = (await shopper.get("/balance")).json()
    assert balance["active"] == 150 and balance["expiring"][0]["points"] == 150
    [entry] = (await shopper.get("/history")).json()["items"]
    assert entry["kind"] == "accrue" and "Welcome bonus" in entry["reason"]
    [coupon] = (await shopper.get("/coupons")).json()
    assert coupon["series"] == series and coupon["status"] == "active"
    # logging in again is not registering again
    await Shopper(http=http, to=shopper.to, program=shop.program_code).log_in()
    assert (await shopper.get("/balance")).json()["active"] == 150


async def test_offers_list_the_rules_the_member_can_get(http, db_pool) -> None:
    import datetime as dt

    from loyalty_core.engine.effects import PercentDiscount
    from loyalty_core.engine.targeting import Schedule, Targeting

    today = dt.date.today()
    promo = RuleGroup(code="promo", name="Promotions", stage="discount", rules=[
        Rule(code="all", name="-5% on everything", effect=PercentDiscount(bp=500)),
        Rule(code="gold", name="Gold: -10%", effect=PercentDiscount(bp=1000), target=Targeting(tiers=["gold"])),
        Rule(code="over", name="Last week's sale", effect=PercentDiscount(bp=500),
             schedule=Schedule(valid_to=today - dt.timedelta(days=7))),
        Rule(code="weekend", name="Weekend -7%", effect=PercentDiscount(bp=700),
             schedule=Schedule(weekdays=[6, 7], valid_to=today + dt.timedelta(days=30))),
    ])
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[promo]))
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in()
    offers = (await shopper.get("/offers")).json()
    assert [(o["rule"], o["weekdays"]) for o in offers] == [("all", []), ("weekend", [6, 7])]
    assert offers[1]["valid_to"] == (today + dt.timedelta(days=30)).isoformat()
