"""The outbox worker delivering to the fake APNs and FCM: delivery, retries, dead tokens, crashes, consent, quiet hours."""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
import pytest

from backend.push.settings import PushSettings, WorkerSettings
from backend.push.worker import Worker, WorkerConfig, run_worker
from loyalty_core.piccolo_conf import DB
from loyalty_core.messaging import outbox as core_outbox
from loyalty_core.tables import Notification, PassRegistration, PushDevice
from tests.factories import Shop
from tests.fakes.apns import FakeApns
from tests.fakes.fixtures import APP_TOPIC, PASS_TYPE_ID
from tests.fakes.google import FakeGoogle
from tests.push_worker.conftest import make_phone, notification, notifications_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def accrue_message(customer_id: int, card_id: int, points: int = 42) -> int:
    await core_outbox.enqueue("points_accrued", {"points": points, "active": 100, "pending": points},
                              customer_id=customer_id, card_id=card_id)
    return (await notifications_of(customer_id, "points_accrued"))[-1]["id"]


def later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


async def test_a_sale_message_reaches_the_app_and_the_wallet_pass(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=True, fcm=True, wallet=True)
    customer, card = phone.member.customer_id, phone.member.card_id
    assert customer is not None
    async with DB.transaction():
        await core_outbox.pass_changed(card, dt.datetime.now(dt.UTC))
        await core_outbox.pass_changed(card, dt.datetime.now(dt.UTC))  # two changes, one push
    message = await accrue_message(customer, card)

    assert await run_worker(once=True, config=worker_config) == 3

    app = [r for r in apns_fake.delivered() if r.device_token == phone.apns_token]
    assert len(app) == 1
    assert app[0].auth == "token" and app[0].topic == APP_TOPIC
    assert app[0].payload["aps"]["alert"]["title"] == "Начислены баллы"
    assert "+42 балла" in app[0].payload["aps"]["alert"]["body"]
    assert app[0].headers["apns-collapse-id"] == f"kopilka-{message}"
    wallet = [r for r in apns_fake.delivered() if r.device_token == phone.pass_token]
    assert len(wallet) == 1
    assert wallet[0].auth == "cert" and wallet[0].topic == PASS_TYPE_ID and wallet[0].payload == {}
    assert wallet[0].headers["apns-push-type"] == "background" and wallet[0].headers["apns-priority"] == "5"
    android = [s for s in fcm_fake.fcm_delivered() if s.message["token"] == phone.fcm_token]
    assert len(android) == 1 and android[0].message["data"]["kind"] == "points_accrued"

    row = await notification(message)
    assert row["status"] == "sent" and row["sent_at"] is not None and row["attempts"] == 1, (row["last_error"], row["status"])
    for update in await notifications_of_card(card, "pass_update"):
        assert update["status"] == "sent"
    deliveries = await Notification.raw(
        "SELECT target, outcome FROM notification_delivery WHERE notification = {} ORDER BY target", message)
    assert [d["outcome"] for d in deliveries] == ["delivered", "delivered"]


async def notifications_of_card(card_id: int, kind: str) -> list[dict]:
    return await Notification.select().where((Notification.card == card_id) & (Notification.kind == kind))


async def test_busy_providers_are_retried_with_backoff(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=True, fcm=True)
    assert phone.member.customer_id is not None
    message = await accrue_message(phone.member.customer_id, phone.member.card_id)
    apns_fake.respond_with(503, "ServiceUnavailable")
    fcm_fake.fcm_respond_with(429, "QUOTA_EXCEEDED", retry_after=120)

    before = dt.datetime.now(dt.UTC)
    await run_worker(once=True, config=worker_config)
    row = await notification(message)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert "ServiceUnavailable" in row["last_error"] and "QUOTA_EXCEEDED" in row["last_error"]
    assert row["next_attempt_at"] >= before + dt.timedelta(seconds=120)  # FCM's Retry-After wins over our backoff

    # not due yet: nothing is sent again
    assert await run_worker(once=True, config=worker_config) == 0
    await run_worker(once=True, config=worker_config, clock=lambda: later(121))
    row = await notification(message)
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len([r for r in apns_fake.delivered() if r.device_token == phone.apns_token]) == 1
    assert len([s for s in fcm_fake.fcm_delivered() if s.message["token"] == phone.fcm_token]) == 1


