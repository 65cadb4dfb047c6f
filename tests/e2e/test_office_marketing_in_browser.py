"""The marketer's campaign story in Chromium: Anna builds a dynamic segment (a condition the checker refuses first,
its message next to the field), previews how many members it selects, saves it, drafts a campaign to it (a send
time in the past first, refused next to the field), launches it behind the confirmation, and sees its report with
the charts, the table and the CSV. axe-core with no violations at 1280 px and on a tablet, nothing scrolls
sideways, no CSP violation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loyalty_core.campaigns import service
from loyalty_core.marketing import segments
from tests.e2e.conftest import DESKTOP
from tests.e2e.helpers import DOCS_SCREENSHOTS, axe_here, no_sideways_scroll
from tests.e2e.test_office_in_browser import TABLET, office_context, sign_in, watch_csp
from tests.factories import make_member, make_shop, unique
from tests.office.helpers import make_staff

pytestmark = pytest.mark.e2e


async def _shot(page: Any, name: str) -> None:
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_a_marketer_builds_a_segment_previews_it_and_launches_a_campaign_to_it(chromium: Any, server: str
                                                                                     ) -> None:
    from playwright.async_api import expect

    shop = await make_shop()
    for _ in range(3):
        await make_member(shop)
    await make_member(shop, registered=False)
    anna = await make_staff("marketer")
    code, campaign = unique("newbies").lower(), unique("camp")
    found: dict[str, list[str]] = {}

    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, anna)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Сегменты").click()
        await page.goto(f"/office/segments/?program={shop.program_code}")
        await page.get_by_test_id("new-segment").click()
        await page.get_by_label("Код").fill(code)
        await page.get_by_label("Название сегмента").fill("Новички")
        condition = page.get_by_label("Условие (JSON)")
        await condition.fill('{"fact": "tierr", "eq": "gold"}')
        await page.get_by_test_id("preview-count").click()
        await expect(page.get_by_test_id("error-condition")).to_contain_text("unknown fact 'tierr'")
        await expect(page.get_by_label("Условие (JSON)")).to_have_attribute("aria-invalid", "true")

        await page.get_by_label("Условие (JSON)").fill('{"fact": "status", "eq": "active"}')
        await page.get_by_test_id("preview-count").click()
        await expect(page.get_by_test_id("preview")).to_contain_text("3")
        await _shot(page, "office-segment-preview")
        await page.get_by_test_id("save-segment").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Сегмент сохранён")
        await expect(page.get_by_test_id("segment-count")).to_have_text("3")
        segment_path = page.url.removeprefix(server)

        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Кампании").click()
        await page.goto(f"/office/campaigns/?program={shop.program_code}")
        await page.get_by_test_id("new-campaign").click()
        await page.get_by_label("Код").fill(campaign)
        await page.get_by_label("Название кампании").fill("Добро пожаловать")
        await page.get_by_label("Сегмент").select_option(code)
        await page.get_by_label("Когда отправить").fill("2020-01-01T10:00")
        await page.get_by_test_id("texts-push").get_by_label("Заголовок (Русский)").fill("Рады вам")
        await page.get_by_test_id("texts-push").get_by_label("Текст (Русский)").fill("{name}, ждём вас снова")
        await page.get_by_test_id("texts-sms").get_by_label("Текст (Русский)").fill("Ждём вас в магазине")
        await page.get_by_label("Контрольная группа, %").fill("10")
        await page.get_by_test_id("save-campaign").click()
        await expect(page.get_by_test_id("error-send_at")).to_contain_text("in the past")
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).astimezone(dt.timezone(dt.timedelta(hours=3)))
        await page.get_by_label("Когда отправить").fill(later.strftime("%Y-%m-%dT%H:%M"))
        await _shot(page, "office-campaign-form")
        await page.get_by_test_id("save-campaign").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Кампания сохранена")
        await expect(page.get_by_test_id("campaign-status")).to_have_text("черновик")
        campaign_path = page.url.removeprefix(server)

        await page.get_by_test_id("launch").click()
        await expect(page.locator("main h1")).to_have_text("Запустить эту кампанию?")
        assert (await service.campaign(campaign)).status == "draft"
        await page.get_by_test_id("confirm").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Запущена")
        await expect(page.get_by_test_id("campaign-status")).to_have_text("запланирована")
        await expect(page.get_by_test_id("edit")).to_have_count(0)
        await expect(page.get_by_test_id("chart-channels").locator("img")).to_be_visible()
        await expect(page.get_by_test_id("spend-table")).to_be_visible()
        async with page.expect_download() as download:
            await page.get_by_test_id("csv").click()
        assert (await download.value).suggested_filename == f"kopilka-campaign-{campaign}.csv"
        await _shot(page, "office-campaign")
        assert not csp, csp
        state = await context.storage_state()
    finally:
        await context.close()

    assert (await segments.get_segment(shop.program_code, code)).member_count == 3
    launched = await service.campaign(campaign)
    assert launched.status == "scheduled" and launched.segment == code and launched.holdout_percent == 10

    for viewport in (DESKTOP, TABLET):
        context = await office_context(chromium, server, viewport, bypass_csp=True, storage_state=state)
        try:
            page = await context.new_page()
            for path in (f"/office/segments/?program={shop.program_code}", segment_path,
                         f"/office/segments/new?program={shop.program_code}",
                         f"/office/segments/new?program={shop.program_code}&kind=static",
                         f"/office/campaigns/?program={shop.program_code}", f"/office/campaigns/new?program={shop.program_code}",
                         campaign_path, f"{campaign_path}/confirm?action=cancel"):
                await page.goto(path)
                await expect(page.locator("main h1")).to_be_visible()
                found.update(await axe_here(page, f"{viewport['width']} {path}"))
                await no_sideways_scroll(page)
            # the refused forms, with their messages next to the fields
            await page.goto(f"/office/segments/new?program={shop.program_code}")
            await page.get_by_label("Код").fill(unique("refused").lower())
            await page.get_by_label("Условие (JSON)").fill('{"fact": "tierr"}')
            await page.get_by_test_id("save-segment").click()
            await expect(page.get_by_test_id("error-condition")).to_be_visible()
            found.update(await axe_here(page, f"{viewport['width']} refused segment"))
            await no_sideways_scroll(page)
            await page.goto(f"/office/campaigns/new?program={shop.program_code}")
            await page.get_by_label("Код").fill(unique("refused"))
            await page.get_by_label("Название кампании").fill("Ещё одна")
            await page.get_by_label("Сегмент").select_option(code)
            await page.get_by_test_id("texts-sms").get_by_label("Текст (Русский)").fill("Ждём вас")
            await page.get_by_label("Когда отправить").fill("2020-01-01T10:00")
            await page.get_by_test_id("save-campaign").click()
            await expect(page.get_by_test_id("error-send_at")).to_be_visible()
            found.update(await axe_here(page, f"{viewport['width']} refused campaign"))
            await no_sideways_scroll(page)
        finally:
            await context.close()
    assert not found, found
