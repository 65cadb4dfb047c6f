"""The story the issue must hold: a sale at the till reaches the shopper's phone and Wallet, worker running.

The server is the real app under uvicorn; the worker runs in this process against the fake APNs and FCM.
"""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from backend.push.worker import WorkerConfig, run_worker
from tests.factories import Shop, make_member, sale_body
from tests.fakes.apns import FakeApns
from tests.fakes.fixtures import APP_TOPIC
from tests.fakes.pkpass_check import verify_pkpass
from tests.wallet_live.test_passkit import (
    PASS_TYPE,
    apple,
    primary_balance,
    server_root,
    shopper_headers,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_sale_at_the_till_reaches_the_phone_and_the_wallet_pass(
        http: httpx.AsyncClient, shop: Shop, worker_config: WorkerConfig, apns_fake: FakeApns) -> None:
    member = await make_member(shop, points=1200)
    shopper = await shopper_headers(member)
    app_token, pass_push_token, device = secrets.token_hex(32), secrets.token_hex(32), secrets.token_hex(8)

    # the app asks for push permission and registers its token
    consent = await http.put("/api/v1/me/consents", json={"consents": [{"channel": "push", "granted": True}]},
                             headers=shopper)
    assert consent.status_code == 200, consent.text
    registered = await http.post("/api/v1/me/devices", json={"platform": "apns", "token": app_token}, headers=shopper)
    assert registered.status_code in (200, 201), registered.text
    # the shopper adds the card to Wallet; Wallet registers for its updates
    card_pass = await http.get(f"/api/v1/cards/{member.card}/pass.pkpass", headers=shopper)
    auth = verify_pkpass(card_pass.content, server_root())["authenticationToken"]
    registration = await http.post(f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE}/{member.card}",
                                   json={"pushToken": pass_push_token}, headers=apple(auth))
    assert registration.status_code == 201
    tag = (await http.get(f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE}")).json()["lastUpdated"]

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(stop, config=worker_config))
    try:
        sale = sale_body(shop, [("milk", 2, 10_000)], card=member.card, redeem=50)
        confirmed = await http.post("/pos/v1/sales/confirm", json=sale, headers=shop.headers)
        assert confirmed.status_code == 200, confirmed.text
        await apns_fake.wait_for(2, timeout=10)
    finally:
        stop.set()
        await worker

    by_token = {r.device_token: r for r in apns_fake.delivered()}
    wallet_push, app_push = by_token[pass_push_token], by_token[app_token]
    assert wallet_push.auth == "cert" and wallet_push.topic == PASS_TYPE and wallet_push.payload == {}
    assert app_push.auth == "token" and app_push.topic == APP_TOPIC
    assert app_push.payload["kind"] == "points_accrued"

    # Wallet, woken by the push, asks what changed and fetches the pass
    changed = await http.get(f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE}",
                             params={"passesUpdatedSince": tag})
    assert changed.status_code == 200 and changed.json()["serialNumbers"] == [member.card]
    latest = await http.get(f"/passkit/v1/passes/{PASS_TYPE}/{member.card}", headers=apple(auth))
    assert latest.status_code == 200
    assert primary_balance(verify_pkpass(latest.content, server_root())) == 1150
