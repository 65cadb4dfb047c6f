"""FCM HTTP v1: Android notifications through the service-account OAuth grant."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.push.transports import (
    DeadToken,
    Delivered,
    Failed,
    FcmTransport,
    PushMessage,
    Retry,
    ALERT_TTL_SECONDS,
    classify_fcm,
    fcm_error_code,
    fcm_request,
    fcm_token_invalid,
)
from tests.fakes.google import FakeGoogle
from wallet_passes.google_auth import FCM_SCOPE, ServiceAccount

PHONE = "fcm-token-of-annas-phone"
EXPIRING = PushMessage(title="Points expire soon", body="300 points expire on 1 July",
                       data={"kind": "expiring", "points": "300"}, collapse_key="expiring", expires_at=1_000_600)


def transport(fake: FakeGoogle, *, account: ServiceAccount | None = None, clock=time.time) -> FcmTransport:
    return FcmTransport(fake.base_url, fake.token_url, account or fake.service_account, clock=clock)


async def test_a_notification_arrives_at_fcm_with_an_oauth_token(fcm_fake: FakeGoogle) -> None:
    async with transport(fcm_fake) as fcm:
        result = await fcm.send(PHONE, EXPIRING)
    assert result == Delivered(f"projects/{fcm_fake.project_id}/messages/1")
    [sent] = fcm_fake.fcm_sends
    assert sent.project_id == fcm_fake.project_id
    assert sent.message["token"] == PHONE
    assert sent.message["notification"] == {"title": "Points expire soon", "body": "300 points expire on 1 July"}
    assert sent.message["data"] == {"kind": "expiring", "points": "300"}
    [grant] = fcm_fake.grants
    assert grant.scopes == [FCM_SCOPE] and grant.claims["iss"] == fcm_fake.client_email


async def test_one_grant_serves_many_sends_until_it_nears_expiry(fcm_fake: FakeGoogle) -> None:
    fcm_fake.token_lifetime = 125
    offset = [0.0]
    async with transport(fcm_fake, clock=lambda: time.time() + offset[0]) as fcm:
        for _ in range(3):
            await fcm.send(PHONE, EXPIRING)
        assert len(fcm_fake.grants) == 1
        offset[0] = 10
        await fcm.send(PHONE, EXPIRING)
    assert len(fcm_fake.grants) == 2
    assert len(fcm_fake.fcm_delivered()) == 4


async def test_an_uninstalled_app_is_a_dead_token(fcm_fake: FakeGoogle) -> None:
    fcm_fake.unregister_fcm(PHONE)
    async with transport(fcm_fake) as fcm:
        assert await fcm.send(PHONE, EXPIRING) == DeadToken("UNREGISTERED")


async def test_quota_exceeded_is_retried_after_the_given_delay(fcm_fake: FakeGoogle) -> None:
    fcm_fake.fcm_respond_with(429, "QUOTA_EXCEEDED", retry_after=30)
    async with transport(fcm_fake) as fcm:
        assert await fcm.send(PHONE, EXPIRING) == Retry("QUOTA_EXCEEDED", 30.0)


async def test_an_fcm_outage_is_retried(fcm_fake: FakeGoogle) -> None:
    fcm_fake.fcm_respond_with(503, "UNAVAILABLE")
    async with transport(fcm_fake) as fcm:
        assert isinstance(await fcm.send(PHONE, EXPIRING), Retry)
        assert isinstance(await fcm.send(PHONE, EXPIRING), Delivered)


async def test_a_revoked_access_token_is_replaced_and_the_message_sent(fcm_fake: FakeGoogle) -> None:
    async with transport(fcm_fake) as fcm:
        await fcm.send(PHONE, EXPIRING)
        fcm_fake.revoke_tokens()
        assert isinstance(await fcm.send(PHONE, EXPIRING), Delivered)
    assert [s.status for s in fcm_fake.fcm_sends] == [200, 401, 200]


async def test_a_service_account_google_does_not_know_fails_without_sending(fcm_fake: FakeGoogle) -> None:
    stranger = FakeGoogle().service_account  # same shape, different private key
    async with transport(fcm_fake, account=stranger) as fcm:
        result = await fcm.send(PHONE, EXPIRING)
    assert isinstance(result, Failed) and result.status == 400 and "invalid_grant" in result.reason
    assert fcm_fake.fcm_sends == []


async def test_sending_for_another_project_is_refused(fcm_fake: FakeGoogle) -> None:
    async with FcmTransport(fcm_fake.base_url, fcm_fake.token_url, fcm_fake.service_account,
                            project_id="someone-else") as fcm:
        assert await fcm.send(PHONE, EXPIRING) == DeadToken("SENDER_ID_MISMATCH")


def test_a_project_id_is_required() -> None:
    account = ServiceAccount(client_email="a@b", private_key="unused")
    with pytest.raises(ValueError, match="project id"):
        FcmTransport("http://127.0.0.1:9", "http://127.0.0.1:9/token", account)


def test_the_request_turns_expiry_into_a_ttl_and_the_collapse_key_into_the_notification_tag() -> None:
    # contract changed (issue 11.10, 11.12): the key is the shown notification's tag, and a TTL is always set
    body = fcm_request(PHONE, EXPIRING, now=1_000_000)["message"]
    assert body["android"] == {"priority": "high", "ttl": "600s", "notification": {"tag": "expiring"}}
    plain = fcm_request(PHONE, PushMessage(title="t", body="b"), now=0)["message"]["android"]
    assert plain == {"priority": "high", "ttl": f"{ALERT_TTL_SECONDS}s"}


async def test_a_resend_replaces_the_shown_notification_and_two_messages_show_twice(fcm_fake: FakeGoogle) -> None:
    async with transport(fcm_fake) as fcm:
        for key in ("kopilka-1", "kopilka-1", "kopilka-2"):
            assert isinstance(await fcm.send(PHONE, PushMessage(title="t", body=key, collapse_key=key)), Delivered)
    assert [m["notification"]["body"] for m in fcm_fake.fcm_shown(PHONE)] == ["kopilka-1", "kopilka-2"]


async def test_a_token_fcm_calls_not_valid_is_dead_but_a_bad_payload_is_not(fcm_fake: FakeGoogle) -> None:
    async with transport(fcm_fake) as fcm:
        assert await fcm.send("not a token!", EXPIRING) == DeadToken("INVALID_ARGUMENT: not a valid registration token")
    [sent] = fcm_fake.fcm_sends
    assert sent.status == 400 and sent.error_code == "INVALID_ARGUMENT"
    bad_payload = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid value at 'message.data'",
                             "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                          "errorCode": "INVALID_ARGUMENT"}]}}
    assert not fcm_token_invalid(bad_payload)
    assert classify_fcm(400, "INVALID_ARGUMENT", token_invalid=False) == Failed("INVALID_ARGUMENT", 400)


async def test_an_offline_android_phone_gets_the_message_within_its_ttl_only(fcm_fake: FakeGoogle) -> None:
    fcm_fake.fcm_go_offline(PHONE)
    async with transport(fcm_fake) as fcm:
        await fcm.send(PHONE, PushMessage(title="t", body="kept"))
        await fcm.send(PHONE, PushMessage(title="t", body="now or never", expires_at=int(time.time())))
    [kept] = fcm_fake.fcm_come_online(PHONE, at=time.time() + 3600)
    assert kept["notification"]["body"] == "kept"


def test_the_error_code_comes_from_fcm_details_else_the_rpc_status() -> None:
    detailed = {"error": {"code": 404, "status": "NOT_FOUND", "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}
    assert fcm_error_code(detailed) == "UNREGISTERED"
    assert fcm_error_code({"error": {"code": 503, "status": "UNAVAILABLE"}}) == "UNAVAILABLE"
    assert fcm_error_code("garbage") == ""


@pytest.mark.parametrize("status, code, expected", [
    (404, "UNREGISTERED", DeadToken("UNREGISTERED")),
    (404, "", DeadToken("UNREGISTERED")),
    (403, "SENDER_ID_MISMATCH", DeadToken("SENDER_ID_MISMATCH")),
    (429, "QUOTA_EXCEEDED", Retry("QUOTA_EXCEEDED")),
    (500, "INTERNAL", Retry("INTERNAL")),
    (503, "", Retry("HTTP 503")),
    (400, "INVALID_ARGUMENT", Failed("INVALID_ARGUMENT", 400)),
    (401, "", Failed("HTTP 401", 401)),
])
def test_fcm_answers_map_to_outbox_decisions(status: int, code: str, expected: object) -> None:
    assert classify_fcm(status, code) == expected


async def test_a_test_can_wait_for_messages_sent_in_the_background(fcm_fake: FakeGoogle) -> None:
    async with transport(fcm_fake) as fcm:
        sending = asyncio.create_task(fcm.send(PHONE, EXPIRING))
        [sent] = await fcm_fake.wait_for_fcm(1, timeout=5)
        await sending
    assert sent.message["token"] == PHONE
