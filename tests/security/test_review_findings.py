"""Security review of issue 10 (after it was closed): the holes found by trying again as a cashier, a caller to the
call centre, an import key and a shopper after a second welcome bonus. Each test failed on the code as it was.

Held by tests marked `xfail(strict=True)` are holes found and reported, not fixed here (they need the ledger or
returns code another engineer is restructuring, or a contract change): they flip to a failure the day they are fixed,
so the marker is removed then.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from backend.admin.auth import create_operator_key
from loyalty_core.engine.effects import EventBonus
from loyalty_core.engine.program import Rule, RuleGroup
from loyalty_core.setup import entities as setup
from loyalty_core.shopper_auth.otp import read_inbox
from tests.factories import basic_rules, count_rows, emit_card, emit_card_with_secret, make_shop, sale_body, unique
from tests.identity.shopper import Shopper, new_phone

WELCOME = RuleGroup(code="events", name="Events", stage="event", rules=[
    Rule(code="welcome", name="Welcome bonus", effect=EventBonus(event="registered", points=500)),
])


def _type(response: Any) -> str:
    return response.json()["type"].rsplit("/", 1)[-1]


async def _welcome_shop() -> Any:
    return await make_shop(msgspec.structs.replace(basic_rules(), groups=[WELCOME]))


async def _code_sent_to(valkey: Any, phone: str) -> str:
    inbox = await read_inbox(valkey, phone, limit=1)
    assert inbox, f"no message for {phone}"
    return re.search(r"\b(\d{6})\b", inbox[0].text).group(1)  # type: ignore[union-attr]


async def _spend(http: Any, shop: Any, scan: str, points: int = 100) -> Any:
    return await http.post("/pos/v1/sales/calculate", headers=shop.headers,
                           json=sale_body(shop, [("cheese", 2, 59_900)], card=scan, redeem=points))


def _refused_as_unconfirmed(response: Any) -> None:
    assert response.status_code == 409 and _type(response) == "redeem-limit", response.text
    assert response.json()["max_redeem_points"] == 0 and response.json()["pending_confirmation"] is True


# --- the cashier keeps the card ------------------------------------------------------------------------


async def test_a_card_a_cashier_registered_to_a_strangers_phone_cannot_spend_after_the_stranger_logs_in(
        http, valkey, db_pool) -> None:
    """The gap reported after issue 10: the till registers a stranger's phone on a card the cashier keeps; the
    stranger's app login confirmed the membership and the cashier spent the points by card."""
    shop = await _welcome_shop()
    card, phone = await emit_card(shop), new_phone()
    kept = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": phone, "card_number": card})
    assert kept.status_code == 201, kept.text
    stranger = Shopper(http=http, to=phone, program=shop.program_code)
    await stranger.log_in()  # confirms the membership: it is theirs, with 500 welcome points

    _refused_as_unconfirmed(await _spend(http, shop, card))
    for path in ("/pos/v1/sales/confirm",):
        _refused_as_unconfirmed(await http.post(path, headers=shop.headers,
                                                json=sale_body(shop, [("cheese", 2, 59_900)], card=card, redeem=100)))
    batch = await http.post("/pos/v1/sales/batch", headers=shop.headers, json={"sales": [
        sale_body(shop, [("cheese", 2, 59_900)], card=card, redeem=100)]})
    [item] = batch.json()["results"]
    assert item["status"] == "rejected" and item["problem"]["type"].endswith("/redeem-limit"), item
    assert await count_rows("sale", "card_number = {}", card) == 0
    shown = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": card})
    assert "card_not_confirmed" in [n["code"] for n in shown.json()["cashier_notes"]], shown.text
    assert len(shown.json()["cashier_messages"]) == len(shown.json()["cashier_notes"])

    # the shopper sees where and when it was linked, and may confirm it (or block it)
    [listed] = (await stranger.get("/cards")).json()
    assert listed["number"] == card and listed["confirm_needed"] is True
    assert shop.store_code in listed["linked_via"] and "till-1" in listed["linked_via"] and listed["linked_at"]

    # the app's own QR code is the shopper, not the plastic: it may pay already
    token = (await stranger.get(f"/cards/{card}/qr-token")).json()["token"]
    by_app = await _spend(http, shop, token)
    assert by_app.status_code == 200 and by_app.json()["totals"]["redeemed_points"] == 100, by_app.text

    confirmed = await stranger.send("POST", f"/cards/{card}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["confirm_needed"] is False, confirmed.text
    spend = await _spend(http, shop, card)
    assert spend.status_code == 200 and spend.json()["totals"]["redeemed_points"] == 100, spend.text


async def test_the_code_read_out_at_the_till_confirms_the_card_even_after_the_shopper_logged_in(http, valkey, db_pool) -> None:
    shop = await _welcome_shop()
    card, phone = await emit_card(shop), new_phone()
    assert (await http.post("/pos/v1/members", headers=shop.headers,
                            json={"phone": phone, "card_number": card})).status_code == 201
    await Shopper(http=http, to=phone, program=shop.program_code).log_in()
    _refused_as_unconfirmed(await _spend(http, shop, card))
    again = await http.post("/pos/v1/members", headers=shop.headers, json={"phone": phone, "card_number": card})
    assert again.json()["code_sent"] is True, again.text  # a fresh code for the card, since it is not confirmed
    wrong = await http.post("/pos/v1/members", headers=shop.headers,
                            json={"phone": phone, "card_number": card, "confirmation_code": "000000"})
    assert wrong.status_code == 409 and _type(wrong) == "confirmation-required"
    _refused_as_unconfirmed(await _spend(http, shop, card))
    code = await _code_sent_to(valkey, phone)
    right = await http.post("/pos/v1/members", headers=shop.headers,
                            json={"phone": phone, "card_number": card, "confirmation_code": code})
    assert right.status_code == 201 and right.json()["status"] == "active", right.text
    assert (await _spend(http, shop, card)).status_code == 200


async def test_the_website_shows_where_a_card_was_linked_and_confirms_it(server, http, db_pool) -> None:
    from tests.web.browser import NoJsBrowser

    shop = await _welcome_shop()
    card, phone = await emit_card(shop), new_phone()
    assert (await http.post("/pos/v1/members", headers=shop.headers,
                            json={"phone": phone, "card_number": card})).status_code == 201
    async with NoJsBrowser(server, program=shop.program_code, to=phone) as browser:
        await browser.sign_in()
        page = (await browser.open("/cards")).text
        assert 'data-testid="confirm-needed"' in page and shop.store_code in page, page
        _refused_as_unconfirmed(await _spend(http, shop, card))
        done = await browser.submit(f"/cards/{card}/confirm", {}, page="/cards")
        assert done.status_code == 303, done.text
        assert 'data-testid="confirm-needed"' not in (await browser.open("/cards")).text
    assert (await _spend(http, shop, card)).status_code == 200


async def test_another_shoppers_unconfirmed_card_cannot_be_confirmed_or_seen(http, valkey, db_pool) -> None:
    shop = await _welcome_shop()
    card, phone = await emit_card(shop), new_phone()
    await http.post("/pos/v1/members", headers=shop.headers, json={"phone": phone, "card_number": card})
    other = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await other.log_in()
    assert (await other.send("POST", f"/cards/{card}/confirm")).status_code == 404
    assert card not in [c["number"] for c in (await other.get("/cards")).json()]
    _refused_as_unconfirmed(await _spend(http, shop, card))


# --- the call centre and an import attach a card to an existing member -----------------------------------


async def test_a_caller_with_a_plastic_card_and_a_members_phone_cannot_spend_that_members_points(http, db_pool) -> None:
    """Social engineering: anyone can pick up an emitted card with its secret; they call in with a member's phone and
    the card's number and secret. The call centre cannot tell the caller owns the phone."""
    shop = await _welcome_shop()
    victim = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await victim.log_in()  # 500 welcome points
    number, secret = await emit_card_with_secret(shop)
    support = {"Authorization": f"Bearer {(await create_operator_key(unique('desk'), ['support'])).key}"}
    called = await http.post("/admin/v1/members", headers=support, params={"program": shop.program_code},
                             json={"phone": victim.to, "card_number": number, "card_secret": secret})
    assert called.status_code == 201, called.text
    _refused_as_unconfirmed(await _spend(http, shop, number))
    [card] = [c for c in (await victim.get("/cards")).json() if c["number"] == number]
    assert card["confirm_needed"] is True and card["linked_via"] == "the call centre"
    blocked = await victim.send("POST", f"/cards/{number}/block", json={"reason": "not mine"})
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"


async def test_an_import_cannot_give_an_existing_member_a_card_that_spends_their_points(http, db_pool) -> None:
    shop = await _welcome_shop()
    victim = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await victim.log_in()
    number = await emit_card(shop)
    importer = {"Authorization": f"Bearer {(await create_operator_key(unique('legacy'), ['import'])).key}"}
    imported = await http.post("/admin/v1/members/import", headers=importer, params={"program": shop.program_code},
                               json=[{"phone": victim.to, "card_number": number}])
    assert imported.status_code == 201, imported.text
    _refused_as_unconfirmed(await _spend(http, shop, number))

    # a customer the import creates gets its legacy card as it was: the import vouches for it
    fresh_card, fresh_phone = await emit_card(shop), new_phone()
    created = await http.post("/admin/v1/members/import", headers=importer, params={"program": shop.program_code},
                              json=[{"phone": fresh_phone, "card_number": fresh_card, "balance": 300}])
    assert created.status_code == 201 and created.json()["new_customers"] == 1, created.text
    assert (await _spend(http, shop, fresh_card)).status_code == 200


# --- account takeover by adding a contact --------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["call_centre", "import"])
async def test_a_caller_cannot_add_their_phone_to_someone_elses_email_account(http, db_pool, channel) -> None:
    """The call centre (or an import) registering {phone: the caller's, email: a member's} added the phone to the
    member's account (it had none), and the caller's phone code then logged in to it: points, profile, deletion."""
    shop = await _welcome_shop()
    victim = Shopper(http=http, to=f"{unique('victim')}@example.com", program=shop.program_code)
    await victim.log_in()
    caller_phone = new_phone()
    if channel == "call_centre":
        support = {"Authorization": f"Bearer {(await create_operator_key(unique('desk'), ['support'])).key}"}
        done = await http.post("/admin/v1/members", headers=support, params={"program": shop.program_code},
                               json={"phone": caller_phone, "email": victim.to})
    else:
        importer = {"Authorization": f"Bearer {(await create_operator_key(unique('legacy'), ['import'])).key}"}
        done = await http.post("/admin/v1/members/import", headers=importer, params={"program": shop.program_code},
                               json=[{"phone": caller_phone, "email": victim.to}])
    assert done.status_code == 201, done.text
    caller = Shopper(http=http, to=caller_phone, program=shop.program_code)
    await caller.log_in()
    assert caller.customer_id != victim.customer_id
    assert (await caller.get("/me")).json()["email"] is None
    assert (await victim.get("/me")).json()["phone"] is None


# --- the welcome bonus by e-mail sub-addresses --------------------------------------------------------------


async def test_one_mailbox_gets_one_welcome_bonus_whatever_sub_address_or_gmail_spelling(http, db_pool) -> None:
    shop = await _welcome_shop()
    user = unique("zed").replace("-", "")
    first = Shopper(http=http, to=f"{user}@gmail.com", program=shop.program_code)
    await first.log_in()
    assert (await first.get("/balance")).json()["active"] == 500
    for spelling in (f"{user}+loyalty@gmail.com", f"{user[:2]}.{user[2:]}@gmail.com", f"{user.upper()}@googlemail.com",
                     f"{user}+x@GMAIL.com"):
        again = Shopper(http=http, to=spelling, program=shop.program_code)
        await again.log_in()
        assert (await again.get("/balance")).json()["active"] == 0, spelling
    # another provider: a +tag is the same mailbox there too; dots are not
    other = unique("ann").replace("-", "")
    await Shopper(http=http, to=f"{other}@mail.ru", program=shop.program_code).log_in()
    tagged = Shopper(http=http, to=f"{other}+2@mail.ru", program=shop.program_code)
    await tagged.log_in()
    assert (await tagged.get("/balance")).json()["active"] == 0
    dotted = Shopper(http=http, to=f"{other[:2]}.{other[2:]}@mail.ru", program=shop.program_code)
    await dotted.log_in()
    assert (await dotted.get("/balance")).json()["active"] == 500


# --- buying and returning to farm a purchase-count bonus ------------------------------------------------------


async def test_purchases_returned_whole_do_not_count_toward_every_5th_purchase(http, db_pool) -> None:
    """The demo's "every 5th purchase this month: +100": four loaves bought and returned made the next real receipt
    the 5th purchase; repeated before every shop, +100 points each time for nothing."""
    from loyalty_core.engine.conditions import Arith, Compare, Var
    from loyalty_core.engine.effects import FixedPoints
    from loyalty_core.engine.program import CounterDef

    fifth = RuleGroup(code="counts", name="Counts", stage="accrual", rules=[Rule(
        code="every-5th", name="Every 5th purchase", effect=FixedPoints(points=100),
        condition=Compare(left=Arith(fn="%", left=Arith(fn="+", left=Var(name="member.counter.month"), right=1),
                                     right=5), cmp="==", right=0))])
    shop = await make_shop(msgspec.structs.replace(basic_rules(counters=[CounterDef(name="month", period="month")]),
                                                   groups=[fifth]))
    card = await emit_card(shop)

    async def buy() -> dict:
        done = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                               json=sale_body(shop, [("bread", 1, 4_990)], card=card))
        assert done.status_code == 200, done.text
        return done.json()

    for n in range(4):
        bought = await buy()
        back = await http.post(f"/pos/v1/sales/{bought['sale_id']}/returns", headers=shop.headers,
                               json={"return_id": f"R{n}", "lines": [{"line_no": 1, "quantity": 1}]})
        assert back.status_code == 200, back.text
    kept = await buy()
    assert "every-5th" not in [a["rule"] for a in kept["applied"]], kept
    # kept purchases count as before: four more make the 5th
    for _ in range(3):
        await buy()
    assert "every-5th" in [a["rule"] for a in (await buy())["applied"]]


