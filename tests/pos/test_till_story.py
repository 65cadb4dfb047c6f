"""The cashier's day, over real HTTP against the real server: every endpoint and problem type of POS_API.md."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.factories import (
    Shop,
    account_balance,
    count_rows,
    emit_card,
    make_member,
    sale_body,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    assert body["detail"]
    return body


async def test_identify_a_registered_member_by_card_and_by_phone(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1200)
    r = await http.post("/pos/v1/identify", json={"scan": member.card}, headers=shop.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member"]["id"] == member.membership_id
    assert body["member"]["tier"] == {"code": "basic", "name": "Basic"}
    assert body["card"] == {"number": member.card, "status": "active"}
    assert body["balance"]["active"] == 1200 and body["balance"]["pending"] == 0

    by_phone = await http.post("/pos/v1/identify", json={"scan": member.phone}, headers=shop.headers)
    assert by_phone.status_code == 200, by_phone.text
    assert by_phone.json()["card"]["number"] == member.card


async def test_identify_problems(http: httpx.AsyncClient, shop: Shop) -> None:
    problem(await http.post("/pos/v1/identify", json={"scan": "2999999999999"}, headers=shop.headers), 404, "card-not-found")

    member = await make_member(shop)
    await count_rows("card")  # warm
    from loyalty_core.tables import Card

    await Card.update({Card.status: "blocked", Card.blocked_reason: "lost"}).where(Card.id == member.card_id)
    blocked = problem(await http.post("/pos/v1/identify", json={"scan": member.card}, headers=shop.headers), 409, "card-blocked")
    assert "lost" in blocked["detail"]

    from loyalty_core.shopper_auth.qr_token import issue_app_qr_token

    old = issue_app_qr_token(member.card, "test-secret", dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10))
    await Card.update({Card.status: "active"}).where(Card.id == member.card_id)
    problem(await http.post("/pos/v1/identify", json={"scan": old}, headers=shop.headers), 409, "token-expired")
    fresh = issue_app_qr_token(member.card, "test-secret", dt.datetime.now(dt.timezone.utc))
    r = await http.post("/pos/v1/identify", json={"scan": fresh}, headers=shop.headers)
    assert r.status_code == 200 and r.json()["card"]["number"] == member.card


async def test_an_emitted_card_accrues_as_an_anonymous_member_but_cannot_spend(http: httpx.AsyncClient, shop: Shop) -> None:
    number = await emit_card(shop)
    r = await http.post("/pos/v1/identify", json={"scan": number}, headers=shop.headers)
    assert r.status_code == 200, r.text
    assert r.json()["member"]["registered"] is False
    assert r.json()["card"]["status"] == "emitted"

    sale = sale_body(shop, [("milk", 2, 10_000)], card=number)
    confirmed = await http.post("/pos/v1/sales/confirm", json=sale, headers=shop.headers)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["totals"]["accrued_points"] == 6  # 3% of 200.00 RUB
    assert confirmed.json()["balance_after"] == {"active": 0, "pending": 6}

    spend = sale_body(shop, [("milk", 1, 10_000)], card=number, redeem=1)
    problem(await http.post("/pos/v1/sales/calculate", json=spend, headers=shop.headers), 409, "redeem-limit")


async def test_calculate_prices_exactly_and_writes_nothing(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=500)
    before = (await count_rows("sale"), await count_rows("ledger_entry"), await account_balance(member.account_id))
    body = sale_body(shop, [("milk", 1.5, 9_990), ("bread", 3, 4_990), ("wine", 1, 99_900)], card=member.card, redeem=80)
    r = await http.post("/pos/v1/sales/calculate", json=body, headers=shop.headers)
    assert r.status_code == 200, r.text
    calc = r.json()
    lines, totals = calc["lines"], calc["totals"]
    for key in ("discount", "redeemed_points", "redeemed_amount", "to_pay", "accrued_points"):
        assert totals[key] == sum(line[key] for line in lines), key
    assert totals["amount"] == 14_985 + 14_970 + 99_900
    assert totals["to_pay"] == totals["amount"] - totals["discount"] - totals["redeemed_amount"]
    wine = next(line for line in lines if line["line_no"] == 3)
    assert wine["accrued_points"] == 0 and wine["redeemed_points"] == 0 and wine["discount"] == 0
    assert totals["redeemed_points"] == 80 and totals["redeemed_amount"] == 8_000
    # 30% of the goods that may be paid with points: (14 985 + 14 970) * 0.3 = 8 986 kopecks -> 89 points max
    assert calc["max_redeem_points"] == 89
    assert calc["applied"] and all(a["explanation"] for a in calc["applied"])
    after = (await count_rows("sale"), await count_rows("ledger_entry"), await account_balance(member.account_id))
    assert before == after


async def test_redeem_limit_and_insufficient_points(http: httpx.AsyncClient, shop: Shop) -> None:
    rich = await make_member(shop, points=10_000)
    body = sale_body(shop, [("cheese", 2, 100_000)], card=rich.card, redeem=700)  # 2 000 RUB: 600 points at most
    limit = problem(await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers), 409, "redeem-limit")
    assert limit["max_redeem_points"] == 600

    poor = await make_member(shop, points=100)
    body = sale_body(shop, [("cheese", 2, 100_000)], card=poor.card, redeem=200)
    problem(await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers), 409, "insufficient-points")
    assert await account_balance(poor.account_id) == (100, 0)
    assert await count_rows("sale", "membership = {}", poor.membership_id) == 0


async def test_confirm_spends_accrues_and_replays(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1_000)
    body = sale_body(shop, [("cheese", 1, 100_000), ("milk", 2, 10_000)], card=member.card, redeem=300)
    r = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert r.status_code == 200, r.text
    sale = r.json()
    assert sale["status"] == "confirmed" and sale["sale_id"]
    assert sale["totals"]["redeemed_points"] == 300 and sale["totals"]["redeemed_amount"] == 30_000
    assert sale["totals"]["to_pay"] == 120_000 - 30_000
    assert sale["totals"]["accrued_points"] == 27  # 3% of 900.00 RUB paid with money
    assert sale["balance_after"] == {"active": 700, "pending": 27}
    assert await account_balance(member.account_id) == (700, 27)

    # the wallet pass and the shopper's app hear about it through the outbox, written with the sale
    kinds = sorted(r["kind"] for r in await _notifications(member.card_id))
    assert kinds == ["pass_update", "points_accrued"]

    again = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert again.status_code == 200 and again.json() == sale
    assert await account_balance(member.account_id) == (700, 27)
    assert len(await _notifications(member.card_id)) == 2

    changed = dict(body, redeem_points=100)
    problem(await http.post("/pos/v1/sales/confirm", json=changed, headers=shop.headers), 409, "idempotency-conflict")


async def _notifications(card_id: int) -> list[dict]:
    from loyalty_core.tables import Notification

    return await Notification.select(Notification.kind, Notification.customer).where(Notification.card == card_id)


async def test_idempotency_key_header(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop)
    body = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    headers = {**shop.headers, "Idempotency-Key": "key-" + body["receipt_id"]}
    first = await http.post("/pos/v1/sales/confirm", json=body, headers=headers)
    second = await http.post("/pos/v1/sales/confirm", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    other = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    problem(await http.post("/pos/v1/sales/confirm", json=other, headers=headers), 409, "idempotency-conflict")
    assert await count_rows("sale", "membership = {}", member.membership_id) == 1


async def test_cancel_reverses_everything_once(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1_000)
    body = sale_body(shop, [("cheese", 1, 100_000)], card=member.card, redeem=200)
    sale = (await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)).json()
    assert await account_balance(member.account_id) == (800, 24)

    r = await http.post(f"/pos/v1/sales/{sale['sale_id']}/cancel", headers=shop.headers)
    assert r.status_code == 200, r.text
    cancel = r.json()
    assert cancel["status"] == "cancelled"
    assert cancel["clawed_back_points"] == 24 and cancel["refunded_points"] == 200
    assert cancel["balance_after"] == {"active": 1_000, "pending": 0}
    again = await http.post(f"/pos/v1/sales/{sale['sale_id']}/cancel", headers=shop.headers)
    assert again.json() == cancel
    assert await account_balance(member.account_id) == (1_000, 0)

    problem(await http.post("/pos/v1/sales/999999999/cancel", headers=shop.headers), 404, "sale-not-found")


async def test_returns_in_parts_end_where_a_full_return_would(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1_000)
    body = sale_body(shop, [("cheese", 3, 33_333), ("milk", 1, 10_001)], card=member.card, redeem=300)
    sale = (await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)).json()
    sid = sale["sale_id"]
    url = f"/pos/v1/sales/{sid}/returns"

    first = await http.post(url, json={"return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}, headers=shop.headers)
    assert first.status_code == 200, first.text
    replay = await http.post(url, json={"return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}, headers=shop.headers)
    assert replay.json() == first.json()
    problem(
        await http.post(url, json={"return_id": "R-2", "lines": [{"line_no": 1, "quantity": 3}]}, headers=shop.headers),
        422, "return-exceeds-sale",
    )
    second = await http.post(url, json={"return_id": "R-2", "lines": [{"line_no": 1, "quantity": 2}]}, headers=shop.headers)
    third = await http.post(url, json={"return_id": "R-3", "lines": [{"line_no": 2, "quantity": 1}]}, headers=shop.headers)
    assert second.status_code == third.status_code == 200
    parts = [first.json(), second.json(), third.json()]
    assert sum(p["refunded_points"] for p in parts) == sale["totals"]["redeemed_points"] == 300
    assert sum(p["clawed_back_points"] for p in parts) == sale["totals"]["accrued_points"]
    assert sum(p["refunded_amount"] for p in parts) == sale["totals"]["to_pay"]
    assert await account_balance(member.account_id) == (1_000, 0)
    problem(
        await http.post(url, json={"return_id": "R-4", "lines": [{"line_no": 2, "quantity": 0.001}]}, headers=shop.headers),
        422, "return-exceeds-sale",
    )


async def test_batch_from_an_offline_till(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=100)
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=3)))
    earlier = now - dt.timedelta(hours=2)
    first = sale_body(shop, [("milk", 5, 10_000)], card=member.card, redeem=100, when=earlier)
    overspend = sale_body(shop, [("milk", 5, 10_000)], card=member.card, redeem=100, when=earlier + dt.timedelta(minutes=5))
    plain = sale_body(shop, [("bread", 1, 4_990)], card=member.card, when=earlier + dt.timedelta(minutes=9))
    r = await http.post("/pos/v1/sales/batch", json={"sales": [first, overspend, plain, first]}, headers=shop.headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["confirmed", "rejected", "confirmed", "duplicate"]
    assert results[1]["problem"]["type"].endswith("/insufficient-points")
    assert results[3]["sale_id"] == results[0]["sale_id"]
    assert (await account_balance(member.account_id))[0] == 0


async def test_bad_input_is_refused_and_nothing_is_written(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=100)
    before = (await count_rows("sale"), await count_rows("ledger_entry"), await count_rows("sale_return"))
    good = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    missing = {k: v for k, v in good.items() if k != "lines"}
    problem(await http.post("/pos/v1/sales/confirm", json=missing, headers=shop.headers), 422, "validation-error")
    negative = dict(good, lines=[dict(good["lines"][0], amount=-5)])
    problem(await http.post("/pos/v1/sales/confirm", json=negative, headers=shop.headers), 422, "validation-error")
    naive = dict(good, occurred_at="2026-11-23T12:00:00")
    problem(await http.post("/pos/v1/sales/confirm", json=naive, headers=shop.headers), 422, "validation-error")
    twice = dict(good, lines=[good["lines"][0], good["lines"][0]])
    problem(await http.post("/pos/v1/sales/confirm", json=twice, headers=shop.headers), 422, "validation-error")
    r = await http.post("/pos/v1/sales/confirm", content=b"{not json", headers={**shop.headers, "content-type": "application/json"})
    problem(r, 400, "validation-error")  # malformed syntax is a 400; a well-formed but wrong body is a 422
    huge = b'{"receipt_id": "' + b"x" * 2_000_000 + b'"}'
    r = await http.post("/pos/v1/sales/confirm", content=huge, headers={**shop.headers, "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"].startswith(PROBLEM)
    problem(await http.post("/pos/v1/sales/confirm", json=good, headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    problem(await http.post("/pos/v1/sales/confirm", json=good), 401, "unauthorized")

    sale = (await http.post("/pos/v1/sales/confirm", json=good, headers=shop.headers)).json()
    before = (before[0] + 1, await count_rows("ledger_entry"), before[2])
    problem(
        await http.post(f"/pos/v1/sales/{sale['sale_id']}/returns", json={"return_id": "X", "lines": [{"line_no": 9, "quantity": 1}]},
                        headers=shop.headers),
        422, "validation-error",
    )
    problem(
        await http.post(f"/pos/v1/sales/{sale['sale_id']}/returns", json={"return_id": "X", "lines": [{"line_no": 1, "quantity": -1}]},
                        headers=shop.headers),
        422, "validation-error",
    )
    after = (await count_rows("sale"), await count_rows("ledger_entry"), await count_rows("sale_return"))
    assert before == after


async def test_phone_lookups_are_rate_limited_per_till(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop)
    statuses = []
    for _ in range(31):
        r = await http.post("/pos/v1/identify", json={"scan": member.phone}, headers=shop.headers)
        statuses.append(r.status_code)
    assert statuses[:30] == [200] * 30
    limited = problem(r, 429, "rate-limited")
    assert int(r.headers["retry-after"]) >= 1 and limited["retry_after"] >= 1
    # a card scan is not a guess: still served
    assert (await http.post("/pos/v1/identify", json={"scan": member.card}, headers=shop.headers)).status_code == 200


async def test_the_demo_rules_reach_the_till_with_the_members_own_facts(http: httpx.AsyncClient, db_pool: None) -> None:
    """Favourite categories come from the member's choice in the database; the counter of this month's
    purchases comes from their sales: the 5th purchase of the month earns 100 extra points."""
    import datetime as dt

    from loyalty_core.engine.demo import demo_program_rules
    from loyalty_core.tables import Category, FavouriteCategory
    from tests.factories import make_shop

    shop = await make_shop(demo_program_rules())
    member = await make_member(shop)
    dairy = (await Category.select(Category.id, Category.code).where(Category.selectable_as_favourite.eq(True))
             .order_by(Category.id, ascending=False).first())
    await FavouriteCategory.insert(
        FavouriteCategory(membership=member.membership_id, category=dairy["id"], period_start=dt.date.today())
    )
    # the latest Sunday evening that has passed (a till's sale is at most 7 days old): no happy hours
    msk = dt.timezone(dt.timedelta(hours=3))
    now = dt.datetime.now(msk)
    sunday = now.date() - dt.timedelta(days=(now.weekday() - 6) % 7)
    if dt.datetime.combine(sunday, dt.time(19, 0), msk) > now:
        sunday -= dt.timedelta(days=7)
    when = dt.datetime.combine(sunday, dt.time(19, 0), msk)
    points = []
    for i in range(5):
        body = sale_body(shop, [("milk", 1, 10_000), ("bread", 1, 10_000)], card=member.card,
                         when=when + dt.timedelta(minutes=i))
        r = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
        assert r.status_code == 200, r.text
        points.append(r.json())
    # milk is dairy (favourite): 3% base on both lines + 5% on milk = 6 + 5 = 11 points
    assert [p["totals"]["accrued_points"] for p in points[:4]] == [11, 11, 11, 11]
    assert points[4]["totals"]["accrued_points"] == 111
    rules = {a["rule"] for a in points[4]["applied"]}
    assert {"favourite-categories", "every-5th-purchase"} <= rules


async def test_a_sale_without_a_card_is_recorded_without_points(http: httpx.AsyncClient, shop: Shop) -> None:
    body = sale_body(shop, [("milk", 2, 10_000)])
    r = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert r.status_code == 200, r.text
    sale = r.json()
    assert sale["totals"]["accrued_points"] == 0 and sale["balance_after"] is None
    assert sale["totals"]["to_pay"] == 20_000
    replay = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert replay.json() == sale
    assert await count_rows("sale", "id = {} AND membership IS NULL", sale["sale_id"]) == 1


async def test_explanations_speak_the_programs_language(http: httpx.AsyncClient, db_pool: None) -> None:
    from tests.factories import basic_rules, make_shop

    for language, expected in (("ru", "Уровень «Basic»: 3% от 200,00\u00a0₽ = 6 баллов"),
                               ("en", "Basic tier: 3% on 200.00 RUB = 6 points")):
        shop = await make_shop(basic_rules(language=language))
        member = await make_member(shop)
        r = await http.post("/pos/v1/sales/calculate", json=sale_body(shop, [("milk", 2, 10_000)], card=member.card),
                            headers=shop.headers)
        assert r.status_code == 200, r.text
        assert r.json()["applied"][0]["explanation"].replace("\u202f", "\u00a0") == expected


async def test_the_cashier_reads_the_programs_language_and_a_till_may_read_the_codes(
    http: httpx.AsyncClient, db_pool: None
) -> None:
    """cashier_messages are written by the API in the program's language (plural forms included); cashier_notes
    carry the same as codes; a replayed confirm reads the same words as the first answer."""
    from tests.factories import basic_rules, make_shop

    for language, accrued, unregistered in (
        ("ru", "Будет начислено 6 баллов", "Карта не зарегистрирована: баллы сохранятся на карте до регистрации"),
        ("en", "6 points will be accrued", "Card is not registered: points are kept on the card until the shopper"),
    ):
        shop = await make_shop(basic_rules(language=language))
        card = await emit_card(shop)
        body = sale_body(shop, [("milk", 2, 10_000)], card=card)
        confirmed = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
        assert confirmed.status_code == 200, confirmed.text
        out = confirmed.json()
        assert out["language"] == language
        assert [n["code"] for n in out["cashier_notes"]] == ["points_accrued", "kept_on_card"]
        assert out["cashier_notes"][0]["points"] == 6
        assert out["cashier_messages"][0] == accrued and out["cashier_messages"][1].startswith(unregistered), out
        replay = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
        assert replay.json()["cashier_messages"] == out["cashier_messages"]

        shown = await http.post("/pos/v1/identify", json={"scan": card}, headers=shop.headers)
        assert shown.status_code == 200, shown.text
        assert shown.json()["language"] == language and shown.json()["balance"]["pending"] == 6
        [note] = [n for n in shown.json()["cashier_notes"] if n["code"] == "card_not_registered"]
        words = shown.json()["cashier_messages"][shown.json()["cashier_notes"].index(note)]
        assert words.startswith("Карта не зарегистрирована" if language == "ru" else "Card is not registered"), words
