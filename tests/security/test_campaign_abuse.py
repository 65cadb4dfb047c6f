"""Campaigns' boundaries: only marketers (and admins) create and launch; an unsubscribe link cannot be forged,
altered or turned on another shopper; a campaign text or a shopper's name cannot add an e-mail header; a
shopper without consent gets nothing on any channel; the frequency cap holds across campaigns, repeated runs
and two workers at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import httpx
import pytest

from backend.admin.auth import create_operator_key
from backend.push.campaigns import CampaignSender, SenderConfig
from loyalty_core.campaigns import model
from loyalty_core.campaigns.model import CampaignIn, EmailText, FrequencyCap, Messages, SmsText
from loyalty_core.campaigns.report import report
from loyalty_core.campaigns.service import create_campaign, launch
from loyalty_core.tables import Campaign, Consent
from tests.campaigns.conftest import (  # noqa: F401 (fixtures)
    MailSink,
    SmsFake,
    campaign_body,
    drain,
    make_segment,
    make_shopper,
    messages_of,
    queue_now,
    quiet_campaigns,
    sender_config,
    sms_ru,
    smtp_sink,
)
from tests.factories import Shop, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _key(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await create_operator_key(unique(role), [role])).key}"}


async def _campaigns_named(code: str) -> int:
    return len(await Campaign.select(Campaign.id).where(Campaign.code == code))


async def _email_consent(customer_id: int) -> bool:
    rows = await Consent.raw("SELECT granted FROM consent WHERE customer = {} AND channel = 'email' "
                             "ORDER BY changed_at DESC, id DESC LIMIT 1", customer_id)
    return bool(rows and rows[0]["granted"])


async def test_only_a_marketer_or_an_admin_creates_and_launches_a_campaign(http: httpx.AsyncClient, shop: Shop) -> None:
    segment = await make_segment(shop)
    body = campaign_body(shop, segment)
    for role in ("support", "import"):
        refused = await http.post("/admin/v1/campaigns", json=body, headers=await _key(role))
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await http.post("/admin/v1/campaigns", json=body)).status_code == 401
    assert (await http.post("/admin/v1/campaigns", json=body,
                            headers={"Authorization": "Bearer ok_forged"})).status_code == 401
    assert await _campaigns_named(body["code"]) == 0

    created = await http.post("/admin/v1/campaigns", json=body, headers=await _key("marketer"))
    assert created.status_code == 201, created.text
    support = await _key("support")
    for action in ("launch", "cancel"):
        assert (await http.post(f"/admin/v1/campaigns/{body['code']}/{action}", headers=support)).status_code == 403
    assert (await http.get(f"/admin/v1/campaigns/{body['code']}/report", headers=support)).status_code == 403
    assert (await http.get(f"/admin/v1/campaigns/{body['code']}", headers=await _key("marketer"))).json()["status"] \
        == "draft"
    admin = await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=await _key("admin"))
    assert admin.status_code == 200 and admin.json()["status"] == "scheduled"
    again = await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=await _key("admin"))
    assert again.status_code == 409  # launched once


async def test_an_unsubscribe_link_cannot_be_forged_altered_or_used_on_someone_else(
        http: httpx.AsyncClient, shop: Shop) -> None:
    alice = await make_shopper(shop, None, consents={"email": True, "sms": True})
    bob = await make_shopper(shop, None, consents={"email": True})
    token = model.unsubscribe_token("test-secret", alice.customer_id, "email")
    _, _, _, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    forged = [
        f"u1.{bob.customer_id}.email.{mac}",  # Alice's signature on Bob's id
        f"u1.{alice.customer_id}.email.{flipped}",  # a changed signature
        model.unsubscribe_token("another-secret", bob.customer_id, "email"),  # signed with a guessed secret
        f"u1.{alice.customer_id}.sms.{mac}",  # the e-mail link turned into an SMS one
        f"u1.{bob.customer_id}.email.",
        f"u1.0{bob.customer_id}.email.{mac}",
        f"u2.{bob.customer_id}.email.{mac}",
        "u1." + "9" * 19 + ".email." + "A" * 43,
        "%2e%2e%2f" + token,
        token + "A",
    ]
    for bad in forged:
        for answer in (await http.get(f"/u/{bad}"), await http.post(f"/u/{bad}")):
            assert answer.status_code == 404, (bad, answer.status_code, answer.text)
    assert await _email_consent(alice.customer_id) and await _email_consent(bob.customer_id)

    assert (await http.post(f"/u/{token}")).status_code == 200
    assert not await _email_consent(alice.customer_id)
    assert await _email_consent(bob.customer_id)  # untouched
    sms = await Consent.raw("SELECT granted FROM consent WHERE customer = {} AND channel = 'sms' "
                            "ORDER BY id DESC LIMIT 1", alice.customer_id)
    assert sms == [{"granted": True}]  # an e-mail link withdraws the e-mail consent only
    assert (await http.post(f"/u/{token}")).status_code == 200  # a second click: still unsubscribed, no new row
    rows = await Consent.raw("SELECT count(*) AS n FROM consent WHERE customer = {} AND source = 'unsubscribe'",
                             alice.customer_id)
    assert rows[0]["n"] == 1


async def test_no_header_can_be_added_to_a_campaign_e_mail(
        http: httpx.AsyncClient, shop: Shop, sender_config: SenderConfig, smtp_sink: MailSink) -> None:
    segment = await make_segment(shop)
    marketer = await _key("marketer")
    for field, value in (("subject", "Sale\r\nBcc: victim@evil.test"), ("subject", "Sale\nX-Spam: no"),
                         ("subject", "Sale\x00")):
        body = campaign_body(shop, segment)
        body["messages"]["email"]["ru"][field] = value
        refused = await http.post("/admin/v1/campaigns", json=body, headers=marketer)
        assert refused.status_code in (400, 422), refused.text
        assert await _campaigns_named(body["code"]) == 0
    body = campaign_body(shop, segment)
    body["messages"]["push"]["ru"]["title"] = "Hi\r\nthere"
    assert (await http.post("/admin/v1/campaigns", json=body, headers=marketer)).status_code in (400, 422)

    # a shopper who typed header lines into their name: the subject gets the name on one line
    eve = await make_shopper(shop, segment, consents={"email": True},
                             name="Eve\r\nBcc: victim@evil.test\r\nX-Injected: yes")
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("inject"), name="Inject", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(email={"ru": EmailText(subject="{name}, для вас скидка", body="Привет, {name}")}))
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    await queue_now()
    await drain(sender_config)
    mails = smtp_sink.to(eve.email or "")
    assert len(mails) == 1
    mail = mails[0]
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert mail["X-Envelope-To"] == eve.email  # one recipient: nobody was added
    assert mail["Subject"] == "Eve Bcc: victim@evil.test X-Injected: yes, для вас скидка"
    assert [m for m in smtp_sink.messages() if "victim@evil.test" in m["X-Envelope-To"]] == []


async def test_a_shopper_without_consent_never_gets_a_campaign_message(
        http: httpx.AsyncClient, shop: Shop, sender_config: SenderConfig, smtp_sink: MailSink, sms_ru: SmsFake,
        apns_fake: object) -> None:
    segment = await make_segment(shop)
    never_asked = await make_shopper(shop, segment, consents={}, device=True)
    said_no = await make_shopper(shop, segment, consents={"email": False, "sms": False, "push": False}, device=True)
    changed_mind = await make_shopper(shop, segment, consents={"email": True, "sms": True, "push": True}, device=True)
    for channel in ("email", "sms", "push"):
        await Consent.insert(Consent(customer=changed_mind.customer_id, channel=channel, granted=False, source="app"))
    # agreed to e-mail, then unsubscribed with an earlier e-mail's link after the campaign was queued
    unsubscribed = await make_shopper(shop, segment, consents={"email": True})
    body = campaign_body(shop, segment)
    marketer = await _key("marketer")
    assert (await http.post("/admin/v1/campaigns", json=body, headers=marketer)).status_code == 201
    assert (await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=marketer)).status_code == 200
    await queue_now()
    link = model.unsubscribe_token("test-secret", unsubscribed.customer_id, "email")
    assert (await http.post(f"/u/{link}")).status_code == 200
    await drain(sender_config)
    shoppers = (never_asked, said_no, changed_mind, unsubscribed)
    rows = await messages_of(body["code"])
    assert {rows[s.customer_id]["status"] for s in shoppers} == {"skipped"}
    for s in shoppers:
        assert smtp_sink.to(s.email or "") == [] and sms_ru.to(s.phone or "") == []
        assert [r for r in apns_fake.delivered() if r.device_token == s.device_token] == []  # type: ignore[attr-defined]


async def test_the_frequency_cap_holds_across_campaigns_repeat_runs_and_two_workers(
        shop: Shop, sender_config: SenderConfig, sms_ru: SmsFake) -> None:
    segment = await make_segment(shop)
    shoppers = [await make_shopper(shop, segment, consents={"sms": True}, email_address=False) for _ in range(6)]
    now = dt.datetime.now(dt.UTC)
    codes = []
    for n in range(3):  # three campaigns, each allowing 1 campaign message per shopper per 7 days
        spec = CampaignIn(code=unique("cap"), name=f"Cap {n}", segment=segment, program=shop.program_code,
                          send_at=now, messages=Messages(sms={"ru": SmsText(body=f"Акция {n}")}),
                          frequency_cap=FrequencyCap(messages=1, days=7))
        await create_campaign(spec, now, operator="test")
        await launch(spec.code, now, operator="test")
        codes.append(spec.code)
    await queue_now()  # all three queued before any was sent: the cap is decided when sending

    async def two_workers() -> None:
        first, second = CampaignSender(sender_config), CampaignSender(sender_config)
        try:
            for _ in range(10):
                handled = await asyncio.gather(first.run_once(), second.run_once())
                if not any(handled):
                    break
        finally:
            await first.aclose()
            await second.aclose()

    await two_workers()
    await queue_now()
    await two_workers()
    for s in shoppers:
        assert len(sms_ru.to(s.phone or "")) == 1, s.phone
    statuses = [r["status"] for code in codes for r in (await messages_of(code)).values()]
    assert statuses.count("sent") == 6 and statuses.count("capped") == 12

    # a fourth campaign queued later: capped when queued, recorded, nothing sent
    later = CampaignIn(code=unique("cap"), name="Later", segment=segment, program=shop.program_code, send_at=now,
                       messages=Messages(sms={"ru": SmsText(body="Ещё")}), frequency_cap=FrequencyCap(messages=1, days=7))
    await create_campaign(later, now, operator="test")
    await launch(later.code, now, operator="test")
    queued = [q for q in await queue_now() if q.campaign == later.code][0]
    assert (queued.capped, queued.messages) == (6, 0)
    await two_workers()
    assert all(len(sms_ru.to(s.phone or "")) == 1 for s in shoppers)
    assert (await report(later.code, now)).capped_when_queued == 6
    assert re.fullmatch(r"u1\.\d+\.email\.[A-Za-z0-9_-]{43}", model.unsubscribe_token("x", 1, "email"))


async def test_no_campaign_operation_fails_with_a_server_error(server: str, shop: Shop) -> None:
    """Schemathesis on /admin/v1/campaigns alone (the whole /admin/v1 run may spend its budget elsewhere)."""
    from tests.fuzzing import fuzz

    await make_segment(shop)
    headers = await _key("marketer")
    failures, statuses = fuzz(server, "^/admin/v1/campaigns", headers, examples=40, budget_seconds=60,
                              min_operations=5, skip=set())
    assert not failures, "\n".join(failures[:20])
    assert len(statuses) > 50 and all(s < 500 for s in statuses)
