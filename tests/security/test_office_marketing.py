"""Abuse tests of the back office's segments and campaigns (/office/segments, /office/campaigns): only marketers and
admins reach them (support, finance, auditors and importers get 403 on every page and action, strangers the sign-in
page); every POST needs this browser's CSRF token; nobody launches a campaign with points alone (not even an admin
approving their own proposal); a launched campaign cannot be edited; oversized forms are refused; text a marketer
types is shown as text."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.campaigns import service
from loyalty_core.campaigns.model import CampaignIn
from loyalty_core.marketing import segments
from loyalty_core.office import staff
from loyalty_core.tables import Campaign, PendingApproval
from tests.factories import Shop, make_member, make_shop, unique
from tests.office.helpers import Office, make_staff
from tests.office.test_office_marketing import campaign_form

OUTSIDERS = [role for role in ("support", "finance", "auditor", "import") if role in staff.ROLES]


async def _setting(server: str) -> tuple[Shop, str, str]:
    """A shop, a dynamic segment and a draft campaign made by a marketer through the office."""
    shop = await make_shop()
    await make_member(shop)
    segment = unique("seg").lower()
    await segments.create_segment(shop.program_code, segments.SegmentCreate(
        code=segment, condition={"fact": "status", "eq": "active"}), "tests", dt.datetime.now(dt.UTC))
    form = campaign_form(shop, segment, offer="points", bonus_points="500")
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        assert (await marketer.post("/office/campaigns/", form)).status_code == 303
    return shop, segment, form["code"]


def _paths(shop: Shop, segment: str, campaign: str) -> list[tuple[str, str]]:
    seg, camp = f"/office/segments/{shop.program_code}/{segment}", f"/office/campaigns/{campaign}"
    return [("GET", "/office/segments/"), ("GET", "/office/segments/new"), ("POST", "/office/segments/"),
            ("GET", seg), ("POST", seg), ("POST", seg + "/recompute"), ("POST", seg + "/archive"),
            ("POST", seg + "/upload"), ("GET", "/office/campaigns/"), ("GET", "/office/campaigns/new"),
            ("POST", "/office/campaigns/"), ("GET", camp), ("GET", camp + "/edit"), ("POST", camp + "/edit"),
            ("GET", camp + "/confirm"), ("POST", camp + "/launch"), ("POST", camp + "/cancel"),
            ("POST", camp + "/approve"), ("POST", camp + "/reject"), ("GET", camp + "/chart/channels.svg"),
            ("GET", camp + "/chart/spend.svg"), ("GET", camp + "/report.csv")]


@pytest.mark.parametrize("role", OUTSIDERS)
async def test_support_finance_auditors_and_importers_get_403_on_every_marketing_page_and_action(
        server: str, role: str) -> None:
    shop, segment, campaign = await _setting(server)
    async with Office(server) as outsider:
        await outsider.signed_in(await make_staff(role))
        for method, path in _paths(shop, segment, campaign):
            answer = await (outsider.get(path, program=shop.program_code) if method == "GET" else
                            outsider.post(path, {"program": shop.program_code, "code": unique("x"), "name": "x",
                                                 "condition": '{"fact": "status", "eq": "active"}'}))
            assert answer.status_code == 403, (role, method, path, answer.status_code)
        home = await outsider.get("/office/")
        assert 'href="/office/campaigns"' not in home.text and 'href="/office/segments"' not in home.text
    assert (await service.campaign(campaign)).status == "draft"
    assert len(await segments.list_segments(shop.program_code)) == 1
    assert (await segments.get_segment(shop.program_code, segment)).status == "active"


async def test_a_stranger_gets_the_sign_in_page(server: str) -> None:
    shop, segment, campaign = await _setting(server)
    async with Office(server) as stranger:
        for method, path in _paths(shop, segment, campaign):
            answer = await (stranger.get(path) if method == "GET" else stranger.post(path))
            if method == "POST":  # no session, no CSRF cookie: refused before the guard
                assert answer.status_code in (303, 403), path
            else:
                assert answer.status_code == 303 and answer.headers["location"].startswith("/office/login"), path


async def test_every_marketing_post_needs_this_browsers_csrf_token(server: str) -> None:
    shop, segment, campaign = await _setting(server)
    async with Office(server) as marketer, Office(server) as other:
        await marketer.signed_in(await make_staff("marketer"))
        await other.signed_in(await make_staff("marketer"))
        for method, path in _paths(shop, segment, campaign):
            if method != "POST":
                continue
            for token in ("", other.csrf):  # none, and another browser's
                answer = await marketer.post(path, {"program": shop.program_code, "code": unique("x"),
                                                    "condition": '{"fact": "status", "eq": "active"}'}, csrf=token)
                assert answer.status_code == 403, (path, token[:4])
    assert (await service.campaign(campaign)).status == "draft"
    assert len(await segments.list_segments(shop.program_code)) == 1
    assert await PendingApproval.count().where(PendingApproval.subject == f"campaign:{campaign}") == 0


async def test_nobody_launches_a_campaign_with_points_alone_not_even_an_admin(server: str) -> None:
    shop, segment, _ = await _setting(server)
    form = campaign_form(shop, segment, offer="points", bonus_points="100000")
    async with Office(server) as boss:
        await boss.signed_in(await make_staff("admin"))
        assert (await boss.post("/office/campaigns/", form)).status_code == 303
        await boss.post(f"/office/campaigns/{form['code']}/launch", {"reason": "мне можно"})
        assert (await boss.post(f"/office/campaigns/{form['code']}/approve")).status_code == 403
        waiting = await PendingApproval.select(PendingApproval.id).where(
            PendingApproval.subject == f"campaign:{form['code']}").first()
        await boss.get("/office/approvals")
        assert (await boss.post(f"/office/approvals/{waiting['id']}/approve")).status_code == 403
        # launching again while it waits does not go round the second person
        await boss.post(f"/office/campaigns/{form['code']}/launch")
    assert (await service.campaign(form["code"])).status == "draft"
    assert await PendingApproval.count().where(PendingApproval.subject == f"campaign:{form['code']}") == 1


async def test_a_launched_campaign_cannot_be_edited(server: str) -> None:
    shop, segment, _ = await _setting(server)
    form = campaign_form(shop, segment)
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        await marketer.post("/office/campaigns/", form)
        await marketer.post(f"/office/campaigns/{form['code']}/launch")
        before = await service.campaign(form["code"])
        assert before.status == "scheduled"
        page = await marketer.get(f"/office/campaigns/{form['code']}")
        assert 'data-testid="edit"' not in page.text
        changed = await marketer.post(f"/office/campaigns/{form['code']}/edit",
                                      form | {"name": "Подмена", "segment": "", "push.ru.body": "другой текст",
                                              "offer": "points", "bonus_points": "100000"})
        assert changed.status_code == 303
        assert "only a draft can be changed" in (await marketer.follow(changed)).text
        after = await service.campaign(form["code"])
        assert after == before
        relaunch = await marketer.post(f"/office/campaigns/{form['code']}/launch")
        assert relaunch.status_code == 303
        assert (await service.campaign(form["code"])).status == "scheduled"
    with pytest.raises(service.NotEditable):
        spec = msgspec.convert({"code": form["code"], "name": "x", "program": shop.program_code,
                                "segment": segment, "send_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
                                "messages": {"sms": {"ru": {"body": "x"}}}}, CampaignIn)
        await service.update_campaign(form["code"], spec, dt.datetime.now(dt.UTC), operator="tests")


async def test_oversized_forms_and_bad_codes_are_refused_and_change_nothing(server: str) -> None:
    shop, segment, campaign = await _setting(server)
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        huge = await marketer.post("/office/segments/", {"program": shop.program_code, "code": "huge",
                                                          "condition": "[" * 100_000})
        assert huge.status_code == 400
        deep = await marketer.post("/office/segments/", {"program": shop.program_code, "code": "deep",
                                                          "condition": '{"not": ' * 20 + '{"fact": "tier", "eq": "a"}'
                                                          + "}" * 20})
        assert deep.status_code == 422
        long_text = await marketer.post(f"/office/campaigns/{campaign}/edit",
                                        campaign_form(shop, segment) | {"email.ru.body": "x" * 20_000})
        assert long_text.status_code == 400
        assert (await marketer.get("/office/campaigns/..%2F..%2Fetc")).status_code in (400, 404)
        assert (await marketer.get("/office/campaigns/" + "a" * 65)).status_code in (400, 404)
        other_program = await make_shop()
        foreign = await marketer.post("/office/campaigns/", campaign_form(other_program, segment))
        assert foreign.status_code == 422 and 'data-testid="error-segment"' in foreign.text
    assert len(await segments.list_segments(shop.program_code)) == 1
    assert await Campaign.count().where(Campaign.program == other_program.program_id) == 0


async def test_what_a_marketer_types_is_shown_as_text(server: str) -> None:
    shop, segment, _ = await _setting(server)
    script = '<script>alert(1)</script>'
    form = campaign_form(shop, segment, name=script, **{"push.ru.body": script})
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        await marketer.post("/office/campaigns/", form)
        page = await marketer.get(f"/office/campaigns/{form['code']}")
        listing = await marketer.get("/office/campaigns/", program=shop.program_code)
        seg = await marketer.post("/office/segments/", {"program": shop.program_code, "code": "x", "name": script,
                                                         "condition": script})
    for text in (page.text, listing.text, seg.text):
        assert script not in text and "&lt;script&gt;" in text