# --- a store bound to another program --------------------------------------------------------------------------


async def test_a_store_bound_to_another_program_cannot_read_or_spend_a_members_points(http, valkey, db_pool) -> None:
    """Stores may be bound to one program so that a partner's store does not reach another program's points; that
    held for returns by receipt, but its tills identified any program's card and spent its points."""
    from tests.factories import make_member
    from tests.security.test_till_scope import another_store

    ours, theirs = await make_shop(), await make_shop()
    partner = await another_store(theirs, program=theirs.program_id)
    member = await make_member(ours, points=1_000)
    assert (await http.post("/pos/v1/identify", headers=partner.headers, json={"scan": member.card})).status_code == 404
    assert (await http.post("/pos/v1/identify", headers=partner.headers, json={"scan": member.phone})).status_code == 404
    body = sale_body(partner, [("cheese", 1, 100_000)], card=member.card, redeem=200)
    for path in ("/pos/v1/sales/calculate", "/pos/v1/sales/confirm"):
        refused = await http.post(path, headers=partner.headers, json=body)
        assert refused.status_code == 404 and _type(refused) == "card-not-found", refused.text
    batch = await http.post("/pos/v1/sales/batch", headers=partner.headers, json={"sales": [body]})
    assert batch.json()["results"][0]["status"] == "rejected", batch.text
    asked = await http.post("/pos/v1/confirmations", headers=partner.headers, json={"scan": member.phone})
    assert asked.status_code == 404, asked.text
    card = await emit_card(ours)
    handed = await http.post("/pos/v1/members", headers=partner.headers, json={"phone": new_phone(), "card_number": card})
    assert handed.status_code == 404, handed.text
    assert await count_rows("sale", "card_number = {}", member.card) == 0
    # the member's own program's stores, and unbound stores, still serve the card
    assert (await http.post("/pos/v1/identify", headers=ours.headers, json={"scan": member.card})).status_code == 200
    own = await another_store(ours, program=ours.program_id)
    spent = await http.post("/pos/v1/sales/confirm", headers=own.headers,
                            json=sale_body(own, [("cheese", 1, 100_000)], card=member.card, redeem=200))
    assert spent.status_code == 200 and spent.json()["totals"]["redeemed_points"] == 200, spent.text


