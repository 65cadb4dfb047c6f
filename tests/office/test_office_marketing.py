"""The marketer's segments and campaigns in the back office, over real HTTP and PostgreSQL: a dynamic segment
previewed and saved (its refused conditions shown next to the field), a static list uploaded, recompute and
archive; a campaign drafted (its mistakes next to their fields), edited, launched behind a confirmation, reported
with charts, table and CSV; four eyes for a campaign that gives points."""

from __future__ import annotations

import datetime as dt
import re

from loyalty_core.campaigns import queueing, service
from loyalty_core.marketing import segments
from loyalty_core.tables import Campaign, Membership, PendingApproval
from tests.factories import Shop, make_member, make_shop, unique
from tests.office.helpers import Office, make_staff

GOLDLESS = '{"all": [{"fact": "status", "eq": "active"}, {"fact": "days_since_joined", "lt": 30}]}'


def _when(hours: int = 2) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).astimezone(dt.timezone(dt.timedelta(hours=3))
                                                                           ).strftime("%Y-%m-%dT%H:%M")


def campaign_form(shop: Shop, segment: str, **extra: str) -> dict[str, str]:
    return {"program": shop.program_code, "code": unique("camp"), "name": "Вернись за молочкой", "segment": segment,
            "send_at": _when(), "push.ru.title": "Скидка для вас", "push.ru.body": "{name}, заходите",
            "email.ru.subject": "{name}, −15% на молочное", "email.ru.body": "Ждём вас", "offer": "none",
            "holdout_percent": "10", "cap_messages": "2", "cap_days": "7", "uplift_days": "14", **extra}


async def _shop_with_members(n: int = 3) -> tuple[Shop, list]:
    shop = await make_shop()
    return shop, [await make_member(shop) for _ in range(n)]


async def test_a_marketer_previews_saves_recomputes_and_archives_a_dynamic_segment(server: str) -> None:
    shop, members = await _shop_with_members(3)
    await make_member(shop, registered=False)  # anonymous: not "active"
    code = unique("new").lower()
    async with Office(server) as office:
        await office.signed_in(await make_staff("marketer"))
        page = await office.get("/office/segments/new", program=shop.program_code)
        assert page.status_code == 200 and 'data-testid="preview-count"' in page.text
        form = {"program": shop.program_code, "kind": "dynamic", "code": code, "name": "Новички", "condition": GOLDLESS}

        preview = await office.post("/office/segments/", form | {"action": "preview"})
        assert preview.status_code == 200
        assert re.search(r'data-testid="preview">[^<]*<strong>3</strong>', preview.text), preview.text[-2000:]
        assert await segments.list_segments(shop.program_code) == []  # a preview saves nothing

        bad = await office.post("/office/segments/", form | {"condition": '{"fact": "tierr", "eq": "gold"}'})
        assert bad.status_code == 422
        assert re.search(r'data-testid="error-condition">[^<]*unknown fact &#39;tierr&#39;', bad.text), bad.text[-3000:]
        assert 'aria-invalid="true"' in bad.text
        not_json = await office.post("/office/segments/", form | {"condition": '{"all": ['})
        assert not_json.status_code == 422 and "not JSON" in not_json.text
        bad_code = await office.post("/office/segments/", form | {"code": "Lapsing Gold!"})
        assert bad_code.status_code == 422 and 'data-testid="error-code"' in bad_code.text
        assert await segments.list_segments(shop.program_code) == []

        saved = await office.post("/office/segments/", form | {"action": "save"})
        assert saved.status_code == 303
        listing = await office.get("/office/segments/", program=shop.program_code)
        assert re.search(rf'data-testid="count-{code}">3<', listing.text)
        ids = {m.membership_id for m in members}
        rows = await Membership.select(Membership.id).where(Membership.segments.any(code))  # type: ignore[attr-defined]
        assert {r["id"] for r in rows} == ids

        narrower = await office.post(f"/office/segments/{shop.program_code}/{code}",
                                     {"name": "Новички", "condition": '{"fact": "status", "eq": "anonymous"}'})
        assert narrower.status_code == 303
        assert (await segments.get_segment(shop.program_code, code)).member_count == 1
        recomputed = await office.post(f"/office/segments/{shop.program_code}/{code}/recompute")
        assert recomputed.status_code == 303
        assert "→ 1" in (await office.follow(recomputed)).text

        archived = await office.post(f"/office/segments/{shop.program_code}/{code}/archive")
        assert archived.status_code == 303
        found = await segments.get_segment(shop.program_code, code)
        assert found.status == "archived" and found.member_count == 0


