"""Member events the worker makes happen: a birthday bonus on the day, a bonus for coming back after a quiet spell,
the first purchase (and the friend who referred them), a warning when the tier is at risk. Each happens once per
member and occurrence, however often or concurrently the job runs, and pays only through the ledger."""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec

from loyalty_core import db
from loyalty_core.engine.effects import EventBonus
from loyalty_core.engine.program import Rule, RuleGroup
from loyalty_core.marketing.events import run_member_events
from tests.factories import account_balance, basic_rules, make_shop, sale_body
from tests.marketing.helpers import UTC, member_with

NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
DAY = dt.timedelta(days=1)


def events_shop(*rules: Rule, **settings: object):
    group = RuleGroup(code="events", name="Events", stage="event", rules=list(rules))
    return make_shop(msgspec.structs.replace(basic_rules(**settings), groups=[group]))


async def lots_of(account_id: int | None) -> list[tuple[int, str, dt.datetime | None]]:
    rows = await db.fetch("SELECT amount, source, expires_at FROM point_lot WHERE account = $1 ORDER BY id", account_id)
    return [(r["amount"], r["source"], r["expires_at"]) for r in rows]


async def messages_of(customer_id: int | None, kind: str) -> list[dict]:
    rows = await db.fetch("SELECT payload::text AS p FROM notification WHERE customer = $1 AND kind = $2 ORDER BY id",
                          customer_id, kind)
    return [msgspec.json.decode(r["p"]) for r in rows]


async def test_a_birthday_bonus_on_the_day_burns_after_its_days(db_pool) -> None:
    shop = await events_shop(Rule(code="bday", name="Happy birthday",
                                  effect=EventBonus(event="birthday", points=300, valid_days=14)))
    born_today = await member_with(shop, birth_date=dt.date(1990, 11, 29))
    born_tomorrow = await member_with(shop, birth_date=dt.date(1990, 11, 30))
    just_told_us = await member_with(shop, birth_date=dt.date(1991, 11, 29))
    await db.fetch("UPDATE customer SET birth_date_set_at = $2 WHERE id = $1", just_told_us.customer_id, NOW - DAY)

    report = await run_member_events(NOW)

    assert report.birthdays >= 1
    assert await lots_of(born_today.account_id) == [(300, "event", NOW + 14 * DAY)]
    assert await account_balance(born_today.account_id) == (300, 0)
    [message] = await messages_of(born_today.customer_id, "event_bonus")
    assert message == {"points": 300, "event": "birthday", "rule": "bday", "expires_on": "2026-12-13"}
    assert await lots_of(born_tomorrow.account_id) == []
    assert await lots_of(just_told_us.account_id) == []  # no "birthday on demand"
    # later the same day, and the day after: nothing more; a year later: again
    await run_member_events(NOW + dt.timedelta(hours=5))
    await run_member_events(NOW + DAY)
    assert len(await lots_of(born_today.account_id)) == 1
    assert len(await lots_of(born_tomorrow.account_id)) == 1
    await run_member_events(NOW + 365 * DAY)
    assert [lot[0] for lot in await lots_of(born_today.account_id)] == [300, 300]


async def test_a_quiet_member_is_welcomed_back_once_per_quiet_spell(db_pool) -> None:
    shop = await events_shop(Rule(code="back", name="We miss you", effect=EventBonus(event="inactive", points=200)),
                             reactivation_after_days=60)
    quiet = await member_with(shop, last_purchase=NOW - 61 * DAY, purchases=4)
    recent = await member_with(shop, last_purchase=NOW - 30 * DAY, purchases=4)
    long_gone = await member_with(shop, last_purchase=NOW - 400 * DAY, purchases=1)  # before the catch-up window

    await run_member_events(NOW)
    await run_member_events(NOW + DAY)

    assert [lot[0] for lot in await lots_of(quiet.account_id)] == [200]
    assert await lots_of(recent.account_id) == [] and await lots_of(long_gone.account_id) == []
    rows = await db.fetch("SELECT kind, points FROM member_event WHERE membership = $1", quiet.membership_id)
    assert [(r["kind"], r["points"]) for r in rows] == [("inactive", 200)]
    # the member comes back, then goes quiet again: a new spell, a new bonus
    await db.fetch("UPDATE membership SET last_purchase_at = $2 WHERE id = $1", quiet.membership_id, NOW + DAY)
    await run_member_events(NOW + 62 * DAY)
    assert [lot[0] for lot in await lots_of(quiet.account_id)] == [200, 200]


