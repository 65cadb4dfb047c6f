"""The shopper's API as the mobile app uses it: profile, cards and QR, points, purchases, favourites, devices."""

from __future__ import annotations

import datetime as dt

from tests.factories import count_rows, emit_card_with_secret, sale_body
from tests.identity.shopper import Shopper


async def _buy(http, shop, card: str, lines=None, redeem: int = 0) -> dict:
    response = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                               json=sale_body(shop, lines or [("milk", 1, 9_990), ("cheese", 1, 59_900)], card=card, redeem=redeem))
    assert response.status_code == 200, response.text
    return response.json()


async def test_profile_update_and_bad_input_writes_nothing(shopper_factory) -> None:
    shopper = await shopper_factory()
    changed = await shopper.send("PATCH", "/me", json={"name": "Анна Петрова", "birth_date": "1990-05-17"})
    assert changed.status_code == 200 and changed.json()["name"] == "Анна Петрова"
    for bad in [{"birth_date": "2990-01-01"}, {"phone": "+79990000000"}, {"name": "x" * 201}, {"locale": "xx"}, []]:
        response = await shopper.send("PATCH", "/me", json=bad)
        assert response.status_code in (400, 422), bad
        assert response.headers["content-type"].startswith("application/problem+json")
    me = (await shopper.get("/me")).json()
    assert (me["name"], me["birth_date"], me["phone"]) == ("Анна Петрова", "1990-05-17", shopper.to)


async def test_consents_keep_when_and_where(shopper_factory) -> None:
    shopper = await shopper_factory(consents=[{"channel": "sms", "granted": True}])
    response = await shopper.send("PUT", "/me/consents", json={"consents": [{"channel": "sms", "granted": False},
                                                                             {"channel": "push", "granted": True}],
                                                                "source": "web"})
    assert response.status_code == 200
    body = response.json()
    assert {(c["channel"], c["granted"], c["source"]) for c in body["current"]} == {("sms", False, "web"), ("push", True, "web")}
    assert len(body["history"]) == 3
    before = await count_rows("consent", "customer = {}", shopper.customer_id)
    bad = await shopper.send("PUT", "/me/consents", json={"consents": [{"channel": "fax", "granted": True}]})
    assert bad.status_code in (400, 422)
    assert await count_rows("consent", "customer = {}", shopper.customer_id) == before