async def test_a_static_list_is_uploaded_and_what_matches_nobody_is_listed(server: str) -> None:
    shop, members = await _shop_with_members(2)
    code = unique("list").lower()
    await segments.create_segment(shop.program_code, segments.SegmentCreate(code=code, kind="static"), "tests",
                                  dt.datetime.now(dt.UTC))
    async with Office(server) as office:
        await office.signed_in(await make_staff("marketer"))
        page = await office.get(f"/office/segments/{shop.program_code}/{code}")
        assert 'enctype="multipart/form-data"' in page.text
        csv = f"card\n{members[0].card}\n{members[1].card}\n0000000000\n".encode()
        answer = office._seen(await office.client.post(
            f"/office/segments/{shop.program_code}/{code}/upload", data={"_csrf": office.csrf, "mode": "replace"},
            files={"file": ("list.csv", csv, "text/csv")}))
        assert answer.status_code == 200, answer.text[-2000:]
        assert 'data-testid="upload-result"' in answer.text and "0000000000" in answer.text
        assert (await segments.get_segment(shop.program_code, code)).member_count == 2

        broken = office._seen(await office.client.post(
            f"/office/segments/{shop.program_code}/{code}/upload", data={"_csrf": office.csrf},
            files={"file": ("list.csv", b"\xff\xfe\x00garbage", "text/csv")}))
        assert broken.status_code == 422 and 'data-testid="error-file"' in broken.text
        assert (await segments.get_segment(shop.program_code, code)).member_count == 2


async def _segment(shop: Shop) -> str:
    code = unique("seg").lower()
    await segments.create_segment(shop.program_code, segments.SegmentCreate(
        code=code, kind="dynamic", condition={"fact": "status", "eq": "active"}), "tests", dt.datetime.now(dt.UTC))
    return code


async def test_a_campaign_is_drafted_edited_launched_reported_and_cancelled(server: str) -> None:
    shop, _ = await _shop_with_members(4)
    segment = await _segment(shop)
    async with Office(server) as office:
        await office.signed_in(await make_staff("marketer"))
        new = await office.get("/office/campaigns/new", program=shop.program_code)
        assert new.status_code == 200 and segment in new.text
        form = campaign_form(shop, segment)

        past = await office.post("/office/campaigns/", form | {"send_at": "2020-01-01T10:00"})
        assert past.status_code == 422 and 'data-testid="error-send_at"' in past.text
        newline = await office.post("/office/campaigns/", form | {"push.ru.title": "two\nlines"})
        assert newline.status_code == 422 and 'data-testid="error-push.ru.title"' in newline.text
        nothing = await office.post("/office/campaigns/", {k: v for k, v in form.items() if "." not in k})
        assert nothing.status_code == 422 and "at least one channel" in nothing.text
        no_points = await office.post("/office/campaigns/", form | {"offer": "points", "bonus_points": ""})
        assert no_points.status_code == 422 and 'data-testid="error-bonus_points"' in no_points.text
        bad_holdout = await office.post("/office/campaigns/", form | {"holdout_percent": "80"})
        assert bad_holdout.status_code == 422 and 'data-testid="error-holdout_percent"' in bad_holdout.text
        assert await Campaign.count().where(Campaign.code == form["code"]) == 0

        made = await office.post("/office/campaigns/", form)
        assert made.status_code == 303, made.text[-2000:]
        code = form["code"]
        edited = await office.post(f"/office/campaigns/{code}/edit", form | {"name": "Молочная пятница"})
        assert edited.status_code == 303
        assert (await service.campaign(code)).name == "Молочная пятница"

        confirm = await office.get(f"/office/campaigns/{code}/confirm", action="launch")
        assert confirm.status_code == 200 and 'data-testid="confirm"' in confirm.text
        assert (await service.campaign(code)).status == "draft"  # the confirmation page changes nothing
        launched = await office.post(f"/office/campaigns/{code}/launch")
        assert launched.status_code == 303
        assert (await service.campaign(code)).status == "scheduled"

        row = await Campaign.select(Campaign.id).where(Campaign.code == code).first()
        await queueing.queue_campaign(row["id"], dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))
        page = await office.get(f"/office/campaigns/{code}")
        assert page.status_code == 200 and 'data-testid="spend-table"' in page.text
        for which in ("channels", "spend"):
            chart = await office.get(f"/office/campaigns/{code}/chart/{which}.svg")
            assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
            assert "script-src" not in chart.headers["content-security-policy"]
        csv = await office.get(f"/office/campaigns/{code}/report.csv")
        assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
        text = csv.content.decode("utf-8-sig")
        queued = await service.campaign(code)
        assert f"Целевая группа;;{queued.targeted}" in text and f"Контрольная группа;;{queued.control}" in text

        cancelled = await office.post(f"/office/campaigns/{code}/cancel")
        assert cancelled.status_code == 303 and (await service.campaign(code)).status == "cancelled"


