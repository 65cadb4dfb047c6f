"""The outbox worker pointed at the local fakes, and shoppers with phones that can receive pushes."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import msgspec
import pytest

from backend.push.settings import (
    ApnsSettings,
    FcmSettings,
    PushSettings,
    WorkerSettings,
)
from backend.push.worker import WorkerConfig
from loyalty_core.tables import Consent, Notification, PassRegistration, PushDevice
from tests.factories import Member, Shop, make_member
from tests.fakes.apns import FakeApns
from tests.fakes.fixtures import APP_TOPIC, PASS_TYPE_ID, TEAM_ID
from tests.fakes.google import FakeGoogle
from wallet_passes.assets import ASSETS_DIR
from wallet_passes.certs import PassCertPaths
from wallet_passes.settings import AppleWalletSettings, WalletSettings


class Phone(msgspec.Struct, kw_only=True):
    """A shopper's phone: the app's push token and, if the card is in Wallet, the pass's push token."""

    member: Member
    apns_token: str | None = None
    apns_device_id: int | None = None
    fcm_token: str | None = None
    fcm_device_id: int | None = None
    pass_token: str | None = None


@pytest.fixture
async def quiet_outbox(db_pool: None) -> None:
    """Messages other tests left behind are not this test's business: set them aside."""
    await Notification.raw("UPDATE notification SET status = 'skipped', last_error = 'set aside by a test' "
                           "WHERE status IN ('pending', 'sending')")


@pytest.fixture
def worker_config(apns_fake: FakeApns, google_fake: FakeGoogle, pass_chain: PassCertPaths,
                  service_account_file: Path, tmp_path: Path, quiet_outbox: None) -> WorkerConfig:
    key_path = tmp_path / "AuthKey_FAKE.p8"
    key_path.write_text(apns_fake.provider_key_pem)
    ca = str(apns_fake.ca_path)
    push = PushSettings(
        apns=ApnsSettings(base_url=apns_fake.base_url, team_id=apns_fake.team_id, key_id=apns_fake.key_id,
                          key_path=key_path, topic=APP_TOPIC, verify=ca),
        fcm=FcmSettings(base_url=google_fake.base_url, token_url=google_fake.token_url,
                        service_account_path=service_account_file),
    )
    apple = AppleWalletSettings(pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, signing=pass_chain,
                                web_service_url="https://loyalty.test/passkit", assets_dir=ASSETS_DIR,
                                apns_base_url=apns_fake.base_url, apns_verify=ca)
    # quiet hours off (start == end) unless a test turns them on; fast backoff
    tuning = WorkerSettings(backoff_base_seconds=1.0, poll_seconds=0.02, pass_pushes=True,
                            quiet_start_hour=0, quiet_end_hour=0)
    return WorkerConfig(push=push, wallet=WalletSettings(apple=apple, google=None), tuning=tuning)


async def make_phone(shop: Shop, *, points: int = 0, consent: bool | None = True, apns: bool = True,
                     fcm: bool = False, wallet: bool = False) -> Phone:
    member = await make_member(shop, points)
    assert member.customer_id is not None
    phone = Phone(member=member)
    if consent is not None:
        await Consent.insert(Consent(customer=member.customer_id, channel="push", granted=consent, source="app"))
    if apns:
        phone.apns_token = secrets.token_hex(32)
        phone.apns_device_id = await _device(member.customer_id, "apns", phone.apns_token)
    if fcm:
        phone.fcm_token = "fcm:" + secrets.token_urlsafe(24)
        phone.fcm_device_id = await _device(member.customer_id, "fcm", phone.fcm_token)
    if wallet:
        phone.pass_token = secrets.token_hex(32)
        await PassRegistration.insert(PassRegistration(card=member.card_id, device_library_id=secrets.token_hex(8),
                                                       push_token=phone.pass_token))
    return phone


async def _device(customer_id: int, platform: str, token: str) -> int:
    rows = await PushDevice.insert(PushDevice(customer=customer_id, platform=platform, token=token)
                                   ).returning(PushDevice.id)
    return rows[0]["id"]


async def notification(notification_id: int) -> dict:
    return await Notification.select().where(Notification.id == notification_id).first()


async def notifications_of(customer_id: int, kind: str) -> list[dict]:
    return await Notification.select().where(
        (Notification.customer == customer_id) & (Notification.kind == kind)
    ).order_by(Notification.id).output(load_json=True)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
