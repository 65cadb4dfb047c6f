"""Campaigns against real servers: a real SMTP server (aiosmtpd) and a local SMS.ru, each a process of its own,
the fake APNs of tests/fakes, and shoppers in a segment with the consents and addresses a story needs."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import msgspec
import pytest

from backend.push.campaigns import CampaignSender, SenderConfig
from backend.push.email import SmtpSettings
from backend.push.settings import ApnsSettings, PushSettings, WorkerSettings
from backend.push.sms import SmsSettings
from loyalty_core.campaigns import queueing
from loyalty_core.tables import CampaignMessage, Consent, Customer, Membership, PushDevice
from tests.factories import Member, Shop, make_member, unique
from tests.fakes.apns import FakeApns
from tests.fakes.fixtures import APP_TOPIC
from tests.servers import ROOT

SECRET = "test-secret"  # the server's KOPILKA_SECRET_KEY in tests (tests/servers.py)


def _start(module: str, state: Path, port_file: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", module, "--state", str(state), "--port-file", str(port_file), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import time

    deadline = time.monotonic() + 20
    while not (port_file.exists() and port_file.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{module} did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    return proc


class SmsFake(msgspec.Struct, kw_only=True):
    base_url: str
    api_id: str
    state: Path

    def messages(self) -> list[dict]:
        if not self.state.exists():
            return []
        return [json.loads(line) for line in self.state.read_text(encoding="utf-8").splitlines() if line]

    def to(self, phone: str) -> list[dict]:
        digits = "".join(c for c in phone if c.isdigit())
        return [m for m in self.messages() if m["to"] == digits]

    def fail(self, code: int, times: int = 1) -> None:
        httpx.get(f"{self.base_url}/_fake/fail", params={"code": code, "times": times})

    def hang(self, times: int = 1) -> None:
        httpx.get(f"{self.base_url}/_fake/hang", params={"times": times})


class MailSink(msgspec.Struct, kw_only=True):
    port: int
    state: Path
    refused: str

    def messages(self) -> list[EmailMessage]:
        if not self.state.exists():
            return []
        out = []
        for line in self.state.read_text().splitlines():
            record = json.loads(line)
            msg = email.message_from_bytes(base64.b64decode(record["data"]), policy=email.policy.default)
            msg["X-Envelope-To"] = ",".join(record["to"])
            out.append(msg)
        return out

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if m["X-Envelope-To"] == address]


@pytest.fixture(scope="session")
def sms_ru(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmsFake]:
    folder = tmp_path_factory.mktemp("sms-ru")
    api_id = secrets.token_hex(8).upper()
    # SMS.ru accepts 10 a second from us here; the worker is set to 5 (half, for the network's jitter)
    proc = _start("tests.fakes.sms_ru", folder / "sent.jsonl", folder / "port", "--api-id", api_id,
                  "--per-second", "10")
    yield SmsFake(base_url=f"http://127.0.0.1:{(folder / 'port').read_text()}", api_id=api_id,
                  state=folder / "sent.jsonl")
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    folder = tmp_path_factory.mktemp("smtp")
    refused = "nobody@mail.test"
    proc = _start("tests.fakes.smtp_sink", folder / "mail.jsonl", folder / "port", "--refuse", refused)
    yield MailSink(port=int((folder / "port").read_text()), state=folder / "mail.jsonl", refused=refused)
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def quiet_campaigns(db_pool: None) -> None:
    """Campaign messages other tests left behind are not this test's business."""
    await CampaignMessage.raw("UPDATE campaign_message SET status = 'skipped', last_error = 'set aside by a test' "
                              "WHERE status IN ('pending', 'sending')")
    await CampaignMessage.raw("UPDATE campaign SET status = 'cancelled' WHERE status = 'scheduled'")