async def test_the_friends_first_purchase_rewards_both_once(http, db_pool) -> None:
    shop = await events_shop(Rule(code="friend", name="Bring a friend",
                                  effect=EventBonus(event="first_purchase", points=100, referrer_points=300)))
    referrer = await member_with(shop)
    friend = await member_with(shop)
    await db.fetch("UPDATE membership SET referred_by = $2 WHERE id = $1", friend.membership_id, referrer.membership_id)
    now = dt.datetime.now(UTC)
    assert (await run_member_events(now)).first_purchases == 0  # signing up earns the referrer nothing

    response = await http.post("/pos/v1/sales/confirm", json=sale_body(shop, [("bread", 1, 4_990)], card=friend.card),
                               headers=shop.headers)
    assert response.status_code == 200, response.text
    report = await run_member_events(now + dt.timedelta(minutes=1))
    await run_member_events(now + dt.timedelta(minutes=2))

    assert (report.first_purchases, report.referrers_rewarded) == (1, 1)
    assert [lot[:2] for lot in await lots_of(referrer.account_id)] == [(300, "event")]
    assert (100, "event") in [lot[:2] for lot in await lots_of(friend.account_id)]
    # the friend's second purchase is no first purchase
    response = await http.post("/pos/v1/sales/confirm", json=sale_body(shop, [("bread", 1, 4_990)], card=friend.card),
                               headers=shop.headers)
    await run_member_events(now + dt.timedelta(minutes=3))
    assert len(await lots_of(referrer.account_id)) == 1


async def test_repeated_and_concurrent_runs_pay_once(db_pool) -> None:
    shop = await events_shop(Rule(code="bday", name="Happy birthday", effect=EventBonus(event="birthday", points=50)))
    members = [await member_with(shop, birth_date=dt.date(1980 + i, 11, 29)) for i in range(10)]

    await asyncio.gather(*(run_member_events(NOW) for _ in range(4)))
    await run_member_events(NOW)

    for member in members:
        assert await account_balance(member.account_id) == (50, 0)
    events = await db.fetch("SELECT count(*) AS n FROM member_event WHERE program = $1", shop.program_id)
    assert events[0]["n"] == 10


async def test_a_member_whose_tier_is_at_risk_is_told_once_a_month(db_pool) -> None:
    shop = await events_shop(tier_at_risk_days=30)
    # gold by spend, but none of that spend is still in the window a month from now
    gold = await member_with(shop, tier="gold", spend=10_000_000, last_purchase=NOW - 340 * DAY)
    basic = await member_with(shop, tier="basic", spend=0)

    await run_member_events(NOW)
    await run_member_events(NOW + DAY)

    [message] = await messages_of(gold.customer_id, "tier_at_risk")
    assert message == {"tier": "gold", "name": "Gold", "spend_needed": 10_000_000, "by": "2026-12-29"}
    assert await messages_of(basic.customer_id, "tier_at_risk") == []
    await run_member_events(NOW + 10 * DAY)  # December: a new month, a new reminder
    assert len(await messages_of(gold.customer_id, "tier_at_risk")) == 2


