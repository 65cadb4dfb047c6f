"""A shopper adds the card to Apple Wallet and the pass follows the balance: the PassKit web service over real HTTP.

Every pass fetched is checked as Wallet would (openssl cms against the server's test chain, manifest hashes).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import httpx
import pytest

from loyalty_core.shopper_auth.tokens import start_session
from loyalty_core.tables import Card
from tests.factories import Member, Shop, make_member, sale_body
from tests.fakes.pkpass_check import verify_pkpass
from wallet_passes.settings import DEV_PASS_TYPE_ID

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"
PASS_TYPE = DEV_PASS_TYPE_ID


def server_root() -> Path:
    """The server signs with the test chain it generated under its data dir."""
    return Path(os.environ["KOPILKA_DATA_DIR"]) / "wallet-test-chain" / "root.pem"


async def shopper_headers(member: Member) -> dict[str, str]:
    assert member.customer_id is not None
    tokens = await start_session(member.customer_id, "test-secret", dt.datetime.now(dt.UTC))
    return {"Authorization": f"Bearer {tokens.access_token}"}


async def download(http: httpx.AsyncClient, member: Member) -> tuple[dict, httpx.Response]:
    r = await http.get(f"/api/v1/cards/{member.card}/pass.pkpass", headers=await shopper_headers(member))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.pkpass")
    return verify_pkpass(r.content, server_root()), r


def apple(token: str) -> dict[str, str]:
    return {"Authorization": f"ApplePass {token}"}


def primary_balance(pass_json: dict) -> int:
    return pass_json["storeCard"]["primaryFields"][0]["value"]


async def test_the_shopper_downloads_a_signed_pass_of_the_card(http: httpx.AsyncClient, shop: Shop, server: str) -> None:
    member = await make_member(shop, points=1200, expires_in_days=30)
    pass_json, response = await download(http, member)
    assert pass_json["serialNumber"] == member.card
    assert pass_json["passTypeIdentifier"] == PASS_TYPE
    assert primary_balance(pass_json) == 1200
    # the member's language is Russian (customer.locale default): labels and messages follow it
    assert pass_json["storeCard"]["primaryFields"][0]["changeMessage"] == "Баланс баллов: %@"
    assert pass_json["storeCard"]["headerFields"][0]["value"] == "Basic"
    assert pass_json["barcodes"][0] == {"format": "PKBarcodeFormatQR", "message": member.card,
                                        "messageEncoding": "iso-8859-1", "altText": member.card}
    assert pass_json["webServiceURL"] == f"{server}/passkit"
    assert len(pass_json["authenticationToken"]) >= 16
    assert pass_json["voided"] is False
    back = {f["key"]: f for f in pass_json["storeCard"]["backFields"]}
    assert back["expiring"]["value"].startswith("1200 баллов сгорят ")
    assert response.headers["last-modified"].endswith("GMT")

    again, _ = await download(http, member)
    assert again["authenticationToken"] == pass_json["authenticationToken"]  # made once, then kept

    anonymous = await http.get(f"/api/v1/cards/{member.card}/pass.pkpass")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith(PROBLEM)
    stranger = await make_member(shop)
    foreign = await http.get(f"/api/v1/cards/{member.card}/pass.pkpass", headers=await shopper_headers(stranger))
    assert foreign.status_code == 404 and foreign.headers["content-type"].startswith(PROBLEM)


async def test_a_device_registers_learns_of_a_sale_and_fetches_the_new_pass(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1200)
    pass_json, _ = await download(http, member)
    token = pass_json["authenticationToken"]
    device = f"device-{member.card}"
    registration = f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE}/{member.card}"

    assert (await http.post(registration, json={"pushToken": "ab12cd34"}, headers=apple(token))).status_code == 201
    assert (await http.post(registration, json={"pushToken": "ab12cd34"}, headers=apple(token))).status_code == 200
    assert (await http.post(registration, json={"pushToken": "ab12cd34"}, headers=apple("x" * 32))).status_code == 401
    assert (await http.post(registration, json={"pushToken": "ab12cd34"})).status_code == 401
    bad = await http.post(registration, json={"token": 1}, headers=apple(token))
    assert bad.status_code in (400, 422) and bad.headers["content-type"].startswith(PROBLEM)

    listing = f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE}"
    first = await http.get(listing)
    assert first.status_code == 200, first.text
    assert first.json()["serialNumbers"] == [member.card]
    tag = first.json()["lastUpdated"]
    assert isinstance(tag, str)
    assert (await http.get(listing, params={"passesUpdatedSince": tag})).status_code == 204
    bad_tag = await http.get(listing, params={"passesUpdatedSince": "yesterday"})
    assert bad_tag.status_code == 422 and bad_tag.headers["content-type"].startswith(PROBLEM)

    latest = f"/passkit/v1/passes/{PASS_TYPE}/{member.card}"
    fetched = await http.get(latest, headers=apple(token))
    assert fetched.status_code == 200
    assert primary_balance(verify_pkpass(fetched.content, server_root())) == 1200
    modified = fetched.headers["last-modified"]
    assert (await http.get(latest, headers={**apple(token), "If-Modified-Since": modified})).status_code == 304
    assert (await http.get(latest, headers=apple("wrong-token-wrong-token"))).status_code == 401

    sale = sale_body(shop, [("milk", 2, 10_000)], card=member.card, redeem=50)
    confirmed = await http.post("/pos/v1/sales/confirm", json=sale, headers=shop.headers)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["balance_after"]["active"] == 1150

    changed = await http.get(listing, params={"passesUpdatedSince": tag})
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == [member.card]
    assert int(changed.json()["lastUpdated"]) > int(tag)
    refreshed = await http.get(latest, headers={**apple(token), "If-Modified-Since": modified})
    assert refreshed.status_code == 200
    new_pass = verify_pkpass(refreshed.content, server_root())
    assert primary_balance(new_pass) == 1150
    pending = confirmed.json()["balance_after"]["pending"]
    assert pending > 0 and new_pass["storeCard"]["secondaryFields"][1]["value"] == pending

    log = await http.post("/passkit/v1/log", json={"logs": ["[2026-01-01] Web service error for pass: 500"]})
    assert log.status_code == 200

    assert (await http.delete(registration, headers=apple("x" * 32))).status_code == 401
    assert (await http.delete(registration, headers=apple(token))).status_code == 200
    assert (await http.get(listing)).status_code == 204


async def test_a_blocked_card_voids_its_pass(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=10)
    pass_json, _ = await download(http, member)
    from loyalty_core.piccolo_conf import DB
    from loyalty_core.messaging import outbox

    async with DB.transaction():
        await Card.update({Card.status: "blocked", Card.blocked_reason: "lost"}).where(Card.id == member.card_id)
        await outbox.pass_changed(member.card_id, dt.datetime.now(dt.UTC))
    fetched = await http.get(f"/passkit/v1/passes/{PASS_TYPE}/{member.card}",
                             headers=apple(pass_json["authenticationToken"]))
    assert fetched.status_code == 200
    assert verify_pkpass(fetched.content, server_root())["voided"] is True