async def test_backoff_grows_and_the_message_fails_after_the_last_attempt(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns) -> None:
    tuning = WorkerSettings(**{**_fields(worker_config.tuning), "max_attempts": 3, "backoff_base_seconds": 10.0})
    config = WorkerConfig(push=worker_config.push, wallet=worker_config.wallet, tuning=tuning)
    phone = await make_phone(shop, apns=True)
    assert phone.member.customer_id is not None
    message = await accrue_message(phone.member.customer_id, phone.member.card_id)
    apns_fake.respond_with(500, "InternalServerError", times=3)

    waits = []
    clock = dt.datetime.now(dt.UTC)
    for _ in range(3):
        await run_worker(once=True, config=config, clock=lambda c=clock: c)
        row = await notification(message)
        waits.append((row["next_attempt_at"] - clock).total_seconds())
        clock = row["next_attempt_at"] + dt.timedelta(seconds=1)
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20  # 10 s then 20 s, each half fixed, half random
    assert row["status"] == "failed" and row["attempts"] == 3
    assert "gave up after 3 attempts" in row["last_error"]


def _fields(settings: WorkerSettings) -> dict:
    return {f: getattr(settings, f) for f in settings.__struct_fields__}


async def test_dead_tokens_are_dropped_and_never_used_again(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=True, fcm=True, wallet=True)
    customer, card = phone.member.customer_id, phone.member.card_id
    assert customer is not None and phone.apns_token and phone.fcm_token and phone.pass_token
    apns_fake.unregister(phone.apns_token)
    apns_fake.unregister(phone.pass_token)
    fcm_fake.unregister_fcm(phone.fcm_token)
    message = await accrue_message(customer, card)
    async with DB.transaction():
        await core_outbox.pass_changed(card, dt.datetime.now(dt.UTC))

    await run_worker(once=True, config=worker_config)
    row = await notification(message)
    assert row["status"] == "skipped" and row["last_error"] == "every device token is dead"
    devices = await PushDevice.select(PushDevice.dead_at).where(PushDevice.customer == customer)
    assert len(devices) == 2 and all(d["dead_at"] is not None for d in devices)
    assert await PassRegistration.count().where(PassRegistration.card == card) == 0

    sent_before = len(apns_fake.received) + len(fcm_fake.fcm_sends)
    again = await accrue_message(customer, card)
    await run_worker(once=True, config=worker_config)
    assert (await notification(again))["last_error"] == "no live push device"
    assert len(apns_fake.received) + len(fcm_fake.fcm_sends) == sent_before


async def _black_hole() -> tuple[asyncio.Server, str]:
    """A server that accepts connections and never answers: a provider the worker is stuck on when it dies."""
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_a_worker_killed_mid_message_never_sends_it_twice_to_a_device(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns, fcm_fake: FakeGoogle) -> None:
    phone = await make_phone(shop, apns=True, fcm=True)
    assert phone.member.customer_id is not None and phone.fcm_token
    message = await accrue_message(phone.member.customer_id, phone.member.card_id)

    # the first worker reaches the iPhone, then hangs on FCM and is killed there
    hole, hole_url = await _black_hole()
    assert worker_config.push.fcm is not None
    stuck_fcm = msgspec.structs.replace(worker_config.push.fcm, base_url=hole_url)
    doomed = Worker(WorkerConfig(push=PushSettings(apns=worker_config.push.apns, fcm=stuck_fcm),
                                 wallet=worker_config.wallet, tuning=worker_config.tuning))
    task = asyncio.create_task(doomed.run_once())
    await apns_fake.wait_for(1)
    for _ in range(200):
        if await Notification.raw("SELECT 1 FROM notification_delivery WHERE notification = {}", message):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await doomed.aclose()
    hole.close()
    assert (await notification(message))["status"] == "sending"

    # within the lease nobody touches it; after it, a new worker finishes the job
    assert await run_worker(once=True, config=worker_config) == 0
    await run_worker(once=True, config=worker_config,
                     clock=lambda: later(worker_config.tuning.lease_seconds + 1))
    row = await notification(message)
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len([r for r in apns_fake.delivered() if r.device_token == phone.apns_token]) == 1
    assert len([s for s in fcm_fake.fcm_delivered() if s.message["token"] == phone.fcm_token]) == 1