@pytest.fixture
def sender_config(sms_ru: SmsFake, smtp_sink: MailSink, apns_fake: FakeApns, tmp_path: Path,
                  quiet_campaigns: None) -> SenderConfig:
    key_path = tmp_path / "AuthKey_FAKE.p8"
    key_path.write_text(apns_fake.provider_key_pem)
    push = PushSettings(apns=ApnsSettings(base_url=apns_fake.base_url, team_id=apns_fake.team_id,
                                          key_id=apns_fake.key_id, key_path=key_path, topic=APP_TOPIC,
                                          verify=str(apns_fake.ca_path)), fcm=None)
    return SenderConfig(
        public_url="http://loyalty.test", secret=SECRET,
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_sink.port, tls="none", sender="Магазин <shop@loyalty.test>",
                          per_second=50),
        sms=SmsSettings(api_id=sms_ru.api_id, base_url=sms_ru.base_url, per_second=5, timeout=2),
        push=push,
        tuning=WorkerSettings(backoff_base_seconds=1.0, poll_seconds=0.02, quiet_start_hour=0, quiet_end_hour=0,
                              lease_seconds=60),
        valkey_url=os.environ["KOPILKA_VALKEY_URL"],  # the rate limits are shared by every sender
    )


class Shopper(msgspec.Struct, kw_only=True):
    member: Member
    customer_id: int
    email: str | None
    phone: str | None
    device_token: str | None


async def make_shopper(shop: Shop, segment: str | None, *, consents: dict[str, bool] | None = None,
                       email_address: bool = True, device: bool = False, locale: str = "ru",
                       name: str = "Анна") -> Shopper:
    """A registered member (phone from the factory), in `segment`, with an e-mail, an app device and consents."""
    member = await make_member(shop)
    assert member.customer_id is not None and member.membership_id is not None
    address = f"{unique('shopper')}@mail.test".lower() if email_address else None
    await Customer.update({Customer.email: address, Customer.locale: locale, Customer.name: name}).where(
        Customer.id == member.customer_id)
    if segment is not None:
        await Membership.update({Membership.segments: [segment]}).where(Membership.id == member.membership_id)
    for channel, granted in (consents or {}).items():
        await Consent.insert(Consent(customer=member.customer_id, channel=channel, granted=granted, source="app"))
    token = None
    if device:
        token = secrets.token_hex(32)
        await PushDevice.insert(PushDevice(customer=member.customer_id, platform="apns", token=token))
    return Shopper(member=member, customer_id=member.customer_id, email=address, phone=member.phone,
                   device_token=token)


async def make_segment(shop: Shop, prefix: str = "seg") -> str:
    """A static segment of the shop's program (loyalty_core/marketing fills membership.segments; tests set it)."""
    code = unique(prefix)
    await CampaignMessage.raw("INSERT INTO segment (program, code, name, kind, status, member_count, created_by, "
                              "created_at, updated_at) VALUES ({}, {}, {}, 'static', 'active', 0, 'test', now(), now())",
                              shop.program_id, code, code)
    return code


def campaign_body(shop: Shop, segment: str, **extra: object) -> dict:
    body: dict = {
        "code": unique("camp"), "name": "Вернись за скидкой", "segment": segment, "program": shop.program_code,
        "send_at": dt.datetime.now(dt.UTC).isoformat(),
        "messages": {
            "push": {"ru": {"title": "Скидка для вас", "body": "{name}, ваш купон {coupon}"},
                     "en": {"title": "A discount for you", "body": "{name}, your coupon {coupon}"}},
            "email": {"ru": {"subject": "{name}, скидка 15% до воскресенья", "body": "Ваш купон: {coupon}"}},
            "sms": {"ru": {"body": "Скидка 15%, купон {coupon}"}},
        },
    }
    body.update(extra)
    return body


async def drain(config: SenderConfig, *, clock: object = None, sms: object = None, rounds: int = 50) -> int:
    """Run the sender until it finds nothing due; returns how many messages it handled."""
    sender = CampaignSender(config, clock=clock, sms=sms)  # type: ignore[arg-type]
    total = 0
    try:
        for _ in range(rounds):
            handled = await sender.run_once()
            total += handled
            if handled == 0:
                break
    finally:
        await sender.aclose()
    return total


async def queue_now() -> list[queueing.Queued]:
    return await queueing.queue_due(dt.datetime.now(dt.UTC))


async def messages_of(campaign_code: str) -> dict[int, dict]:
    rows = await CampaignMessage.raw(
        "SELECT m.* FROM campaign_message m JOIN campaign c ON c.id = m.campaign WHERE c.code = {}", campaign_code)
    return {r["customer"]: r for r in rows}