async def test_a_campaign_with_points_launches_only_when_another_person_approves(server: str) -> None:
    shop, _ = await _shop_with_members(2)
    segment = await _segment(shop)
    anna, boris = await make_staff("marketer"), await make_staff("marketer")
    form = campaign_form(shop, segment, offer="points", bonus_points="300", bonus_valid_days="30")
    code = form["code"]
    async with Office(server) as a, Office(server) as b:
        await a.signed_in(anna)
        assert (await a.post("/office/campaigns/", form)).status_code == 303
        confirm = await a.get(f"/office/campaigns/{code}/confirm", action="launch")
        assert 'data-testid="four-eyes-note"' in confirm.text
        proposed = await a.post(f"/office/campaigns/{code}/launch", {"reason": "Зимняя акция"})
        assert "ждёт второго" in (await a.follow(proposed)).text
        assert (await service.campaign(code)).status == "draft"
        page = await a.get(f"/office/campaigns/{code}")
        assert 'data-testid="approve"' not in page.text and 'data-testid="edit"' not in page.text
        assert (await a.post(f"/office/campaigns/{code}/approve")).status_code == 403
        frozen = await a.post(f"/office/campaigns/{code}/edit", form | {"bonus_points": "3000"})
        assert frozen.status_code == 303 and (await service.campaign(code)).bonus_points == 300

        await b.signed_in(boris)
        page = await b.get(f"/office/campaigns/{code}")
        assert 'data-testid="approve"' in page.text and "Зимняя акция" in page.text
        approved = await b.post(f"/office/campaigns/{code}/approve")
        assert approved.status_code == 303
        launched = await service.campaign(code)
        assert launched.status == "scheduled" and anna.email in launched.launched_by and boris.email in launched.launched_by
        decided = await PendingApproval.select().where(PendingApproval.subject == f"campaign:{code}").first()
        assert decided["status"] == "approved" and decided["kind"] == "campaign.launch"


async def test_an_admin_approves_a_campaign_launch_on_the_approvals_page_and_a_withdrawn_one_is_editable(
        server: str) -> None:
    shop, _ = await _shop_with_members(1)
    segment = await _segment(shop)
    first, second = (campaign_form(shop, segment, offer="points", bonus_points="100") for _ in range(2))
    async with Office(server) as marketer, Office(server) as admin:
        await marketer.signed_in(await make_staff("marketer"))
        for form in (first, second):
            await marketer.post("/office/campaigns/", form)
            await marketer.post(f"/office/campaigns/{form['code']}/launch")
        withdrawn = await marketer.post(f"/office/campaigns/{second['code']}/reject")
        assert withdrawn.status_code == 303
        assert (await marketer.post(f"/office/campaigns/{second['code']}/edit",
                                    second | {"bonus_points": "50"})).status_code == 303
        assert (await service.campaign(second["code"])).bonus_points == 50

        await admin.signed_in(await make_staff("admin"))
        waiting = await PendingApproval.select(PendingApproval.id).where(
            (PendingApproval.subject == f"campaign:{first['code']}") & (PendingApproval.status == "pending")).first()
        await admin.get("/office/approvals")
        answer = await admin.post(f"/office/approvals/{waiting['id']}/approve")
        assert answer.status_code == 303
        assert (await service.campaign(first["code"])).status == "scheduled"

        third = campaign_form(shop, segment, offer="points", bonus_points="100")
        await marketer.post("/office/campaigns/", third)
        await marketer.post(f"/office/campaigns/{third['code']}/launch")
        assert (await marketer.post(f"/office/campaigns/{third['code']}/cancel")).status_code == 303
        assert (await service.campaign(third["code"])).status == "cancelled"
        decided = await PendingApproval.select(PendingApproval.status).where(
            PendingApproval.subject == f"campaign:{third['code']}").first()
        assert decided["status"] == "rejected"  # nobody can approve a cancelled campaign's launch later


async def test_pages_answer_in_english_too(server: str) -> None:
    shop, _ = await _shop_with_members(1)
    async with Office(server) as office:
        await office.signed_in(await make_staff("marketer"))
        office.client.cookies.set("kp_lang", "en")
        for path, words in (("/office/segments/", "New segment"), ("/office/campaigns/", "New campaign"),
                            ("/office/campaigns/new", "When to send")):
            answer = await office.get(path, program=shop.program_code)
            assert answer.status_code == 200 and words in answer.text, path


async def test_a_taken_code_and_a_bad_list_line_are_shown_next_to_their_fields(server: str) -> None:
    shop, members = await _shop_with_members(1)
    segment = await _segment(shop)
    async with Office(server) as office:
        await office.signed_in(await make_staff("marketer"))
        taken = await office.post("/office/segments/", {"program": shop.program_code, "kind": "dynamic", "code": segment,
                                                        "condition": '{"fact": "status", "eq": "active"}'})
        assert taken.status_code == 409 and re.search(r'data-testid="error-code">[^<]*exists', taken.text)
        form = campaign_form(shop, segment)
        await office.post("/office/campaigns/", form)
        again = await office.post("/office/campaigns/", form)
        assert again.status_code == 409 and re.search(r'data-testid="error-code">[^<]*already exists', again.text)
        static = unique("list").lower()
        await segments.create_segment(shop.program_code, segments.SegmentCreate(code=static, kind="static"), "tests",
                                      dt.datetime.now(dt.UTC))
        await office.get(f"/office/segments/{shop.program_code}/{static}")
        answer = office._seen(await office.client.post(
            f"/office/segments/{shop.program_code}/{static}/upload", data={"_csrf": office.csrf},
            files={"file": ("list.csv", f"card\n{members[0].card}\n1,2,3\n".encode(), "text/csv")}))
        assert answer.status_code == 422
        assert re.search(r'data-testid="error-file">line 3: one value per line', answer.text), answer.text[-1500:]