async def test_without_push_consent_nothing_is_sent(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns) -> None:
    refused = await make_phone(shop, consent=False)
    never_asked = await make_phone(shop, consent=None)
    ids = []
    for phone in (refused, never_asked):
        assert phone.member.customer_id is not None
        ids.append(await accrue_message(phone.member.customer_id, phone.member.card_id))
    await run_worker(once=True, config=worker_config)
    for message in ids:
        row = await notification(message)
        assert row["status"] == "skipped" and row["last_error"] == "no push consent"
    assert apns_fake.received == []


async def test_quiet_hours_hold_app_pushes_until_morning_but_not_pass_updates(
        worker_config: WorkerConfig, shop: Shop, apns_fake: FakeApns) -> None:
    tuning = WorkerSettings(**{**_fields(worker_config.tuning), "quiet_start_hour": 22, "quiet_end_hour": 9})
    config = WorkerConfig(push=worker_config.push, wallet=worker_config.wallet, tuning=tuning)
    phone = await make_phone(shop, apns=True, wallet=True)
    assert phone.member.customer_id is not None
    message = await accrue_message(phone.member.customer_id, phone.member.card_id)
    async with DB.transaction():
        await core_outbox.pass_changed(phone.member.card_id, dt.datetime.now(dt.UTC))

    tomorrow = dt.date.today() + dt.timedelta(days=1)
    late_evening = dt.datetime.combine(tomorrow, dt.time(20, 30), dt.UTC)  # 23:30 in Moscow (the shop's zone)
    await run_worker(once=True, config=config, clock=lambda: late_evening)
    row = await notification(message)
    assert row["status"] == "pending" and row["attempts"] == 0
    nine_am_moscow = dt.datetime.combine(tomorrow + dt.timedelta(days=1), dt.time(6, 0), dt.UTC)
    assert row["next_attempt_at"] == nine_am_moscow
    assert [r.device_token for r in apns_fake.delivered()] == [phone.pass_token]  # the pass push went at once

    await run_worker(once=True, config=config, clock=lambda: nine_am_moscow + dt.timedelta(minutes=1))
    assert (await notification(message))["status"] == "sent"
    assert [r.device_token for r in apns_fake.delivered()] == [phone.pass_token, phone.apns_token]


async def test_without_credentials_messages_are_skipped_with_a_reason(
        worker_config: WorkerConfig, shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    config = WorkerConfig(push=PushSettings(apns=None, fcm=None), wallet=worker_config.wallet,
                          tuning=WorkerSettings(pass_pushes=False))
    phone = await make_phone(shop, apns=True, wallet=True)
    assert phone.member.customer_id is not None
    message = await accrue_message(phone.member.customer_id, phone.member.card_id)
    async with DB.transaction():
        await core_outbox.pass_changed(phone.member.card_id, dt.datetime.now(dt.UTC))
    with caplog.at_level("WARNING", logger="kopilka.push"):
        await run_worker(once=True, config=config)
    row = await notification(message)
    assert row["status"] == "skipped" and "not configured" in row["last_error"]
    update = (await notifications_of_card(phone.member.card_id, "pass_update"))[0]
    assert update["status"] == "skipped" and "KOPILKA_PASS_CERT" in update["last_error"]
    assert "app pushes are marked skipped" in caplog.text