# --- the daily cap across tills ---------------------------------------------------------------------------------


async def test_the_daily_accrual_cap_holds_across_tills_confirming_at_the_same_moment(http, db_pool) -> None:
    import asyncio

    shop = await make_shop(basic_rules(max_accrual_per_day=50))
    second = {"Authorization": f"Bearer {(await setup.create_till_key(shop.store_code, 'till-2')).key}"}
    from tests.factories import make_member

    card = (await make_member(shop)).card
    bodies = [sale_body(shop, [("cheese", 2, 59_900)], card=card) for _ in range(6)]  # 35 points each uncapped
    answers = await asyncio.gather(*(
        http.post("/pos/v1/sales/confirm", headers=shop.headers if n % 2 else second, json=body)
        for n, body in enumerate(bodies)
    ))
    assert all(a.status_code in (200, 409) for a in answers), [(a.status_code, a.text[:300]) for a in answers]
    accrued = [a.json()["totals"]["accrued_points"] for a in answers if a.status_code == 200]
    assert accrued and sum(accrued) <= 50, accrued
    shown = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": card})
    assert shown.json()["balance"]["pending"] <= 50, shown.text


# --- staff are audited ----------------------------------------------------------------------------------------


async def test_a_point_adjustment_records_which_operator_key_made_it(http, db_pool) -> None:
    """Adjustments kept only the reason: nothing said which support key gave a member 10 000 points."""
    shop = await _welcome_shop()
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in()
    membership = (await http.post("/pos/v1/identify", headers=shop.headers,
                                  json={"scan": shopper.card})).json()["member"]["id"]
    desk = unique("desk")
    support = {"Authorization": f"Bearer {(await create_operator_key(desk, ['support'])).key}"}
    given = await http.post(f"/admin/v1/members/{membership}/adjustments", headers=support,
                            json={"points": 10_000, "reason": "goodwill"})
    assert given.status_code == 201, given.text
    trail = (await http.get(f"/admin/v1/members/{shopper.customer_id}/audit", headers=support)).json()
    [event] = [e for e in trail if e["action"] == "points.adjust"]
    assert (event["actor"], event["reason"], event["after"]["points"]) == (desk, "goodwill", 10_000), event
    mass = await http.post("/admin/v1/adjustments/mass", headers=support,
                           json={"membership_ids": [membership], "points": -100, "reason": "correction"})
    assert mass.status_code == 200, mass.text
    trail = (await http.get(f"/admin/v1/members/{shopper.customer_id}/audit", headers=support)).json()
    assert [(e["actor"], e["after"]["points"]) for e in trail if e["action"] == "points.adjust"] == [
        (desk, -100), (desk, 10_000)]