async def test_card_replacement_keeps_the_whole_history(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory()
    old = shopper.card
    sale = await _buy(http, shop, old)
    blocked = await shopper.send("POST", f"/cards/{old}/block", json={"reason": "lost in the metro"})
    assert blocked.json()["status"] == "blocked" and blocked.json()["blocked_reason"] == "lost in the metro"
    refused = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": old})
    assert refused.status_code == 409
    replaced = await shopper.send("POST", f"/cards/{old}/replace", json={"reason": "lost"})
    assert replaced.status_code == 200, replaced.text
    new = replaced.json()["number"]
    assert new != old and replaced.json()["status"] == "active"
    cards = {c["number"]: c for c in (await shopper.get("/cards")).json()}
    assert cards[old]["status"] == "replaced" and cards[old]["replaced_by"] == new
    # the wallet pass of the old card hears about both changes (voided at its next fetch)
    assert await count_rows("notification", "card = (SELECT id FROM card WHERE number = {}) AND kind = 'pass_update'", old) >= 3
    # history and balance belong to the membership, not the card
    purchases = (await shopper.get("/purchases")).json()["items"]
    assert [p["id"] for p in purchases] == [sale["sale_id"]]
    assert (await shopper.get("/balance")).json()["pending"] == sale["totals"]["accrued_points"]
    second = await _buy(http, shop, new)
    assert [p["id"] for p in (await shopper.get("/purchases")).json()["items"]] == [second["sale_id"], sale["sale_id"]]
    assert (await shopper.send("POST", f"/cards/{old}/replace", json={})).status_code == 409


async def test_binding_a_plastic_card_moves_its_anonymous_points(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory()
    plastic, secret = await emit_card_with_secret(shop)  # issue 10: the secret printed with the card proves possession
    sale = await _buy(http, shop, plastic)
    bound = await shopper.send("POST", "/cards", json={"number": plastic, "secret": secret})
    assert bound.status_code == 200, bound.text
    assert bound.json()["status"] == "active" and bound.json()["kind"] == "plastic"
    assert (await shopper.get("/balance")).json()["pending"] == sale["totals"]["accrued_points"]
    history = (await shopper.get("/history")).json()["items"]
    assert history[0]["kind"] == "transfer" and history[0]["amount"] == sale["totals"]["accrued_points"]
    # nobody else can take it any more
    thief = await Shopper(http=http, to="+7999" + shopper.to[-7:][::-1], program=shop.program_code).log_in()
    again = await http.post("/api/v1/cards", params={"program": shop.program_code},
                            json={"number": plastic, "secret": secret},
                            headers={"Authorization": f"Bearer {thief['access_token']}"})
    assert again.status_code == 409 and again.json()["type"].endswith("/card-taken")  # issue 10: was 404


async def test_qr_codes_of_the_card(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory()
    svg = await shopper.get(f"/cards/{shopper.card}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text
    png = await shopper.get(f"/cards/{shopper.card}/qr.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    token = (await shopper.get(f"/cards/{shopper.card}/qr-token")).json()
    assert token["expires_in"] == 30 and token["token"].startswith("KQ1.")
    identified = await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": token["token"]})
    assert identified.status_code == 200, identified.text
    assert identified.json()["card"]["number"] == shopper.card


async def test_balance_history_and_purchases_with_explanations_paginate(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory()
    sales = [await _buy(http, shop, shopper.card) for _ in range(3)]
    balance = (await shopper.get("/balance")).json()
    accrued = sum(s["totals"]["accrued_points"] for s in sales)
    assert balance["active"] == 0 and balance["pending"] == accrued
    assert dt.date.fromisoformat(balance["pending_lots"][0]["on"]) > dt.date.today()
    page1 = (await shopper.get("/purchases", params={"limit": 2})).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = (await shopper.get("/purchases", params={"limit": 2, "cursor": page1["next_cursor"]})).json()
    assert [p["id"] for p in page1["items"] + page2["items"]] == [s["sale_id"] for s in reversed(sales)]
    assert page2["next_cursor"] is None
    purchase = (await shopper.get(f"/purchases/{sales[0]['sale_id']}")).json()
    assert [line["sku"] for line in purchase["lines"]] == [shop.skus["milk"], shop.skus["cheese"]]
    assert purchase["lines"][0]["name"] == "Milk"
    assert sum(line["accrued_points"] for line in purchase["lines"]) == purchase["accrued_points"]
    assert purchase["applied"] and all(a["explanation"] for a in purchase["applied"])
    history = (await shopper.get("/history", params={"limit": 2})).json()
    assert history["items"][0]["sale_id"] == sales[-1]["sale_id"] and history["items"][0]["receipt_id"]
    assert (await shopper.get("/history", params={"cursor": "bogus"})).status_code == 422
    assert (await shopper.get("/history", params={"limit": 1000})).status_code in (400, 422)


async def test_tier_progress(shopper_factory) -> None:
    tier = (await (await shopper_factory()).get("/tier")).json()
    assert tier["current"]["code"] == "basic" and tier["next"]["code"] == "silver"
    assert tier["remaining_to_next"] == tier["next"]["threshold_spend"] - tier["spend"]


async def test_favourite_categories_once_a_month_with_history(shop, shopper_factory) -> None:
    shopper = await shopper_factory()
    offer = (await shopper.get("/favourite-categories")).json()
    assert offer["count"] == 3 and offer["chosen"] == []
    dairy = [c["code"] for c in offer["selectable"] if c["name"] == "Dairy"][-1]
    chosen = await shopper.send("PUT", "/favourite-categories", json={"categories": [dairy]})
    assert chosen.status_code == 200 and [c["code"] for c in chosen.json()["chosen"]] == [dairy]
    assert dt.date.fromisoformat(chosen.json()["next_change_on"]).day == 1
    again = await shopper.send("PUT", "/favourite-categories", json={"categories": [dairy]})
    assert again.status_code == 409
    not_selectable = await shopper.send("PUT", "/favourite-categories", json={"categories": ["alcohol-nope"]})
    assert not_selectable.status_code == 422


async def test_push_devices_and_coupons(shopper_factory) -> None:
    shopper = await shopper_factory()
    device = await shopper.send("POST", "/me/devices", json={"platform": "fcm", "token": "fcm-token-" + shopper.to[-7:]})
    assert device.status_code == 201
    same = await shopper.send("POST", "/me/devices", json={"platform": "fcm", "token": "fcm-token-" + shopper.to[-7:]})
    assert same.json()["id"] == device.json()["id"]
    assert [d["id"] for d in (await shopper.get("/me/devices")).json()] == [device.json()["id"]]
    assert (await shopper.send("POST", "/me/devices", json={"platform": "sms", "token": "x" * 20})).status_code in (400, 422)
    assert (await shopper.send("DELETE", f"/me/devices/{device.json()['id']}")).status_code == 204
    assert (await shopper.get("/me/devices")).json() == []
    assert (await shopper.get("/coupons")).json() == []


async def test_deleting_the_account_forgets_the_person_and_keeps_the_ledger(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory(name="Мария")
    await _buy(http, shop, shopper.card)
    entries = await count_rows("ledger_entry e JOIN account a ON a.id = e.account JOIN membership m ON m.id = a.membership",
                               "m.customer = {}", shopper.customer_id)
    assert (await shopper.send("DELETE", "/me")).status_code == 204
    assert await count_rows("customer", "id = {} AND phone IS NULL AND name = '' AND status = 'deleted'", shopper.customer_id) == 1
    assert await count_rows("ledger_entry e JOIN account a ON a.id = e.account JOIN membership m ON m.id = a.membership",
                            "m.customer = {}", shopper.customer_id) == entries
    assert (await shopper.get("/me")).status_code == 401
    assert (await http.post("/api/v1/auth/refresh", json={"refresh_token": shopper.refresh})).status_code == 401
    # the same phone can register afresh: a new person as far as we know
    again = await Shopper(http=http, to=shopper.to, program=shop.program_code).log_in()
    assert again["customer_id"] != shopper.customer_id and again["new_customer"]