def test_what_the_shoppers_phone_says() -> None:
    from backend.push.messages import render

    def body(kind: str, payload: dict, locale: str = "ru") -> str:
        message = render(kind, payload, locale, notification_id=1)
        assert message is not None
        return message.body

    assert body("points_expiring", {"points": 500, "expires_on": "2026-12-12"}).startswith("500 баллов сгорят 12 декабря")
    assert body("points_expiring", {"points": 1, "expires_on": "2026-12-12"}, "en").startswith("1 point expire on 12 December")
    assert body("event_bonus", {"points": 300, "event": "birthday", "expires_on": "2026-12-13"}) == \
        "Дарим 300 баллов. Они сгорят 13 декабря."
    assert body("event_bonus", {"points": 300, "event": "referral"}) == "+300 баллов за приглашённого друга."
    assert body("tier_at_risk", {"name": "Gold", "spend_needed": 1_234_500, "by": "2026-12-29"}, "en") == \
        "Spend 12 345 ₽ more by 29 December to keep Gold."


async def test_points_about_to_burn_are_announced_the_programs_days_before(db_pool) -> None:
    from loyalty_core.ledger import ops
    from loyalty_core.messaging.notifications import queue_expiring_soon
    from loyalty_core.piccolo_conf import DB
    from tests.factories import make_member

    early = await make_shop(basic_rules(expiry_notice_days=30))
    usual = await make_shop(basic_rules())
    now = dt.datetime.now(UTC)
    members = []
    for shop in (early, usual):
        member = await make_member(shop)
        async with DB.transaction():
            state = await ops.lock_account(member.account_id, now)
            await ops.accrue(state, 500, now, kind="accrue", source="sale", activates_at=now,
                             expires_at=now + 20 * DAY, reason="receipt")
        members.append(member)

    await queue_expiring_soon(now)

    [message] = await messages_of(members[0].customer_id, "points_expiring")
    assert message["points"] == 500
    assert await messages_of(members[1].customer_id, "points_expiring") == []


async def test_a_referrer_who_left_the_program_is_paid_nothing(http, db_pool) -> None:
    shop = await events_shop(Rule(code="friend", name="Bring a friend",
                                  effect=EventBonus(event="first_purchase", points=100, referrer_points=300)))
    referrer = await member_with(shop)
    friend = await member_with(shop)
    await db.fetch("UPDATE membership SET referred_by = $2 WHERE id = $1", friend.membership_id, referrer.membership_id)
    await db.fetch("UPDATE membership SET status = 'closed' WHERE id = $1", referrer.membership_id)
    response = await http.post("/pos/v1/sales/confirm", json=sale_body(shop, [("bread", 1, 4_990)], card=friend.card),
                               headers=shop.headers)
    assert response.status_code == 200, response.text

    report = await run_member_events(dt.datetime.now(UTC))

    assert report.failed_programs == 0
    assert await lots_of(referrer.account_id) == []
    assert (100, "event") in [lot[:2] for lot in await lots_of(friend.account_id)]


async def test_reaching_a_higher_tier_earns_its_bonus_once(http, db_pool) -> None:
    shop = await events_shop(Rule(code="up", name="New tier", effect=EventBonus(event="tier_up", points=1_000)))
    member = await member_with(shop)
    now = dt.datetime.now(UTC)
    await run_member_events(now)
    assert await lots_of(member.account_id) == []  # the lowest tier is no promotion

    big_basket = sale_body(shop, [("bread", 1, 3_000_000)], card=member.card)  # 30 000 RUB: silver
    response = await http.post("/pos/v1/sales/confirm", json=big_basket, headers=shop.headers)
    assert response.status_code == 200, response.text
    later = dt.datetime.now(UTC)
    report = await run_member_events(later)
    await run_member_events(later + dt.timedelta(minutes=5))

    assert report.tier_ups >= 1
    events = await db.fetch("SELECT occurrence, points FROM member_event WHERE membership = $1 AND kind = 'tier_up'",
                            member.membership_id)
    assert [(e["occurrence"], e["points"]) for e in events] == [("silver", 1_000)]
    [message] = [m for m in await messages_of(member.customer_id, "event_bonus") if m["event"] == "tier_up"]
    assert message["points"] == 1_000
