"""Issue 11: a newer pass change lost, an encrypted pass key, phones offline at the till, a wrong APNs topic.

The worker runs against the local fakes, which keep what Apple and Google keep for an offline phone
(apns-expiration, FCM ttl) and know which app a device token belongs to.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization

from backend.push.settings import PushSettings
from backend.push.worker import Worker, WorkerConfig, run_worker
from loyalty_core.ledger import ops
from loyalty_core.piccolo_conf import DB
from loyalty_core.messaging import outbox as core_outbox
from loyalty_core.tables import Notification, PassRegistration, PushDevice
from tests.factories import Shop
from tests.fakes.apns import FakeApns
from tests.fakes.fixtures import APP_TOPIC, OTHER_APP_TOPIC, PASS_TYPE_ID
from tests.fakes.google import FakeGoogle
from tests.push_worker.conftest import Phone, make_phone, notification, notifications_of
from wallet_passes.certs import PassCertPaths
from wallet_passes.google import object_id
from wallet_passes.issuer import card_pass
from wallet_passes.settings import GoogleWalletSettings, WalletSettings, load_wallet_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

ISSUER = "3388000000022"


def with_google(config: WorkerConfig, google: FakeGoogle, service_account_file: Path) -> WorkerConfig:
    assert config.wallet is not None
    wallet = WalletSettings(apple=config.wallet.apple, google=GoogleWalletSettings(
        issuer_id=ISSUER, class_id="kopilka_loyalty", service_account_path=service_account_file,
        api_base_url=google.base_url, token_url=google.token_url))
    return msgspec.structs.replace(config, wallet=wallet)


async def grant(phone: Phone, points: int) -> None:
    """Points land and the pass changes, in one transaction (like a sale at the till)."""
    now = dt.datetime.now(dt.UTC)
    async with DB.transaction():
        state = await ops.lock_account(phone.member.account_id, now)
        await ops.accrue(state, points, now, kind="import", source="import", activates_at=now - dt.timedelta(seconds=1),
                         expires_at=now + dt.timedelta(days=365), reason="test grant")
        await core_outbox.pass_changed(phone.member.card_id, now)


async def pass_updates(card_id: int) -> list[dict]:
    return await Notification.select().where(
        (Notification.card == card_id) & (Notification.kind == "pass_update")).order_by(Notification.id)


async def deliveries(notification_id: int) -> dict[str, str]:
    rows = await Notification.raw(
        "SELECT target, outcome FROM notification_delivery WHERE notification = {}", notification_id)
    return {r["target"]: r["outcome"] for r in rows}


async def test_a_retried_pass_update_and_a_newer_one_reach_every_device_and_google_at_the_latest_balance(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, google_fake: FakeGoogle,
        service_account_file: Path) -> None:
    config = with_google(worker_config, google_fake, service_account_file)
    assert config.wallet is not None
    phone = await make_phone(shop, points=1670, apns=False, wallet=True)
    card = phone.member.card_id
    second_iphone = secrets.token_hex(32)
    await PassRegistration.insert(PassRegistration(card=card, device_library_id=secrets.token_hex(8),
                                                   push_token=second_iphone))
    issued = await card_pass(phone.member.card, config.wallet.apple, dt.datetime.now(dt.UTC))
    assert issued is not None
    google_id = object_id(ISSUER, phone.member.card)
    google_fake.wallet_objects[google_id] = {"id": google_id}  # the shopper saved the card to Google Wallet

    # change 1: the first iPhone and Google get it, the second iPhone's push is refused for now
    async with DB.transaction():
        await core_outbox.pass_changed(card, dt.datetime.now(dt.UTC))
    apns_fake.respond_with(503, "ServiceUnavailable", device_token=second_iphone)
    await run_worker(once=True, config=config)
    [older] = await pass_updates(card)
    assert older["status"] == "pending"
    assert google_fake.wallet_objects[google_id]["loyaltyPoints"]["balance"] == {"int": 1670}
    # the retry falls due; the worker is busy elsewhere a while, so it is still waiting when change 2 comes
    await Notification.raw("UPDATE notification SET next_attempt_at = now() - interval '1 minute' WHERE id = {}",
                           older["id"])

    # change 2 (1 670 -> 1 660 in the issue; here +25) while the retry waits: both are claimed together
    await grant(phone, 25)
    assert await run_worker(once=True, config=config) == 2

    older, newer = await pass_updates(card)
    assert older["status"] == newer["status"] == "sent", (older["last_error"], newer["last_error"])
    assert set((await deliveries(newer["id"])).values()) == {"delivered"}
    assert len(await deliveries(newer["id"])) == 3  # both iPhones and Google stand behind the newer change
    pushes = [r.device_token for r in apns_fake.delivered()]
    assert pushes.count(phone.pass_token) == 2  # one push per change it had not heard of
    assert pushes.count(second_iphone) == 1
    assert google_fake.wallet_objects[google_id]["loyaltyPoints"]["balance"] == {"int": 1695}


async def test_an_encrypted_pass_key_signs_and_the_worker_starts_and_delivers(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, pass_chain: PassCertPaths,
        tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pass_chain.key_path.read_bytes(), password=None)
    encrypted = tmp_path / "pass-encrypted.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"s3cret-pass")))
    env = {"KOPILKA_PASS_CERT": str(pass_chain.cert_path), "KOPILKA_PASS_KEY": str(encrypted),
           "KOPILKA_PASS_WWDR_CERT": str(pass_chain.wwdr_path), "KOPILKA_PASS_KEY_PASSWORD": "s3cret-pass",
           "KOPILKA_PASS_TYPE_ID": PASS_TYPE_ID, "KOPILKA_APNS_URL": apns_fake.base_url,
           "KOPILKA_APNS_CA_BUNDLE": str(apns_fake.ca_path)}
    wallet = load_wallet_settings(env, tmp_path, "https://loyalty.test")
    config = msgspec.structs.replace(worker_config, wallet=wallet)
    phone = await make_phone(shop, apns=True, wallet=True)
    assert phone.member.customer_id is not None
    await core_outbox.enqueue("welcome", {}, customer_id=phone.member.customer_id, card_id=phone.member.card_id)
    async with DB.transaction():
        await core_outbox.pass_changed(phone.member.card_id, dt.datetime.now(dt.UTC))

    worker = Worker(config)  # used to die here: OSError [Errno 22] loading the encrypted key without its password
    try:
        assert await worker.run_once() == 2
    finally:
        await worker.aclose()
    by_token = {r.device_token: r for r in apns_fake.delivered()}
    assert by_token[phone.pass_token].auth == "cert" and by_token[phone.apns_token].auth == "token"


async def test_a_phone_offline_at_the_till_gets_the_pass_update_and_the_alert_when_it_is_back(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=True, fcm=True, wallet=True)
    assert phone.member.customer_id is not None and phone.apns_token and phone.pass_token and phone.fcm_token
    for token in (phone.apns_token, phone.pass_token):
        apns_fake.go_offline(token)  # no signal in the shop's basement
    fcm_fake.fcm_go_offline(phone.fcm_token)
    async with DB.transaction():
        await core_outbox.pass_changed(phone.member.card_id, dt.datetime.now(dt.UTC))
    await core_outbox.enqueue("points_accrued", {"points": 42, "active": 100}, customer_id=phone.member.customer_id,
                              card_id=phone.member.card_id)
    await run_worker(once=True, config=worker_config)
    assert apns_fake.on_device(phone.pass_token) == [] and apns_fake.on_device(phone.apns_token) == []

    two_hours_later = time.time() + 2 * 3600
    [pass_push] = apns_fake.come_online(phone.pass_token, at=two_hours_later)
    [alert] = apns_fake.come_online(phone.apns_token, at=two_hours_later)
    [android] = fcm_fake.fcm_come_online(phone.fcm_token, at=two_hours_later)
    assert pass_push.payload == {} and alert.payload["kind"] == android["data"]["kind"] == "points_accrued"
    # pass pushes are kept a day; alerts as long on APNs as on FCM
    pass_expiry = int(pass_push.headers["apns-expiration"])
    assert 23 * 3600 <= pass_expiry - time.time() <= 24 * 3600
    alert_ttl = int(alert.headers["apns-expiration"]) - time.time()
    assert abs(alert_ttl - int(android["android"]["ttl"].removesuffix("s"))) <= 5 and alert_ttl > 24 * 3600

    # and a phone that stays away longer than that gets nothing stale
    apns_fake.go_offline(phone.pass_token)
    async with DB.transaction():
        await core_outbox.pass_changed(phone.member.card_id, dt.datetime.now(dt.UTC))
    await run_worker(once=True, config=worker_config)
    assert apns_fake.come_online(phone.pass_token, at=time.time() + 25 * 3600) == []


async def test_a_wrong_apns_topic_keeps_every_live_device_and_alerts_the_operator(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, caplog: pytest.LogCaptureFixture) -> None:
    assert worker_config.push.apns is not None
    phones = [await make_phone(shop, apns=True) for _ in range(4)]
    for phone in phones:
        assert phone.apns_token is not None
        apns_fake.register_device(phone.apns_token, APP_TOPIC)
    wrong = msgspec.structs.replace(worker_config.push.apns, topic=OTHER_APP_TOPIC)  # the staff app's bundle id
    config = msgspec.structs.replace(worker_config, push=PushSettings(apns=wrong, fcm=worker_config.push.fcm))
    messages = []
    for phone in phones:
        assert phone.member.customer_id is not None
        await core_outbox.enqueue("welcome", {}, customer_id=phone.member.customer_id, card_id=phone.member.card_id)
        messages += [n["id"] for n in await notifications_of(phone.member.customer_id, "welcome")]

    with caplog.at_level(logging.ERROR, logger="kopilka.push"):
        await run_worker(once=True, config=config)
    assert {r.reason for r in apns_fake.received} == {"DeviceTokenNotForTopic"}
    dead = await PushDevice.count().where(
        PushDevice.id.is_in([p.apns_device_id for p in phones]) & PushDevice.dead_at.is_not_null())
    assert dead == 0
    for message in messages:
        row = await notification(message)
        assert row["status"] == "pending" and "DeviceTokenNotForTopic" in row["last_error"], row
        assert await deliveries(message) == {}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(f"KOPILKA_APNS_TOPIC={OTHER_APP_TOPIC}" in e for e in errors)

    # the operator fixes the topic: the same devices get their messages
    await run_worker(once=True, config=worker_config, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    for message in messages:
        assert (await notification(message))["status"] == "sent"
    assert {r.device_token for r in apns_fake.delivered()} == {p.apns_token for p in phones}


async def test_a_topic_outside_the_team_does_not_deregister_pass_devices(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns) -> None:
    assert worker_config.wallet is not None
    apple = msgspec.structs.replace(worker_config.wallet.apple, pass_type_id="pass.other.card")
    config = msgspec.structs.replace(worker_config, wallet=WalletSettings(apple=apple, google=None))
    phone = await make_phone(shop, apns=False, wallet=True)
    async with DB.transaction():
        await core_outbox.pass_changed(phone.member.card_id, dt.datetime.now(dt.UTC))
    await run_worker(once=True, config=config)
    assert [r.reason for r in apns_fake.received] == ["TopicDisallowed"]
    assert await PassRegistration.count().where(PassRegistration.card == phone.member.card_id) == 1
    [update] = await pass_updates(phone.member.card_id)
    assert update["status"] == "pending" and "TopicDisallowed" in update["last_error"]


async def test_an_fcm_token_fcm_calls_invalid_is_dropped(
        worker_config: WorkerConfig, shop: Shop, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=False, fcm=True)
    assert phone.member.customer_id is not None and phone.fcm_device_id is not None
    await PushDevice.update({PushDevice.token: f"not a token! {secrets.token_hex(4)}"}).where(PushDevice.id == phone.fcm_device_id)
    await core_outbox.enqueue("welcome", {}, customer_id=phone.member.customer_id, card_id=phone.member.card_id)
    await run_worker(once=True, config=worker_config)
    [sent] = fcm_fake.fcm_sends
    assert sent.status == 400 and sent.error_code == "INVALID_ARGUMENT"
    [device] = await PushDevice.select(PushDevice.dead_at).where(PushDevice.id == phone.fcm_device_id)
    assert device["dead_at"] is not None
    [row] = await notifications_of(phone.member.customer_id, "welcome")
    assert row["status"] == "skipped" and row["last_error"] == "every device token is dead"


async def test_a_resent_android_notification_replaces_the_one_shown(
        worker_config: WorkerConfig, shop: Shop, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=False, fcm=True)
    assert phone.member.customer_id is not None and phone.fcm_token
    await core_outbox.enqueue("welcome", {}, customer_id=phone.member.customer_id, card_id=phone.member.card_id)
    [row] = await notifications_of(phone.member.customer_id, "welcome")
    await run_worker(once=True, config=worker_config)
    # the provider took it but the worker died before recording it: the next worker sends it again
    await Notification.raw("DELETE FROM notification_delivery WHERE notification = {}", row["id"])
    await Notification.raw("UPDATE notification SET status = 'pending', next_attempt_at = now() WHERE id = {}",
                           row["id"])
    await run_worker(once=True, config=worker_config)
    assert len(fcm_fake.fcm_delivered()) == 2
    [shown] = fcm_fake.fcm_shown(phone.fcm_token)
    assert shown["android"]["notification"]["tag"] == f"kopilka-{row['id']}"
    assert "collapse_key" not in shown["android"]  # unique per message: it would only waste FCM's 4 keys
