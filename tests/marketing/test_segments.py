"""A marketer's segments: dynamic ones recomputed set-based from member facts, static ones uploaded as a list;
who is in them is `membership.segments`, which the till's rules read at the next sale."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import db
from loyalty_core.engine.effects import PercentDiscount
from loyalty_core.engine.program import Rule, RuleGroup
from loyalty_core.engine.targeting import Targeting
from loyalty_core.marketing import segments
from loyalty_core.marketing.segments import SegmentCreate, SegmentUpdate
from tests.factories import basic_rules, make_shop, sale_body, unique
from tests.marketing.helpers import UTC, in_segment, member_with, segments_of

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)


async def create(shop, code: str, condition: object, now: dt.datetime = NOW) -> segments.Segment:
    return await segments.create_segment(shop.program_code, SegmentCreate(code=code, condition=condition),
                                         "test marketer", now)


async def test_lapsing_gold_members_join_and_leave_as_their_facts_change(db_pool) -> None:
    shop = await make_shop()
    lapsing = await member_with(shop, tier="gold", last_purchase=NOW - 90 * DAY, purchases=12, spend=12_000_000)
    active_gold = await member_with(shop, tier="gold", last_purchase=NOW - 2 * DAY, purchases=30, spend=15_000_000)
    lapsing_basic = await member_with(shop, tier="basic", last_purchase=NOW - 90 * DAY, purchases=1, spend=10_000)
    never_bought = await member_with(shop, tier="gold")

    segment = await create(shop, "lapsing-gold", {"all": [{"fact": "tier", "eq": "gold"},
                                                          {"fact": "days_since_last_purchase", "gte": 60}]})

    assert segment.member_count == 1 and segment.recomputed_at == NOW
    assert await in_segment(shop, "lapsing-gold") == {lapsing.membership_id}
    for other in (active_gold, lapsing_basic, never_bought):
        assert "lapsing-gold" not in await segments_of(other.membership_id)
    # the lapsing member buys again; the active one goes quiet: the next recompute swaps them, touching only them
    await db.fetch("UPDATE membership SET last_purchase_at = $2 WHERE id = $1", lapsing.membership_id, NOW)
    await db.fetch("UPDATE membership SET last_purchase_at = $2 WHERE id = $1", active_gold.membership_id,
                   NOW - 61 * DAY)
    result = await segments.recompute_segment(shop.program_code, "lapsing-gold", NOW + DAY)
    assert (result.members, result.added, result.removed) == (1, 1, 1)
    assert await in_segment(shop, "lapsing-gold") == {active_gold.membership_id}
    again = await segments.recompute_segment(shop.program_code, "lapsing-gold", NOW + DAY)
    assert (again.added, again.removed) == (0, 0)  # nothing changed, nothing written


async def test_rfm_quintiles_rank_the_programs_buyers(db_pool) -> None:
    shop = await make_shop()
    members = [await member_with(shop, last_purchase=NOW - (50 - 10 * i) * DAY, purchases=i + 1, spend=(i + 1) * 1000)
               for i in range(5)]
    await member_with(shop)  # never bought: no RFM scores
    await create(shop, "champions", {"all": [{"fact": "rfm_recency", "eq": 5}, {"fact": "rfm_frequency", "gte": 5},
                                             {"fact": "rfm_monetary", "eq": 5}]})
    await create(shop, "no-rfm", {"fact": "rfm_recency", "is_null": True})
    assert await in_segment(shop, "champions") == {members[-1].membership_id}
    assert len(await in_segment(shop, "no-rfm")) == 1


async def test_birthday_month_channel_consent_and_custom_attributes(db_pool) -> None:
    shop = await make_shop()
    december = await member_with(shop, birth_date=dt.date(1990, 12, 5), channel="app")
    may = await member_with(shop, birth_date=dt.date(1990, 5, 5), channel="till")
    for member, granted in ((december, True), (may, False)):
        await db.fetch("INSERT INTO consent (customer, channel, granted, source, changed_at) "
                       "VALUES ($1, 'sms', $2, 'app', $3)", member.customer_id, granted, NOW)
    await db.fetch("INSERT INTO member_attribute (membership, key, value) VALUES ($1, 'pet', 'dog')",
                   may.membership_id)
    await create(shop, "december-app-sms", {"all": [{"fact": "birthday_month", "eq": 12},
                                                    {"fact": "channel", "in": ["app", "web"]},
                                                    {"fact": "consent", "channel": "sms", "eq": True}]})
    await create(shop, "dog-owners", {"fact": "attribute", "key": "pet", "eq": "dog"})
    await create(shop, "not-dog", {"fact": "attribute", "key": "pet", "not_in": ["dog"]})
    assert await in_segment(shop, "december-app-sms") == {december.membership_id}
    assert await in_segment(shop, "dog-owners") == {may.membership_id}
    assert await in_segment(shop, "not-dog") == {december.membership_id}


async def test_home_store_category_abc_and_spend_come_from_the_receipts(http, db_pool) -> None:
    shop = await make_shop()
    dairy_lover = await member_with(shop)
    wine_lover = await member_with(shop)
    now = dt.datetime.now(UTC)
    for member, lines in ((dairy_lover, [("cheese", 3, 59_900), ("bread", 1, 4_990)]),
                          (wine_lover, [("wine", 2, 99_900), ("milk", 1, 9_990)])):
        response = await http.post("/pos/v1/sales/confirm", json=sale_body(shop, lines, card=member.card),
                                   headers=shop.headers)
        assert response.status_code == 200, response.text
    dairy = shop.skus["milk"]  # the category code is the product's: look it up
    row = await db.fetchrow("SELECT c.code FROM product p JOIN category c ON c.id = p.category WHERE p.sku = $1", dairy)
    category = row["code"]
    await create(shop, "dairy-a", {"fact": "category_abc", "category": category, "eq": "A"}, now)
    await create(shop, "dairy-c", {"fact": "category_abc", "category": category, "in": ["B", "C"]}, now)
    await create(shop, "dairy-big", {"fact": "category_spend", "category": category, "days": 30, "gte": 100_000}, now)
    await create(shop, "home-here", {"all": [{"fact": "home_store", "eq": shop.store_code},
                                             {"fact": "home_region", "eq": "Moscow"}]}, now)
    assert await in_segment(shop, "dairy-a") == {dairy_lover.membership_id}
    assert await in_segment(shop, "dairy-c") == {wine_lover.membership_id}
    assert await in_segment(shop, "dairy-big") == {dairy_lover.membership_id}
    assert await in_segment(shop, "home-here") == {dairy_lover.membership_id, wine_lover.membership_id}


async def test_the_till_gives_the_segments_discount_the_moment_the_segment_says_so(http, db_pool) -> None:
    rule = Rule(code="lapsing-10", name="We miss you: -10%", effect=PercentDiscount(bp=1000),
                target=Targeting(segments=["lapsing"]))
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[
        RuleGroup(code="promo", name="Promotions", stage="discount", rules=[rule])]))
    now = dt.datetime.now(UTC)
    member = await member_with(shop, last_purchase=now - 100 * DAY, purchases=3)

    async def discount() -> int:
        body = sale_body(shop, [("bread", 1, 10_000)], card=member.card)
        response = await http.post("/pos/v1/sales/calculate", json=body, headers=shop.headers)
        assert response.status_code == 200, response.text
        return response.json()["totals"]["discount"]

    assert await discount() == 0
    await create(shop, "lapsing", {"fact": "days_since_last_purchase", "gte": 90}, now)
    assert await discount() == 1_000
    await segments.update_segment(shop.program_code, "lapsing", SegmentUpdate(status="archived"), "test", now)
    assert await discount() == 0 and await in_segment(shop, "lapsing") == set()


async def test_a_static_list_by_card_phone_and_member_id(db_pool) -> None:
    shop = await make_shop()
    other_shop = await make_shop()
    by_card, by_phone, by_id = await member_with(shop), await member_with(shop), await member_with(shop)
    stranger = await member_with(other_shop)
    await segments.create_segment(shop.program_code, SegmentCreate(code="vip", kind="static"), "test", NOW)
    csv = (f"kind,value\ncard,{by_card.card}\nphone,8{by_phone.phone[2:]}\nmember,{by_id.membership_id}\n"
           f"card,{stranger.card}\nphone,not-a-phone\nmember,{stranger.membership_id}\n")
    result = await segments.upload_static(shop.program_code, "vip", csv, "replace", "test", NOW)
    assert (result.rows, result.matched, result.members, result.unmatched_count) == (6, 3, 3, 3)
    assert [(u.line, u.reason) for u in result.unmatched] == [
        (5, "not a member of the program"), (6, "not a phone number"), (7, "not a member of the program")]
    assert await in_segment(shop, "vip") == {by_card.membership_id, by_phone.membership_id, by_id.membership_id}
    assert await in_segment(other_shop, "vip") == set()
    # a replacement drops who is not in the new list; the static list is not touched by the dynamic job
    again = await segments.upload_static(shop.program_code, "vip", f"card\n{by_card.card}\n", "replace", "test", NOW)
    assert again.members == 1 and await in_segment(shop, "vip") == {by_card.membership_id}
    await segments.recompute_all(NOW)
    assert await in_segment(shop, "vip") == {by_card.membership_id}
    added = await segments.upload_static(shop.program_code, "vip", f"member\n{by_id.membership_id}\n", "add", "t", NOW)
    assert added.members == 2


async def test_codes_are_unique_per_program_and_checked(db_pool) -> None:
    import pytest

    from loyalty_core.errors import ValidationFailed
    from loyalty_core.marketing.errors import SegmentConditionInvalid, SegmentExists

    shop = await make_shop()
    code = unique("seg")
    await create(shop, code, {"fact": "purchases_count", "gte": 1})
    with pytest.raises(SegmentExists):
        await create(shop, code, {"fact": "purchases_count", "gte": 1})
    with pytest.raises(ValidationFailed):
        await create(shop, "Bad Code!", {"fact": "purchases_count", "gte": 1})
    with pytest.raises(SegmentConditionInvalid):
        await create(shop, "bad-condition", {"fact": "nope", "eq": 1})
    assert await db.fetchrow("SELECT 1 FROM segment WHERE code = 'bad-condition'") is None


async def test_a_large_change_is_written_in_chunks_and_adds_up(db_pool, monkeypatch) -> None:
    monkeypatch.setattr(segments, "CHUNK", 2)  # five members joining: three short transactions
    shop = await make_shop()
    members = [await member_with(shop, purchases=i) for i in range(7)]
    first = await create(shop, "regulars", {"fact": "purchases_count", "gte": 2})
    assert first.member_count == 5
    await db.fetch("UPDATE membership SET purchases_count = 0 WHERE id = ANY($1::int[])",
                   [m.membership_id for m in members[2:5]])
    result = await segments.recompute_segment(shop.program_code, "regulars", NOW)
    assert (result.members, result.added, result.removed) == (2, 0, 3)
    assert await in_segment(shop, "regulars") == {members[5].membership_id, members[6].membership_id}


async def test_one_broken_segment_does_not_stop_the_job(db_pool) -> None:
    shop = await make_shop()
    member = await member_with(shop, purchases=3)
    await create(shop, "buyers", {"fact": "purchases_count", "gte": 1})
    await create(shop, "broken", {"fact": "purchases_count", "gte": 1})
    # a condition stored before a fact was renamed: the job logs it and goes on
    await db.fetch("UPDATE segment SET condition = '{\"fact\": \"gone\", \"eq\": 1}'::jsonb WHERE program = $1 "
                   "AND code = 'broken'", shop.program_id)
    await db.fetch("UPDATE membership SET purchases_count = 0 WHERE id = $1", member.membership_id)
    results = await segments.recompute_all(NOW)
    assert "buyers" in {r.segment for r in results} and "broken" not in {r.segment for r in results}
    assert await in_segment(shop, "buyers") == set()
