"""A marketer's campaign from the admin API to the shoppers' phones and mailboxes, and its report."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets

import httpx
import msgspec
import pytest

from backend.admin.auth import create_operator_key
from backend.push.campaigns import CampaignSender, SenderConfig
from backend.push.settings import WorkerSettings
from loyalty_core.campaigns import delivery, model, queueing
from loyalty_core.campaigns.report import report
from loyalty_core.coupons.series import SeriesIn, create_series
from loyalty_core.tables import Account, CampaignMember, Coupon, Customer
from tests.campaigns.conftest import (
    MailSink,
    SmsFake,
    campaign_body,
    drain,
    make_segment,
    make_shopper,
    messages_of,
    queue_now,
)
from tests.factories import Shop, unique
from tests.fakes.apns import FakeApns

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def marketer(db_pool: None) -> dict[str, str]:
    key = (await create_operator_key(unique("marketing"), ["marketer"])).key
    return {"Authorization": f"Bearer {key}"}


async def test_a_campaign_reaches_each_shopper_on_the_first_channel_they_agreed_to(
        http: httpx.AsyncClient, marketer: dict[str, str], shop: Shop, sender_config: SenderConfig,
        smtp_sink: MailSink, sms_ru: SmsFake, apns_fake: FakeApns) -> None:
    segment = await make_segment(shop, "lapsing")
    series = (await create_series(SeriesIn(code=unique("back15"), name="15% back", program=shop.program_code))).code
    app_user = await make_shopper(shop, segment, consents={"push": True, "email": True}, device=True, name="Олег")
    reader = await make_shopper(shop, segment, consents={"email": True, "sms": True}, name="Анна")
    texter = await make_shopper(shop, segment, consents={"sms": True}, email_address=False)
    silent = await make_shopper(shop, segment, consents={})
    withdrawn = await make_shopper(shop, segment, consents={"email": True})
    await make_shopper(shop, segment, consents={"email": False})  # the last word counts: withdrawn above
    outsider = await make_shopper(shop, unique("other"), consents={"email": True})
    from loyalty_core.tables import Consent

    await Consent.insert(Consent(customer=withdrawn.customer_id, channel="email", granted=False, source="web"))

    body = campaign_body(shop, segment, coupon_series=series)
    created = await http.post("/admin/v1/campaigns", json=body, headers=marketer)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft" and created.json()["channels"] == ["push", "email", "sms"]
    await queue_now()
    assert (await messages_of(body["code"])) == {}  # a draft is never queued
    launched = await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=marketer)
    assert launched.status_code == 200 and launched.json()["status"] == "scheduled", launched.text

    queued = [q for q in await queue_now() if q.campaign == body["code"]]
    assert len(queued) == 1 and queued[0].targeted == 6 and queued[0].messages == 6
    assert [q for q in await queue_now() if q.campaign == body["code"]] == []  # a second run queues nothing

    assert await drain(sender_config) >= 6
    messages = await messages_of(body["code"])
    assert outsider.customer_id not in messages
    assert messages[app_user.customer_id]["channel"] == "push"
    assert messages[app_user.customer_id]["status"] == "delivered"
    assert messages[reader.customer_id]["channel"] == "email" and messages[reader.customer_id]["status"] == "sent"
    assert messages[texter.customer_id]["channel"] == "sms" and messages[texter.customer_id]["status"] == "sent"
    assert messages[silent.customer_id]["status"] == "skipped"
    assert messages[withdrawn.customer_id]["status"] == "skipped"

    coupons = {r["customer"]: r["coupon_code"] for r in await CampaignMember.raw(
        "SELECT cm.customer, cm.coupon_code FROM campaign_member cm JOIN campaign c ON c.id = cm.campaign "
        "WHERE c.code = {}", body["code"])}
    push = [r for r in apns_fake.delivered() if r.device_token == app_user.device_token]
    assert len(push) == 1
    assert push[0].payload["aps"]["alert"] == {"title": "Скидка для вас",
                                               "body": f"Олег, ваш купон {coupons[app_user.customer_id]}"}
    mails = smtp_sink.to(reader.email or "")
    assert len(mails) == 1
    mail = mails[0]
    assert mail["Subject"] == "Анна, скидка 15% до воскресенья"
    assert coupons[reader.customer_id] in mail.get_body(("plain",)).get_content()
    link = re.search(r"http://loyalty\.test/u/(\S+)", mail.get_body(("plain",)).get_content())
    assert link is not None and mail["List-Unsubscribe"] == f"<http://loyalty.test/u/{link[1]}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert model.read_unsubscribe_token("test-secret", link[1]) == (reader.customer_id, "email")
    sms = sms_ru.to(texter.phone or "")
    assert [s["msg"] for s in sms] == [f"Скидка 15%, купон {coupons[texter.customer_id]}"]
    for shopper in (silent, withdrawn, outsider):
        assert smtp_sink.to(shopper.email or "") == [] and sms_ru.to(shopper.phone or "") == []

    # the shopper opens the e-mail (the pixel), then unsubscribes with the link, no login
    pixel = re.search(r'src="http://loyalty\.test(/u/open/[^"]+)"', mail.get_body(("html",)).get_content())
    assert pixel is not None
    assert (await http.get(pixel[1])).headers["content-type"] == "image/gif"
    page = await http.get(f"/u/{link[1]}")
    assert page.status_code == 200 and "<form" in page.text
    done = await http.post(f"/u/{link[1]}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200, done.text
    consent = await Customer.raw("SELECT granted, source FROM consent WHERE customer = {} AND channel = 'email' "
                                 "ORDER BY id DESC LIMIT 1", reader.customer_id)
    assert consent == [{"granted": False, "source": "unsubscribe"}]

    figures = await http.get(f"/admin/v1/campaigns/{body['code']}/report", headers=marketer)
    assert figures.status_code == 200, figures.text
    r = figures.json()
    assert (r["targeted"], r["queued"], r["sent"], r["delivered"], r["skipped"], r["opened"]) == (6, 6, 3, 1, 3, 1)
    assert r["by_channel"]["email"]["opened"] == 1
    assert r["coupons_issued"] == 3  # to the shoppers reached; nobody unreachable holds one
    assert {coupons[s.customer_id] is None for s in (silent, withdrawn)} == {True}


async def test_the_holdout_is_a_fixed_draw_recorded_and_sent_nothing(shop: Shop, sender_config: SenderConfig) -> None:
    from loyalty_core.campaigns.model import CampaignIn, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch

    segment = await make_segment(shop, "all")
    shoppers = [await make_shopper(shop, segment, consents={"sms": True}, email_address=False) for _ in range(40)]
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("hold"), name="Holdout", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(sms={"ru": SmsText(body="Привет")}), holdout_percent=25)
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    queued = [q for q in await queue_now() if q.campaign == spec.code][0]
    expected = {s.member.membership_id for s in shoppers if model.holdout_bucket(spec.code, s.member.membership_id) < 2500}
    control = {r["membership"] for r in await CampaignMember.raw(
        "SELECT cm.membership FROM campaign_member cm JOIN campaign c ON c.id = cm.campaign "
        "WHERE c.code = {} AND cm.control", spec.code)}
    assert control == expected and queued.control == len(expected) and 0 < len(expected) < 40
    assert queued.messages == 40 - len(expected)
    messaged = {m["membership"] for m in (await messages_of(spec.code)).values()}
    assert not messaged & control


async def test_quiet_hours_in_the_shoppers_time_zone_defer_until_morning(
        shop: Shop, sender_config: SenderConfig, sms_ru: SmsFake) -> None:
    from loyalty_core.campaigns.model import CampaignIn, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch

    segment = await make_segment(shop, "night")
    shopper = await make_shopper(shop, segment, consents={"sms": True}, email_address=False)
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("night"), name="Night", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(sms={"ru": SmsText(body="Ночная распродажа")}))
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    await queue_now()
    night = dt.datetime(2030, 1, 15, 20, 30, tzinfo=dt.UTC)  # 23:30 in Moscow
    config = msgspec.structs.replace(sender_config, tuning=WorkerSettings(quiet_start_hour=22, quiet_end_hour=9))
    await drain(config, clock=lambda: night)
    row = (await messages_of(spec.code))[shopper.customer_id]
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["next_attempt_at"] == dt.datetime(2030, 1, 16, 6, 0, tzinfo=dt.UTC)  # 09:00 in Moscow
    assert sms_ru.to(shopper.phone or "") == []
    morning = dt.datetime(2030, 1, 16, 6, 1, tzinfo=dt.UTC)
    await drain(config, clock=lambda: morning)
    assert (await messages_of(spec.code))[shopper.customer_id]["status"] == "sent"
    assert len(sms_ru.to(shopper.phone or "")) == 1


async def test_a_send_that_may_have_gone_out_is_never_sent_again(
        shop: Shop, sender_config: SenderConfig, sms_ru: SmsFake) -> None:
    """The worker dies between `started` and the outcome; and SMS.ru takes a message and never answers."""
    from loyalty_core.campaigns.model import CampaignIn, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch

    segment = await make_segment(shop, "crash")
    first = await make_shopper(shop, segment, consents={"sms": True}, email_address=False)
    second = await make_shopper(shop, segment, consents={"sms": True}, email_address=False)
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("crash"), name="Crash", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(sms={"ru": SmsText(body="Один раз")}))
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    await queue_now()
    # a worker claims one message, marks it started (as the sender does) and dies before it hears back
    claimed = await delivery.claim(dt.datetime.now(dt.UTC), 1, dt.timedelta(seconds=60))
    assert len(claimed) == 1 and await delivery.started(claimed[0], "sms", now)
    crashed, hung = (first, second) if claimed[0].customer_id == first.customer_id else (second, first)
    # the other one goes to an SMS.ru that takes it and never answers (the client gives up after 2 s)
    sms_ru.hang(1)
    await drain(sender_config)
    assert (await messages_of(spec.code))[hung.customer_id]["status"] == "unknown"
    # the lease runs out: the next worker finds the first one started and never sends it again
    later = now + dt.timedelta(minutes=5)
    await drain(sender_config, clock=lambda: later)
    rows = await messages_of(spec.code)
    assert rows[crashed.customer_id]["status"] == "unknown"
    assert sms_ru.to(crashed.phone or "") == []
    assert len(sms_ru.to(hung.phone or "")) == 1  # received once (and never again)
    figures = await report(spec.code, later)
    assert figures.unknown == 2 and figures.sent == 0


async def test_sms_keeps_to_the_providers_rate_and_bonus_points_land_once(
        shop: Shop, sender_config: SenderConfig, sms_ru: SmsFake) -> None:
    from loyalty_core.campaigns.model import CampaignIn, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch

    segment = await make_segment(shop, "rate")
    shoppers = [await make_shopper(shop, segment, consents={"sms": True}, email_address=False) for _ in range(25)]
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("rate"), name="Rate", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(sms={"ru": SmsText(body="+{points} баллов ждут вас")}), bonus_points=150)
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    await queue_now()
    await asyncio.gather(drain(sender_config), drain(sender_config))  # two workers share SMS.ru's limit
    rows = await messages_of(spec.code)
    assert {(r["status"], r["attempts"]) for r in rows.values()} == {("sent", 1)}, {r["last_error"] for r in rows.values()}
    got = [m for s in shoppers for m in sms_ru.to(s.phone or "")]
    assert len(got) == 25 and {m["msg"] for m in got} == {"+150 баллов ждут вас"}
    stamps = sorted(m["at"] for m in got)
    # both workers together keep to 5 a second, so SMS.ru's 10 a second was never passed (it would have refused
    # with 220 and the message would show a second attempt); 25 messages took about 5 s, not one burst
    assert all(stamps[i + 10] - stamps[i] >= 1.0 for i in range(len(stamps) - 10))
    assert stamps[-1] - stamps[0] >= 4.0
    # SMS.ru's delivery reports, polled by the worker: 103 for each
    sender = CampaignSender(sender_config)
    while await sender.receipts():
        pass
    await sender.aclose()
    assert {r["status"] for r in (await messages_of(spec.code)).values()} == {"delivered"}
    assert (await report(spec.code, dt.datetime.now(dt.UTC))).by_channel["sms"].delivered == 25
    balances = [(await Account.select(Account.active).where(Account.membership == s.member.membership_id).first())
                ["active"] for s in shoppers]
    assert balances == [150] * 25
    # the bonus is claimed once per member, whatever happens to the message afterwards
    sender = CampaignSender(sender_config)
    campaign = await delivery.campaign_facts(rows[shoppers[0].customer_id]["campaign"])
    claimed = delivery.Claimed(id=0, campaign_id=campaign["id"], membership_id=shoppers[0].member.membership_id or 0,
                               customer_id=shoppers[0].customer_id, attempts=1)
    await sender._bonus(claimed, campaign)
    await sender.aclose()
    assert (await Account.select(Account.active).where(
        Account.membership == shoppers[0].member.membership_id).first())["active"] == 150
    assert (await report(spec.code, dt.datetime.now(dt.UTC))).bonus_points_granted == 150 * 25


async def test_the_report_compares_spend_of_targeted_and_control_shoppers(shop: Shop, sender_config: SenderConfig
                                                                        ) -> None:
    from loyalty_core.campaigns.model import CampaignIn, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch

    segment = await make_segment(shop, "uplift")
    shoppers = [await make_shopper(shop, segment, consents={"sms": True}, email_address=False) for _ in range(30)]
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("uplift"), name="Uplift", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(sms={"ru": SmsText(body="Ждём вас")}), holdout_percent=30, uplift_days=7)
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    await queue_now()
    control = {s.member.membership_id for s in shoppers if model.holdout_bucket(spec.code, s.member.membership_id) < 3000}
    # targeted shoppers each buy for 1 000.00 RUB within the week; control shoppers for 400.00; one sale too late
    for n, s in enumerate(shoppers):
        amount = 40_000 if s.member.membership_id in control else 100_000
        await _sale(shop, s.member.membership_id, amount, now + dt.timedelta(days=1), f"r-{spec.code}-{n}")
    await _sale(shop, shoppers[0].member.membership_id, 999_999, now + dt.timedelta(days=8), f"late-{spec.code}")
    figures = await report(spec.code, now + dt.timedelta(days=30))
    assert figures.control_spend.members == len(control) and figures.control_spend.spend_per_member == 40_000
    assert figures.targeted_spend.members == 30 - len(control)
    assert figures.targeted_spend.spend_per_member == 100_000 and figures.targeted_spend.buyers == 30 - len(control)
    assert figures.uplift_per_member == 60_000 and figures.uplift_percent == 150.0


async def _sale(shop: Shop, membership_id: int | None, to_pay: int, at: dt.datetime, receipt: str) -> None:
    await Customer.raw(
        "INSERT INTO sale (store, till, receipt_id, business_date, occurred_at, membership, channel, status, amount, "
        "discount, redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version, earning_spend, "
        "returned_earning_spend, request_hash, response, trace, created_at, card_number, account) "
        "VALUES ({}, {}, {}, {}, {}, {}, 'store', 'confirmed', {}, 0, 0, 0, {}, 0, 0, {}, 0, '', {}::jsonb, "
        "{}::jsonb, {}, NULL, NULL)",
        shop.store_id, shop.till_id, receipt, at.date(), at, membership_id, to_pay, to_pay, to_pay, "{}", "[]", at)


async def test_queueing_is_one_set_based_pass(shop: Shop, sender_config: SenderConfig) -> None:
    """What the benchmark measures at a million, here at a hundred: a few statements, whatever the count."""
    segment = await make_segment(shop, "bulk")
    for _ in range(100):
        await make_shopper(shop, segment, consents={}, email_address=False)
    from loyalty_core.campaigns.model import CampaignIn, Messages, SmsText
    from loyalty_core.campaigns.service import create_campaign, launch

    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("bulk"), name="Bulk", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(sms={"ru": SmsText(body="x")}), holdout_percent=10)
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")
    steps: list[tuple[str, int]] = []
    rows = await queueing.queue_due(now + dt.timedelta(seconds=1), progress=lambda s, n: steps.append((s, n)))
    done = [q for q in rows if q.campaign == spec.code][0]
    assert steps == [("targets and messages", 100)]  # one statement
    assert done.targeted == 100 and done.messages + done.control == 100


async def test_a_cancelled_campaign_sends_nothing_more_and_a_bad_open_pixel_records_nothing(
        http: httpx.AsyncClient, marketer: dict[str, str], shop: Shop, sender_config: SenderConfig,
        sms_ru: SmsFake) -> None:
    segment = await make_segment(shop, "cancel")
    shopper = await make_shopper(shop, segment, consents={"sms": True}, email_address=False)
    body = campaign_body(shop, segment)
    assert (await http.post("/admin/v1/campaigns", json=body, headers=marketer)).status_code == 201
    assert (await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=marketer)).status_code == 200
    await queue_now()
    cancelled = await http.post(f"/admin/v1/campaigns/{body['code']}/cancel", headers=marketer)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    await drain(sender_config)
    row = (await messages_of(body["code"]))[shopper.customer_id]
    assert (row["status"], row["last_error"]) == ("skipped", "campaign cancelled")
    assert sms_ru.to(shopper.phone or "") == []

    forged = model.open_token("another-secret", row["id"])
    pixel = await http.get(f"/u/open/{forged}.gif")
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"  # the same answer ...
    assert (await messages_of(body["code"]))[shopper.customer_id]["opened_at"] is None  # ... and nothing recorded
    genuine = model.open_token("test-secret", row["id"])
    assert (await http.get(f"/u/open/{genuine}.gif")).status_code == 200
    assert (await messages_of(body["code"]))[shopper.customer_id]["opened_at"] is not None


async def test_a_triggered_campaign_greets_each_member_whose_event_happens_once(
        http: httpx.AsyncClient, marketer: dict[str, str], shop: Shop, sender_config: SenderConfig,
        sms_ru: SmsFake) -> None:
    """A birthday campaign to everyone: each run of the job queues the members whose birthday event came since."""
    earlier, anna, boris, vera = [await make_shopper(shop, None, consents={"sms": True}, email_address=False)
                                  for _ in range(4)]
    await _event(shop, earlier, "birthday", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))  # before the campaign
    body = campaign_body(shop, "unused", trigger="birthday", messages={"sms": {"ru": {"body": "С днём рождения!"}}})
    del body["segment"]
    assert (await http.post("/admin/v1/campaigns", json=body, headers=marketer)).status_code == 201
    launched = await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=marketer)
    assert launched.json()["trigger"] == "birthday" and launched.json()["segment"] is None
    await _event(shop, anna, "birthday")
    await _event(shop, boris, "birthday")
    await _event(shop, vera, "inactive")  # another kind
    await queue_now()
    await drain(sender_config)
    assert {c for c in await messages_of(body["code"])} == {anna.customer_id, boris.customer_id}
    assert (await http.get(f"/admin/v1/campaigns/{body['code']}", headers=marketer)).json()["status"] == "active"
    await _event(shop, vera, "birthday")
    await _event(shop, anna, "birthday", occurrence="again")  # once per member
    await queue_now()
    await queue_now()
    await drain(sender_config)
    rows = await messages_of(body["code"])
    assert set(rows) == {anna.customer_id, boris.customer_id, vera.customer_id}
    assert {r["status"] for r in rows.values()} == {"sent"}
    for s in (anna, boris, vera):
        assert [m["msg"] for m in sms_ru.to(s.phone or "")] == ["С днём рождения!"]
    assert sms_ru.to(earlier.phone or "") == []


async def _event(shop: Shop, shopper: object, kind: str, at: dt.datetime | None = None,
                 occurrence: str | None = None) -> None:
    member = shopper.member  # type: ignore[attr-defined]
    await Customer.raw(
        "INSERT INTO member_event (program, membership, kind, occurrence, points, detail, created_at) "
        "VALUES ({}, {}, {}, {}, 0, {}::jsonb, {})",
        shop.program_id, member.membership_id, kind, occurrence or unique("occ"), "{}", at or dt.datetime.now(dt.UTC))


async def test_the_app_reports_a_campaign_push_opened_only_for_its_own_shopper(
        http: httpx.AsyncClient, marketer: dict[str, str], shop: Shop, sender_config: SenderConfig,
        apns_fake: FakeApns, shopper_factory: object) -> None:
    from loyalty_core.tables import Consent, Membership, PushDevice

    segment = await make_segment(shop, "app")
    app = await shopper_factory()  # type: ignore[operator]
    other = await shopper_factory()  # type: ignore[operator]
    token = secrets.token_hex(32)
    await Membership.update({Membership.segments: [segment]}).where(Membership.customer == app.customer_id)
    await Consent.insert(Consent(customer=app.customer_id, channel="push", granted=True, source="app"))
    await PushDevice.insert(PushDevice(customer=app.customer_id, platform="apns", token=token))
    body = campaign_body(shop, segment)
    assert (await http.post("/admin/v1/campaigns", json=body, headers=marketer)).status_code == 201
    assert (await http.post(f"/admin/v1/campaigns/{body['code']}/launch", headers=marketer)).status_code == 200
    await queue_now()
    await drain(sender_config)
    push = [r for r in apns_fake.delivered() if r.device_token == token]
    assert len(push) == 1 and push[0].payload["kind"] == "campaign"
    message = push[0].payload["message"]
    assert (await http.post(f"/api/v1/campaign-messages/{message}/opened", headers=other.headers)).status_code == 404
    assert (await http.post(f"/api/v1/campaign-messages/{message}/opened")).status_code == 401
    assert (await report(body["code"], dt.datetime.now(dt.UTC))).opened == 0
    assert (await http.post(f"/api/v1/campaign-messages/{message}/opened", headers=app.headers)).status_code == 204
    figures = await report(body["code"], dt.datetime.now(dt.UTC))
    assert figures.opened == 1 and figures.by_channel["push"].opened == 1
