"""APNs: app notifications with a provider token, and wallet pass update pushes with the pass certificate."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backend.push.transports import (
    ApnsCertTransport,
    ApnsTokenTransport,
    DeadToken,
    Delivered,
    Failed,
    Misconfigured,
    PushMessage,
    Retry,
    classify_apns,
    provider_token,
)
from tests.fakes.apns import FakeApns
from tests.fakes.fixtures import APP_TOPIC, PASS_TYPE_ID, TEAM_ID
from wallet_passes.certs import PassCertPaths, ensure_test_pass_chain
from wallet_passes.tls import client_ssl_context

PHONE = "a1" * 32  # a 64-hex-digit device token
ACCRUED = PushMessage(title="Points added", body="+120 points for your purchase", data={"kind": "accrual"},
                      badge=1, collapse_key="balance")


def app_transport(fake: FakeApns, *, key_pem: str | None = None, clock=time.time) -> ApnsTokenTransport:
    return ApnsTokenTransport(fake.base_url, fake.team_id, fake.key_id, key_pem or fake.provider_key_pem,
                              APP_TOPIC, verify=fake.ca_path, clock=clock)


def pass_transport(fake: FakeApns, chain: PassCertPaths, topic: str = PASS_TYPE_ID) -> ApnsCertTransport:
    return ApnsCertTransport(fake.base_url, chain.cert_path, chain.key_path, topic, verify=fake.ca_path)


async def test_an_app_push_arrives_with_alert_topic_and_a_valid_provider_token(apns_fake: FakeApns) -> None:
    async with app_transport(apns_fake) as apns:
        result = await apns.send(PHONE, ACCRUED)
    assert isinstance(result, Delivered) and result.provider_id
    [push] = apns_fake.received
    assert push.status == 200 and push.auth == "token" and push.device_token == PHONE
    assert push.payload == {"aps": {"alert": {"title": "Points added", "body": "+120 points for your purchase"},
                                    "sound": "default", "badge": 1}, "kind": "accrual"}
    assert push.headers["apns-topic"] == APP_TOPIC and push.headers["apns-push-type"] == "alert"
    assert push.headers["apns-priority"] == "10" and push.headers["apns-collapse-id"] == "balance"
    assert push.headers["apns-id"] == result.provider_id
    assert push.jwt_claims is not None and push.jwt_claims["iss"] == TEAM_ID


async def test_the_provider_token_is_reused_then_renewed_after_50_minutes(apns_fake: FakeApns) -> None:
    offset = [0.0]
    async with app_transport(apns_fake, clock=lambda: time.time() + offset[0]) as apns:
        await apns.send(PHONE, ACCRUED)
        await apns.send(PHONE, ACCRUED)
        offset[0] = 50 * 60 + 1
        await apns.send(PHONE, ACCRUED)
    first, second, third = (p.headers["authorization"] for p in apns_fake.received)
    assert first == second != third


async def test_expired_provider_token_is_signed_afresh_and_the_push_resent(apns_fake: FakeApns) -> None:
    apns_fake.respond_with(403, "ExpiredProviderToken")
    async with app_transport(apns_fake) as apns:
        assert isinstance(await apns.send(PHONE, ACCRUED), Delivered)
    rejected, accepted = apns_fake.received
    assert (rejected.status, accepted.status) == (403, 200)
    assert rejected.headers["authorization"] != accepted.headers["authorization"]


async def test_a_token_signed_with_a_key_apple_does_not_know_fails(apns_fake: FakeApns) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    async with app_transport(apns_fake, key_pem=stranger) as apns:
        result = await apns.send(PHONE, ACCRUED)
    assert result == Failed("InvalidProviderToken", 403)


async def test_an_uninstalled_app_is_a_dead_token(apns_fake: FakeApns) -> None:
    apns_fake.unregister(PHONE)
    async with app_transport(apns_fake) as apns:
        assert await apns.send(PHONE, ACCRUED) == DeadToken("Unregistered")


async def test_a_malformed_device_token_is_dead(apns_fake: FakeApns) -> None:
    async with app_transport(apns_fake) as apns:
        assert await apns.send("not-a-token", ACCRUED) == DeadToken("BadDeviceToken")


async def test_throttling_asks_for_a_retry_after_the_given_delay(apns_fake: FakeApns) -> None:
    apns_fake.respond_with(429, "TooManyRequests", retry_after=20)
    async with app_transport(apns_fake) as apns:
        assert await apns.send(PHONE, ACCRUED) == Retry("TooManyRequests", 20.0)


async def test_an_unreachable_apns_is_a_retry(apns_fake: FakeApns) -> None:
    key = apns_fake.provider_key_pem
    async with ApnsTokenTransport("https://127.0.0.1:9", TEAM_ID, "K", key, APP_TOPIC) as apns:
        assert isinstance(await apns.send(PHONE, ACCRUED), Retry)


def test_a_broken_provider_key_fails_at_startup() -> None:
    with pytest.raises(ValueError):
        ApnsTokenTransport("https://127.0.0.1:9", TEAM_ID, "K", "not a key", APP_TOPIC)


async def test_many_pushes_share_one_http2_connection_concurrently(apns_fake: FakeApns) -> None:
    async with app_transport(apns_fake) as apns:
        results = await asyncio.gather(*(apns.send(f"{i:064x}", ACCRUED) for i in range(20)))
    assert all(isinstance(r, Delivered) for r in results)
    assert len({p.device_token for p in apns_fake.received}) == 20


async def test_the_fake_speaks_only_http2(apns_fake: FakeApns) -> None:
    async with httpx.AsyncClient(verify=client_ssl_context(apns_fake.ca_path)) as http1_only:
        with pytest.raises(httpx.HTTPError):
            await http1_only.post(f"{apns_fake.base_url}/3/device/{PHONE}", content=b"{}")


async def test_a_pass_update_push_is_empty_and_authenticated_by_the_pass_certificate(
        apns_fake: FakeApns, pass_chain: PassCertPaths) -> None:
    async with pass_transport(apns_fake, pass_chain) as wallet_push:
        assert isinstance(await wallet_push.send_pass_update(PHONE), Delivered)
    [push] = apns_fake.received
    assert push.auth == "cert" and push.client_cert_uid == PASS_TYPE_ID
    assert push.payload == {} and push.headers["apns-topic"] == PASS_TYPE_ID
    assert "authorization" not in push.headers


async def test_a_pass_push_to_a_topic_the_certificate_does_not_cover_fails(
        apns_fake: FakeApns, pass_chain: PassCertPaths) -> None:
    # contract changed (issue 11.11): a wrong topic is our configuration, not a dead or failed device
    async with pass_transport(apns_fake, pass_chain, topic="pass.other.card") as wallet_push:
        assert await wallet_push.send_pass_update(PHONE) == Misconfigured("TopicDisallowed", 400)


async def test_a_pass_certificate_from_an_untrusted_chain_cannot_connect(
        apns_fake: FakeApns, tmp_path: Path) -> None:
    stranger = ensure_test_pass_chain(tmp_path, PASS_TYPE_ID, TEAM_ID)
    async with pass_transport(apns_fake, stranger) as wallet_push:
        result = await wallet_push.send_pass_update(PHONE)
    assert isinstance(result, Retry) and apns_fake.received == []


@pytest.mark.parametrize("status, reason, expected", [
    (200, "", Delivered()),
    (400, "BadDeviceToken", DeadToken("BadDeviceToken")),
    (400, "DeviceTokenNotForTopic", Misconfigured("DeviceTokenNotForTopic", 400)),
    (400, "TopicDisallowed", Misconfigured("TopicDisallowed", 400)),
    (410, "ExpiredToken", DeadToken("ExpiredToken")),
    (410, "", DeadToken("Unregistered")),
    (429, "TooManyRequests", Retry("TooManyRequests")),
    (500, "InternalServerError", Retry("InternalServerError")),
    (503, "ServiceUnavailable", Retry("ServiceUnavailable")),
    (400, "PayloadTooLarge", Failed("PayloadTooLarge", 400)),
    (403, "InvalidProviderToken", Failed("InvalidProviderToken", 403)),
])
def test_apns_answers_map_to_outbox_decisions(status: int, reason: str, expected: object) -> None:
    assert classify_apns(status, reason) == expected


def test_the_provider_token_is_es256_with_kid(apns_fake: FakeApns) -> None:
    token = provider_token(TEAM_ID, "ABC123DEFG", apns_fake.provider_key_pem, 1_700_000_000)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "ABC123DEFG", "typ": "JWT"}
    assert jwt.decode(token, options={"verify_signature": False}) == {"iss": TEAM_ID, "iat": 1_700_000_000}


async def test_a_test_can_wait_for_pushes_sent_in_the_background(apns_fake: FakeApns) -> None:
    async with app_transport(apns_fake) as apns:
        sending = asyncio.create_task(apns.send(PHONE, ACCRUED))
        [push] = await apns_fake.wait_for(1, timeout=5)
        await sending
    assert push.device_token == PHONE
    with pytest.raises(TimeoutError):
        await apns_fake.wait_for(2, timeout=0.2)


async def test_an_offline_phone_is_kept_the_latest_alert_and_pass_push_not_dropped(
        apns_fake: FakeApns, pass_chain: PassCertPaths) -> None:
    apns_fake.go_offline(PHONE)
    async with app_transport(apns_fake) as apns, pass_transport(apns_fake, pass_chain) as wallet_push:
        assert isinstance(await apns.send(PHONE, ACCRUED), Delivered)
        assert isinstance(await wallet_push.send_pass_update(PHONE), Delivered)
        assert isinstance(await wallet_push.send_pass_update(PHONE), Delivered)  # replaces the kept one
    for push in apns_fake.received:
        assert int(push.headers["apns-expiration"]) > time.time() + 3600  # never 0: "now or never"
    kept = apns_fake.come_online(PHONE, at=time.time() + 6 * 3600)
    assert sorted(p.auth for p in kept) == ["cert", "token"]


@pytest.mark.parametrize("headers, status, reason", [
    ({"apns-expiration": "soon"}, 400, "BadExpirationDate"),
    ({"apns-priority": "7"}, 400, "BadPriority"),
    ({"apns-collapse-id": "x" * 65}, 400, "BadCollapseId"),
    ({"apns-push-type": "shout"}, 400, "InvalidPushType"),
])
async def test_the_fake_refuses_the_headers_apns_refuses(apns_fake: FakeApns, headers: dict, status: int,
                                                         reason: str) -> None:
    async with app_transport(apns_fake) as apns:
        base = apns._headers(ACCRUED)
        await apns._post(PHONE, b'{"aps": {}}', {**base, "authorization": f"bearer {apns._tokens.current()}", **headers})
    [push] = apns_fake.received
    assert (push.status, push.reason) == (status, reason)


async def test_a_token_of_another_app_is_a_configuration_error_not_a_dead_token(apns_fake: FakeApns) -> None:
    apns_fake.register_device(PHONE, "dev.kopilka.staff")
    async with app_transport(apns_fake) as apns:
        assert await apns.send(PHONE, ACCRUED) == Misconfigured("DeviceTokenNotForTopic", 400)


async def test_an_encrypted_pass_key_authenticates_pass_pushes(
        apns_fake: FakeApns, pass_chain: PassCertPaths, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pass_chain.key_path.read_bytes(), password=None)
    encrypted = tmp_path / "pass.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pw")))
    async with ApnsCertTransport(apns_fake.base_url, pass_chain.cert_path, encrypted, PASS_TYPE_ID,
                                 key_password="pw", verify=apns_fake.ca_path) as wallet_push:
        assert isinstance(await wallet_push.send_pass_update(PHONE), Delivered)
