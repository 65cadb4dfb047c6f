"""Cards and registration (issue 10): a card becomes a member's only with proof of possession and never moves
to another member; a phone typed at a till is confirmed by its owner before anything can be spent; the birth
date and the welcome bonus cannot be replayed for points."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec

from backend.admin.auth import create_operator_key
from loyalty_core.engine.effects import EventBonus, Multiplier
from loyalty_core.engine.program import Rule, RuleGroup
from loyalty_core.engine.targeting import Targeting
from loyalty_core.shopper_auth.otp import read_inbox
from loyalty_core.tables import Customer, WelcomeGrant
from tests.factories import basic_rules, count_rows, emit_card, emit_card_with_secret, make_shop, sale_body
from tests.identity.shopper import Shopper, new_ip, new_phone

WELCOME = RuleGroup(code="events", name="Events", stage="event", rules=[
    Rule(code="welcome", name="Welcome bonus", effect=EventBonus(event="registered", points=500)),
])


def _type(response: Any) -> str:
    return response.json()["type"].rsplit("/", 1)[-1]


async def _code_sent_to(valkey: Any, phone: str) -> str:
    inbox = await read_inbox(valkey, phone, limit=1)
    assert inbox, f"no message for {phone}"
    return re.search(r"\b(\d{6})\b", inbox[0].text).group(1)  # type: ignore[union-attr]


async def _bought_with(http: Any, shop: Any, card: str) -> int:
    done = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                           json=sale_body(shop, [("cheese", 2, 59_900)], card=card))
    assert done.status_code == 200, done.text
    return done.json()["totals"]["accrued_points"]


async def _card_owner(http: Any, shop: Any, card: str) -> dict:
    found = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": card})
    assert found.status_code == 200, found.text
    return found.json()["member"]


# --- 1. a registered card never moves ----------------------------------------------------------------


async def test_registering_with_someone_elses_card_is_refused_and_the_card_stays_theirs(http, shop) -> None:
    number = await emit_card(shop)
    victim = Shopper(http=http, to=new_phone(), program=shop.program_code)
    handed = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": victim.to, "card_number": number})
    assert handed.status_code == 201, handed.text
    await victim.log_in()  # confirms the membership the till started
    owner = await _card_owner(http, shop, number)
    customers = await count_rows("customer")

    # the app: a new phone, a valid code, the victim's card number
    thief = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await thief.request_code()
    taken = await thief.verify(await thief.last_code(), card_number=number)
    assert taken.status_code == 409 and _type(taken) == "card-taken", taken.text
    # the till: a new phone on the victim's card
    at_till = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": new_phone(), "card_number": number})
    assert at_till.status_code == 409 and _type(at_till) == "card-taken", at_till.text

    assert await count_rows("customer") == customers  # nothing written
    assert number in {c["number"] for c in (await victim.get("/cards")).json()}
    assert (await _card_owner(http, shop, number))["id"] == owner["id"]


async def test_binding_another_members_card_in_the_app_is_card_taken(http, shop, shopper_factory) -> None:
    number = await emit_card(shop)
    victim = Shopper(http=http, to=new_phone(), program=shop.program_code)
    handed = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": victim.to, "card_number": number})
    assert handed.status_code == 201, handed.text
    await victim.log_in()
    thief = await shopper_factory()
    bound = await thief.send("POST", "/cards", json={"number": number})
    assert bound.status_code == 409 and _type(bound) == "card-taken", bound.text
    assert number in {c["number"] for c in (await victim.get("/cards")).json()}
    assert number not in {c["number"] for c in (await thief.get("/cards")).json()}


# --- 4. a member's phone typed at a till --------------------------------------------------------------


async def test_a_members_phone_at_a_till_links_the_card_only_with_the_code_from_that_phone(http, valkey, db_pool) -> None:
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[WELCOME]))
    victim = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await victim.log_in()
    assert (await victim.get("/balance")).json()["active"] == 500  # points a stolen link could spend

    card = await emit_card(shop)  # a card the cashier (or anyone at the till) holds
    asked = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": victim.to, "card_number": card})
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "pending" and not asked.json()["linked"] and asked.json()["customer_id"] is None
    # nothing linked: the card is still nobody's and cannot spend the member's points
    assert not (await _card_owner(http, shop, card))["registered"]
    spend = await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                            json=sale_body(shop, [("cheese", 2, 59_900)], card=card, redeem=100))
    assert spend.status_code == 409, spend.text
    assert card not in {c["number"] for c in (await victim.get("/cards")).json()}

    wrong = await http.post("/pos/v1/members", headers=shop.headers,
                            json={"phone": victim.to, "card_number": card, "confirmation_code": "000000"})
    code = await _code_sent_to(valkey, victim.to)
    if code != "000000":
        assert wrong.status_code == 409 and _type(wrong) == "confirmation-required", wrong.text
    linked = await http.post("/pos/v1/members", headers=shop.headers,
                             json={"phone": victim.to, "card_number": card, "confirmation_code": code})
    assert linked.status_code == 201 and linked.json()["linked"], linked.text
    assert card in {c["number"] for c in (await victim.get("/cards")).json()}
    # single use: the same code again does not work for another card
    other = await emit_card(shop)
    again = await http.post("/pos/v1/members", headers=shop.headers,
                            json={"phone": victim.to, "card_number": other, "confirmation_code": code})
    assert again.status_code == 409 and _type(again) == "confirmation-required"


# --- 5. a pending membership cannot spend -------------------------------------------------------------


async def test_a_pending_membership_shows_its_welcome_bonus_but_cannot_spend_it_until_confirmed(
        http, valkey, db_pool) -> None:
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[WELCOME]))
    card, phone = await emit_card(shop), new_phone()
    registered = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": phone, "card_number": card})
    assert registered.status_code == 201 and registered.json()["status"] == "pending", registered.text

    shown = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": card})
    assert shown.json()["balance"]["active"] == 500  # the balance still shows
    priced = await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                             json=sale_body(shop, [("cheese", 2, 59_900)], card=card))
    assert priced.status_code == 200 and priced.json()["max_redeem_points"] == 0
    for path in ("/pos/v1/sales/calculate", "/pos/v1/sales/confirm"):
        spend = await http.post(path, headers=shop.headers,
                                json=sale_body(shop, [("cheese", 2, 59_900)], card=card, redeem=100))
        assert spend.status_code == 409 and _type(spend) == "redeem-limit", spend.text
        assert spend.json()["max_redeem_points"] == 0
    batch = await http.post("/pos/v1/sales/batch", headers=shop.headers, json={"sales": [
        sale_body(shop, [("cheese", 2, 59_900)], card=card, redeem=100)]})
    assert batch.status_code == 200, batch.text
    [item] = batch.json()["results"]
    assert item["status"] == "rejected" and item["problem"]["type"].endswith("/redeem-limit")
    assert await count_rows("sale", "card_number = {}", card) == 0

    # the shopper reads the code to the cashier: now the points can be spent
    code = await _code_sent_to(valkey, phone)
    confirmed = await http.post("/pos/v1/members", headers=shop.headers,
                                json={"phone": phone, "card_number": card, "confirmation_code": code})
    assert confirmed.status_code == 201 and confirmed.json()["status"] == "active", confirmed.text
    spend = await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                            json=sale_body(shop, [("cheese", 2, 59_900)], card=card, redeem=100))
    assert spend.status_code == 200 and spend.json()["totals"]["redeemed_points"] == 100, spend.text


# --- 6. binding a plastic card needs its secret --------------------------------------------------------


async def test_binding_a_card_by_its_number_alone_is_refused_and_the_secret_is_required(http, shop, shopper_factory) -> None:
    number, secret = await emit_card_with_secret(shop)
    accrued = await _bought_with(http, shop, number)
    neighbour = await emit_card(shop)  # the next number of the series: guessable
    thief = await shopper_factory()
    for body in ({"number": neighbour}, {"number": number}, {"number": number, "secret": "AAAA-AAAA-AAAA"},
                 {"number": number, "secret": "not a secret"}):
        refused = await thief.send("POST", "/cards", json=body)
        assert refused.status_code == 422 and _type(refused) == "card-secret-invalid", refused.text
    assert {c["number"] for c in (await thief.get("/cards")).json()} == {thief.card}
    # registering in the app with the number alone is refused as well, and registers nobody
    stranger = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await stranger.request_code()
    login = await stranger.verify(await stranger.last_code(), card_number=number)
    assert login.status_code == 422 and _type(login) == "card-secret-invalid"
    assert await count_rows("customer", "phone = {}", stranger.to) == 0

    owner = await shopper_factory()
    bound = await owner.send("POST", "/cards", json={"number": number, "secret": secret.lower().replace("-", " ")})
    assert bound.status_code == 200, bound.text
    assert (await owner.get("/balance")).json()["pending"] == accrued  # its anonymous points came along


async def test_card_binding_attempts_are_limited_per_shopper(http, shop, shopper_factory) -> None:
    thief = await shopper_factory()
    answers = []
    for _ in range(12):
        number = await emit_card(shop)  # a different card every time: only the per-shopper count stops this
        answers.append((await thief.send("POST", "/cards", json={"number": number, "secret": "AAAA-BBBB-CCCC"})).status_code)
    assert answers[:10] == [422] * 10 and answers[10:] == [429, 429]


async def test_card_binding_attempts_are_limited_per_card_across_shoppers(http, shop, shopper_factory) -> None:
    number, secret = await emit_card_with_secret(shop)
    answers = []
    for _ in range(11):
        guesser = await shopper_factory()  # a new account and address every time
        answers.append((await guesser.send("POST", "/cards", json={"number": number, "secret": "AAAA-BBBB-CCCC"})).status_code)
    assert answers[:10] == [422] * 10 and answers[10] == 429


async def test_emitted_cards_come_with_a_secret_shown_once_and_stored_hashed(http, shop) -> None:
    key = (await create_operator_key("cards desk", ["import"])).key
    emitted = await http.post("/admin/v1/cards/emit", headers={"Authorization": f"Bearer {key}"},
                              json={"series": "sec-test", "count": 2, "program": shop.program_code})
    assert emitted.status_code == 201, emitted.text
    cards = emitted.json()["cards"]
    assert all(re.fullmatch(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", c["secret"]) for c in cards)
    for card in cards:
        assert await count_rows("card", "number = {} AND secret_hash IS NOT NULL AND secret_hash <> {}",
                                card["number"], card["secret"]) == 1


# --- birthday on demand ------------------------------------------------------------------------------


BIRTHDAY = RuleGroup(code="birthday", name="Birthday", stage="accrual", rules=[
    Rule(code="birthday-x10", name="Birthday x10", effect=Multiplier(factor_bp=100_000),
         target=Targeting(birthday_window_days=0, registered_only=True)),
])


async def test_the_birth_date_is_set_once_and_a_fresh_one_earns_no_birthday_bonus(http, db_pool) -> None:
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[BIRTHDAY]))
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in()
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=3))).date()
    first = await shopper.send("PATCH", "/me", json={"birth_date": today.replace(year=1990).isoformat()})
    assert first.status_code == 200, first.text
    same = await shopper.send("PATCH", "/me", json={"birth_date": today.replace(year=1990).isoformat()})
    assert same.status_code == 200
    for other in (today.replace(year=1991).isoformat(), None):
        moved = await shopper.send("PATCH", "/me", json={"birth_date": other})
        assert moved.status_code == 409 and _type(moved) == "birth-date-locked", moved.text
    # set today, birthday today: the program wants the date known 30 days, so no x10
    priced = await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                             json=sale_body(shop, [("cheese", 2, 59_900)], card=shopper.card))
    assert priced.status_code == 200, priced.text
    assert "birthday-x10" not in {a["rule"] for a in priced.json()["applied"]}
    # known long enough, the same rule fires (the gate is the date's age, not the rule)
    await Customer.update({Customer.birth_date_set_at: dt.datetime.now(dt.UTC) - dt.timedelta(days=31)}).where(
        Customer.id == shopper.customer_id)
    priced = await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                             json=sale_body(shop, [("cheese", 2, 59_900)], card=shopper.card))
    assert "birthday-x10" in {a["rule"] for a in priced.json()["applied"]}


async def test_support_corrects_a_birth_date_with_a_reason_and_it_is_audited(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory(birth_date="1990-05-17")
    support = {"Authorization": f"Bearer {(await create_operator_key('support desk 2', ['support'])).key}"}
    url = f"/admin/v1/members/{shopper.customer_id}/birth-date"
    no_reason = await http.post(url, headers=support, json={"birth_date": "1990-07-15"})
    assert no_reason.status_code == 422
    marketer = {"Authorization": f"Bearer {(await create_operator_key('marketing', ['marketer'])).key}"}
    assert (await http.post(url, headers=marketer, json={"birth_date": "1990-07-15", "reason": "x" * 5})).status_code == 403
    fixed = await http.post(url, headers=support, json={"birth_date": "1990-07-15", "reason": "passport shown, typo"})
    assert fixed.status_code == 200 and fixed.json()["birth_date"] == "1990-07-15", fixed.text
    [event] = (await http.get(f"/admin/v1/members/{shopper.customer_id}/audit", headers=support)).json()
    assert (event["actor"], event["action"], event["reason"]) == ("support desk 2", "customer.birth_date", "passport shown, typo")
    assert event["before"]["birth_date"] == "1990-05-17" and event["after"]["birth_date"] == "1990-07-15"
    row = await Customer.select(Customer.birth_date_set_at).where(Customer.id == shopper.customer_id).first()
    assert row["birth_date_set_at"] > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # known from now


def test_the_engine_counts_how_long_the_birth_date_has_been_known() -> None:
    from loyalty_core.engine import price
    from loyalty_core.engine.basket import Basket, BasketLine, MemberInfo, PricingContext, StoreInfo
    from loyalty_core.engine.compiled import compile_program

    now = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)

    def fired(rules: Any, known_since: dt.datetime | None) -> bool:
        member = MemberInfo(membership_id="1", tier_code="basic", birth_date=dt.date(1990, 11, 23),
                            birth_date_known_since=known_since)
        ctx = PricingContext(now=now, store=StoreInfo(code="S"), member=member)
        basket = Basket(lines=[BasketLine(line_no=1, sku="x", quantity_milli=1000, price=100_000, amount=100_000)])
        return any(a.rule == "birthday-x10" for a in price(basket, ctx, compile_program(rules)).applied)

    program = msgspec.structs.replace(basic_rules(), groups=[BIRTHDAY])
    assert not fired(program, now - dt.timedelta(days=1))
    assert fired(program, now - dt.timedelta(days=30))
    assert fired(program, None)  # not tracked (a described member in the simulator)
    override = msgspec.structs.replace(program, groups=[msgspec.structs.replace(BIRTHDAY, rules=[
        msgspec.structs.replace(BIRTHDAY.rules[0], target=Targeting(birthday_window_days=0, birth_date_known_days=0))])])
    assert fired(override, now - dt.timedelta(hours=1))


# --- welcome bonus on repeat ---------------------------------------------------------------------------


async def test_the_welcome_bonus_is_given_once_per_phone_and_email_even_after_deletion(http, db_pool) -> None:
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[WELCOME]))
    phone = new_phone()
    first = Shopper(http=http, to=phone, program=shop.program_code)
    await first.log_in()
    assert (await first.get("/balance")).json()["active"] == 500
    assert (await first.send("DELETE", "/me")).status_code == 204

    again = Shopper(http=http, to=phone, program=shop.program_code, ip=new_ip())
    login = await again.log_in()
    assert login["new_customer"] and login["customer_id"] != first.customer_id
    assert (await again.get("/balance")).json()["active"] == 0

    email = f"w{phone[-7:]}@example.org"
    by_mail = Shopper(http=http, to=email, program=shop.program_code)
    await by_mail.log_in()
    assert (await by_mail.get("/balance")).json()["active"] == 500
    assert (await by_mail.send("DELETE", "/me")).status_code == 204
    mail_again = Shopper(http=http, to=email.upper(), program=shop.program_code)
    await mail_again.log_in()
    assert (await mail_again.get("/balance")).json()["active"] == 0
    # only keyed hashes are kept, never the contact itself
    grants = await WelcomeGrant.select(WelcomeGrant.contact_hash).where(WelcomeGrant.program == shop.program_id)
    assert len(grants) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", g["contact_hash"]) for g in grants)
    assert await count_rows("welcome_grant", "contact_hash IN ({}, {})", phone, email) == 0


async def test_the_privacy_text_says_what_is_kept_for_the_welcome_bonus(http) -> None:
    page = await http.get("/login", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert 'data-testid="privacy-welcome"' in page.text and ("keyed hash" in page.text or "ключевой хеш" in page.text)


# --- the website ---------------------------------------------------------------------------------------


async def test_the_website_binds_a_card_only_with_its_secret_and_sets_the_birth_date_once(server, shop) -> None:
    from tests.web.browser import NoJsBrowser

    number, secret = await emit_card_with_secret(shop)
    async with NoJsBrowser(server, program=shop.program_code) as browser:
        await browser.sign_in()
        wrong = await browser.submit("/cards/bind", {"number": number, "secret": "AAAA-BBBB-CCCC"}, page="/cards")
        assert wrong.status_code == 303
        page = (await browser.open("/cards")).text
        assert "Секретный код не подходит к этой карте." in page and number not in page
        assert (await browser.submit("/cards/bind", {"number": number, "secret": secret}, page="/cards")).status_code == 303
        page = (await browser.open("/cards")).text
        assert "Карта добавлена:" in page and number in page

        await browser.submit("/profile", {"name": "Ира", "birth_date": "1990-04-01", "locale": "ru"}, page="/profile")
        profile = (await browser.open("/profile")).text
        assert "1990-04-01" in profile and 'name="birth_date"' not in profile and "обратитесь в поддержку" in profile
        # the profile form still saves the name; a forged birth date is refused with the message
        await browser.submit("/profile", {"name": "Ирина", "locale": "ru"}, page="/profile")
        assert "Ирина" in (await browser.open("/profile")).text
        await browser.submit("/profile", {"name": "Ирина", "birth_date": "1990-11-29", "locale": "ru"}, page="/profile")
        profile = (await browser.open("/profile")).text
        assert "Дата рождения уже указана" in profile and "1990-04-01" in profile