async def test_an_import_records_which_key_brought_how_many_points_for_whom(http, db_pool) -> None:
    from loyalty_core.office.audit import events_of

    shop = await make_shop()
    name = unique("legacy")
    importer = {"Authorization": f"Bearer {(await create_operator_key(name, ['import'])).key}"}
    done = await http.post("/admin/v1/members/import", headers=importer, params={"program": shop.program_code},
                           json=[{"phone": new_phone(), "balance": 700}, {"phone": new_phone()}])
    assert done.status_code == 201, done.text
    [event] = await events_of(f"program:{shop.program_code}")
    first = done.json()["rows"][0]["customer_id"]
    assert (event.actor, event.action, event.after["points"]) == (name, "members.import", 700)
    assert event.after["points_by_customer"] == {str(first): 700} and event.after["rows"] == 2


# --- reported, not fixed here ----------------------------------------------------------------------------------


async def test_a_till_of_another_store_that_only_guesses_receipts_is_bounded(http, db_pool) -> None:
    """The contract finds another store's receipt by what it prints (store, date, number), and numbers are often
    sequential. A wrong printed total answers as for an unknown receipt, and a till may look up only so many other
    stores' receipts an hour (20 by default), so guessing cannot sweep a store's day (docs/till-choices.md)."""
    shop = await make_shop()
    member_card = await emit_card(shop)
    receipt = unique("000")
    sold = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                           json=sale_body(shop, [("cheese", 2, 59_900)], card=member_card, receipt=receipt))
    assert sold.status_code == 200, sold.text
    other_store = unique("store")
    await setup.create_store(other_store, "Other store", timezone="Europe/Moscow", region="Moscow", format="hyper")
    other = {"Authorization": f"Bearer {(await setup.create_till_key(other_store, 'till-9')).key}"}
    body = sale_body(shop, [("cheese", 2, 59_900)], receipt=receipt)
    original = {"store": shop.store_code, "business_date": body["business_date"], "receipt_id": receipt}
    lines = [{"line_no": 1, "quantity": 1}]
    before = await count_rows("sale_return")

    wrong_total = await http.post("/pos/v1/returns", headers=other, json={
        "original": {**original, "total": sold.json()["totals"]["to_pay"] + 1}, "return_id": "R-guess", "lines": lines})
    assert wrong_total.status_code == 404 and wrong_total.json()["type"].endswith("/sale-not-found"), wrong_total.text
    assert await count_rows("sale_return") == before

    for n in range(19):
        miss = await http.post("/pos/v1/returns", headers=other, json={
            "original": {**original, "receipt_id": f"{receipt}-{n}"}, "return_id": f"R-{n}", "lines": lines})
        assert miss.status_code == 404, miss.text
    limited = await http.post("/pos/v1/returns", headers=other, json={
        "original": {**original, "total": sold.json()["totals"]["to_pay"]}, "return_id": "R-right", "lines": lines})
    assert limited.status_code == 429 and limited.json()["type"].endswith("/rate-limited"), limited.text
    assert await count_rows("sale_return") == before


