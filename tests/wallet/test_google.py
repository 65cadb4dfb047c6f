"""Google Wallet: the save link a shopper taps, and balance updates after each sale."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest

from tests.fakes.google import FakeGoogle
from tests.wallet.test_pkpass import anna_card
from wallet_passes.google import GoogleWalletClient, GoogleWalletError, loyalty_object, save_link
from wallet_passes.google_auth import WALLET_SCOPE

ISSUER = "3388000000022"
CLASS = "kopilka_demo"
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def client(fake: FakeGoogle, clock=time.time) -> GoogleWalletClient:
    return GoogleWalletClient(fake.base_url, fake.token_url, fake.service_account, clock=clock)


def test_the_loyalty_object_shows_balance_tier_and_the_card_qr() -> None:
    obj = loyalty_object(anna_card(), issuer_id=ISSUER, class_id=CLASS)
    assert obj["id"] == f"{ISSUER}.2000000000017" and obj["classId"] == f"{ISSUER}.{CLASS}"
    assert obj["state"] == "ACTIVE" and obj["accountId"] == "2000000000017"
    assert obj["loyaltyPoints"]["balance"] == {"int": 1250}
    assert obj["barcode"] == {"type": "QR_CODE", "value": "2000000000017", "alternateText": "2000000000017"}
    assert {"id": "tier", "header": "Tier", "body": "Silver"} in obj["textModulesData"]
    assert loyalty_object(anna_card(voided=True), issuer_id=ISSUER, class_id=CLASS)["state"] == "INACTIVE"


def test_the_save_link_is_an_rs256_jwt_google_accepts(google_fake: FakeGoogle) -> None:
    link = save_link(google_fake.service_account, anna_card(), issuer_id=ISSUER, class_id=CLASS, now=NOW,
                     origins=["https://kopilka.example"])
    prefix, token = link.rsplit("/", 1)
    assert prefix == "https://pay.google.com/gp/v/save"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert google_fake.save_from_jwt(token) == [f"{ISSUER}.2000000000017"]
    assert jwt.decode(token, options={"verify_signature": False})["origins"] == ["https://kopilka.example"]


def test_a_save_link_signed_with_another_key_is_refused(google_fake: FakeGoogle) -> None:
    other = FakeGoogle()  # a different service account with the same e-mail shape
    token = save_link(other.service_account, anna_card(), issuer_id=ISSUER, class_id=CLASS, now=NOW).rsplit("/", 1)[1]
    with pytest.raises(jwt.InvalidTokenError):
        google_fake.save_from_jwt(token)


async def test_after_a_sale_the_saved_card_shows_the_new_balance(google_fake: FakeGoogle) -> None:
    google_fake.save_from_jwt(save_link(google_fake.service_account, anna_card(), issuer_id=ISSUER,
                                        class_id=CLASS, now=NOW).rsplit("/", 1)[1])
    async with client(google_fake) as wallet:
        assert await wallet.update_card(anna_card(balance_active=1400), issuer_id=ISSUER, class_id=CLASS)
        assert await wallet.update_card(anna_card(balance_active=1500), issuer_id=ISSUER, class_id=CLASS)
    saved = google_fake.wallet_objects[f"{ISSUER}.2000000000017"]
    assert saved["loyaltyPoints"]["balance"] == {"int": 1500}
    assert len(google_fake.grants) == 1  # the access token was reused
    grant = google_fake.grants[0]
    assert grant.scopes == [WALLET_SCOPE] and grant.claims["aud"] == google_fake.token_url


async def test_a_card_never_saved_is_reported_not_patched(google_fake: FakeGoogle) -> None:
    async with client(google_fake) as wallet:
        assert await wallet.update_card(anna_card(), issuer_id=ISSUER, class_id=CLASS) is False


async def test_a_revoked_token_is_replaced_once(google_fake: FakeGoogle) -> None:
    google_fake.wallet_objects[f"{ISSUER}.2000000000017"] = {"id": f"{ISSUER}.2000000000017"}
    async with client(google_fake) as wallet:
        await wallet.update_card(anna_card(), issuer_id=ISSUER, class_id=CLASS)
        google_fake.revoke_tokens()
        assert await wallet.update_card(anna_card(balance_active=1), issuer_id=ISSUER, class_id=CLASS)
    assert [p.status for p in google_fake.wallet_patches] == [200, 401, 200]
    assert len(google_fake.grants) == 2


async def test_an_expired_token_is_renewed_before_use(google_fake: FakeGoogle) -> None:
    google_fake.wallet_objects[f"{ISSUER}.2000000000017"] = {"id": f"{ISSUER}.2000000000017"}
    google_fake.token_lifetime = 125  # the client renews 120 s before expiry
    offset = [0.0]
    async with client(google_fake, clock=lambda: time.time() + offset[0]) as wallet:
        await wallet.update_card(anna_card(), issuer_id=ISSUER, class_id=CLASS)
        await wallet.update_card(anna_card(), issuer_id=ISSUER, class_id=CLASS)
        assert len(google_fake.grants) == 1
        offset[0] = 10  # now inside the renewal margin
        await wallet.update_card(anna_card(), issuer_id=ISSUER, class_id=CLASS)
    assert len(google_fake.grants) == 2


async def test_google_outage_is_a_retryable_error(google_fake: FakeGoogle) -> None:
    google_fake.wallet_objects[f"{ISSUER}.2000000000017"] = {"id": f"{ISSUER}.2000000000017"}
    google_fake.wallet_respond_with(503)
    async with client(google_fake) as wallet:
        with pytest.raises(GoogleWalletError) as caught:
            await wallet.update_card(anna_card(), issuer_id=ISSUER, class_id=CLASS)
    assert caught.value.status == 503 and caught.value.retryable


def test_the_google_object_speaks_the_shoppers_language() -> None:
    obj = loyalty_object(anna_card(locale="ru"), issuer_id=ISSUER, class_id=CLASS)
    assert obj["loyaltyPoints"]["label"] == "Баллы" and obj["secondaryLoyaltyPoints"]["label"] == "Ожидают"
    assert {"id": "tier", "header": "Уровень", "body": "Silver"} in obj["textModulesData"]
    assert {"id": "expiring", "header": "Скоро сгорят", "body": "120 баллов сгорят 2025-07-01"} in obj["textModulesData"]