async def test_one_support_key_cannot_mint_a_fortune_alone(http, db_pool) -> None:
    """Above the admin's limit an adjustment waits (202, a pending approval); nothing moves until another
    operator approves it, and the key that asked cannot (docs/back-office.md, four eyes)."""
    shop = await make_shop()
    card = await emit_card(shop)
    member = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": card})
    await http.post("/pos/v1/sales/confirm", headers=shop.headers, json=sale_body(shop, [("cheese", 1, 59_900)], card=card))
    membership = (await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": card})).json()["member"]["id"]
    assert member.status_code == 200
    support = {"Authorization": f"Bearer {(await create_operator_key(unique('desk'), ['support'])).key}"}
    minted = await http.post(f"/admin/v1/members/{membership}/adjustments", headers=support,
                             json={"points": 10_000_000, "reason": "goodwill"})
    assert minted.status_code in (202, 403, 409, 422), minted.text
    assert minted.status_code == 202 and minted.json()["status"] == "pending", minted.text
    approval = minted.json()["approval_id"]
    history = await http.get(f"/admin/v1/members/{membership}/history", headers=support)
    assert history.json()["balance"]["active"] < 10_000_000, history.text
    boss = {"Authorization": f"Bearer {(await create_operator_key(unique('boss'), ['admin'])).key}"}
    own = await http.post(f"/admin/v1/members/{membership}/adjustments", headers=boss,
                          json={"points": 10_000_000, "reason": "goodwill"})
    assert own.status_code == 202, own.text
    mine = await http.post(f"/admin/v1/approvals/{own.json()['approval_id']}/approve", headers=boss)
    assert mine.status_code == 403 and mine.json()["type"].endswith("/self-approval"), mine.text
    assert (await http.post(f"/admin/v1/approvals/{approval}/approve", headers=support)).status_code == 403
    approved = await http.post(f"/admin/v1/approvals/{approval}/approve", headers=boss)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    again = await http.post(f"/admin/v1/approvals/{approval}/approve", headers=boss)
    assert again.status_code == 409, again.text
    history = await http.get(f"/admin/v1/members/{membership}/history", headers=support)
    assert history.json()["balance"]["active"] >= 10_000_000, history.text


async def test_a_marketer_cannot_read_a_members_birth_date_or_look_a_phone_up_through_simulate(http, db_pool) -> None:
    """simulate answered a marketer key (rules and coupons) any phone's member with birth date, balance and purchase
    counts, without the till's phone limit. A marketer names a member by card or membership id and sees no birth
    date; support (who looks members up) still may."""
    shop = await make_shop()
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in(birth_date="1990-05-17")
    marketer = {"Authorization": f"Bearer {(await create_operator_key(unique('mkt'), ['marketer'])).key}"}
    lines = sale_body(shop, [("cheese", 1, 59_900)])["lines"]
    by_phone = await http.post("/admin/v1/simulate", headers=marketer, json={"lines": lines, "card": shopper.to})
    assert by_phone.status_code == 403, by_phone.text
    by_card = await http.post("/admin/v1/simulate", headers=marketer, json={"lines": lines, "card": shopper.card})
    assert by_card.status_code == 200 and by_card.json()["member"]["birth_date"] is None, by_card.text
    assert by_card.json()["member"]["tier_code"] == "basic"  # what the rules need is still there
    support = {"Authorization": f"Bearer {(await create_operator_key(unique('desk'), ['support'])).key}"}
    seen = await http.post("/admin/v1/simulate", headers=support, json={"lines": lines, "card": shopper.to})
    assert seen.status_code == 200 and seen.json()["member"]["birth_date"] == "1990-05-17", seen.text


async def test_first_sales_of_a_fresh_card_at_two_tills_at_once_never_give_a_500(http, db_pool) -> None:
    import asyncio

    shop = await make_shop()
    second = {"Authorization": f"Bearer {(await setup.create_till_key(shop.store_code, 'till-2')).key}"}
    card = await emit_card(shop)
    for _ in range(3):  # a few rounds make the race likely enough to see
        answers = await asyncio.gather(*(
            http.post("/pos/v1/sales/confirm", headers=shop.headers if n % 2 else second,
                      json=sale_body(shop, [("cheese", 2, 59_900)], card=card)) for n in range(6)))
        assert all(a.status_code in (200, 409) for a in answers), [a.status_code for a in answers]
        card = await emit_card(shop)
