"""The marketer's story in Chromium: Anna starts a draft, doubles the winter rate in the rule's form (a rate the
engine refuses first, its message next to the field), adds a happy-hours multiplier by picking the mechanic (its
fields come with htmx), sees the diff, replays last week's receipts, and proposes it; the button to approve her own
proposal is not there. Boris, another marketer, approves it; it is live, an auditor finds the publish in the log, and
the next till sale earns the new rate.
axe-core with no violations at 1280 px and on a tablet, nothing scrolls sideways, no CSP violation."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from loyalty_core.rules import admin as rules_admin
from tests.e2e.conftest import DESKTOP
from tests.e2e.helpers import DOCS_SCREENSHOTS, axe_here, no_sideways_scroll
from tests.e2e.test_office_in_browser import TABLET, office_context, sign_in, watch_csp
from tests.factories import make_member
from tests.office.helpers import make_staff
from tests.rules_office.helpers import promo_shop, sell

pytestmark = pytest.mark.e2e


async def _shot(page: Any, name: str) -> None:
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(DOCS_SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_a_marketer_doubles_a_rate_replays_it_and_another_marketer_publishes_it(chromium: Any, server: str
                                                                                      ) -> None:
    from playwright.async_api import expect

    shop = await promo_shop()
    member = await make_member(shop)
    now = dt.datetime.now(dt.UTC)
    for days in (6, 3, 1):
        await sell(server, shop, member.card, [("milk", 2, 10_000)], when=now - dt.timedelta(days=days))
    anna, boris = await make_staff("marketer"), await make_staff("marketer")
    before = (await rules_admin.live_rules(shop.program_code)).version

    anna_context = await office_context(chromium, server)
    try:
        page = await anna_context.new_page()
        csp = watch_csp(page)
        await sign_in(page, anna)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Правила").click()
        await page.goto(f"/office/rules/?program={shop.program_code}")
        await page.get_by_label("Название").fill("Зима ×2")
        await page.get_by_test_id("new-draft").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Черновик создан")
        await expect(page.get_by_test_id("no-changes")).to_be_visible()
        draft_url = page.url

        await page.get_by_test_id("edit-winter").click()
        await page.get_by_label("Ставка, %").fill("150")
        await page.get_by_test_id("save-rule").click()
        await expect(page.get_by_test_id("error-effect.bp")).to_contain_text("15000 is outside 0..10000")
        await expect(page.get_by_label("Ставка, %")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label("Ставка, %").fill("10")
        await page.get_by_test_id("save-rule").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Правило сохранено")

        await page.get_by_test_id("add-to-promo").click()
        await page.get_by_role("combobox", name="Механика").select_option("multiplier")  # htmx brings its fields
        await expect(page.get_by_test_id("mechanic-help")).to_contain_text("Умножает базовые баллы уровня")
        await page.get_by_label("Множитель, ×").fill("2")
        await page.get_by_label("Код").fill("happy-hours")
        await page.get_by_label("Название правила").fill("Счастливые часы")
        await page.get_by_label("Часы (например, 18-21)").fill("18-21")
        await _shot(page, "office-rules-editor")
        await page.get_by_test_id("save-rule").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Правило сохранено")

        diff = page.get_by_test_id("diff")
        await expect(diff.get_by_test_id("change-rule-winter")).to_contain_text("effect.bp")
        await expect(diff.get_by_test_id("change-rule-winter")).to_contain_text("10 %")
        await expect(diff.get_by_test_id("change-rule-happy-hours")).to_contain_text("×2")

        await page.get_by_label("Дней").fill("7")
        await page.get_by_test_id("replay").click()
        await expect(page.get_by_test_id("replay-receipts")).to_have_text("3")
        winter = page.get_by_test_id("replay-rule-winter")
        await expect(winter).to_be_visible()
        await expect(page.get_by_test_id("delta-points")).to_have_text(re.compile(r"^[1-9]"))
        await expect(page.get_by_test_id("delta-cost")).to_have_text(re.compile(r"^[1-9][\d\s\u00a0]*,\d\d\s?₽$"))
        await _shot(page, "office-rules-replay")

        await page.get_by_label("Зачем (сохраняется с версией)").fill("Зимняя акция: удвоить")
        await page.get_by_test_id("propose").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Отправлено: ждёт второго сотрудника")
        await expect(page.get_by_test_id("draft-status")).to_have_text("на согласовании")
        await expect(page.get_by_test_id("approve")).to_have_count(0)  # not for the one who proposed it
        assert not csp, csp
        anna_state = await anna_context.storage_state()
    finally:
        await anna_context.close()

    boris_context = await office_context(chromium, server, TABLET)
    try:
        page = await boris_context.new_page()
        await sign_in(page, boris)
        await page.goto(f"/office/rules/?program={shop.program_code}")
        await page.get_by_test_id("drafts").get_by_role("link", name=re.compile("Черновик")).first.click()
        await expect(page.get_by_test_id("proposal")).to_contain_text(anna.email)
        await page.get_by_test_id("approve").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Опубликовано")
        await expect(page.get_by_test_id("draft-status")).to_have_text("опубликован")
        await page.goto(f"/office/rules/?program={shop.program_code}")
        await expect(page.get_by_test_id(f"version-{before + 1}")).to_contain_text("действует")
        calendar = page.get_by_test_id("calendar-happy-hours")  # what runs when: every day, 18 to 21
        await expect(calendar).to_contain_text("18–21")
        await expect(page.get_by_test_id("calendar-winter")).to_contain_text("весь день")
        await _shot(page, "office-rules")
        boris_state = await boris_context.storage_state()
    finally:
        await boris_context.close()

    auditor_context = await office_context(chromium, server)
    try:
        page = await auditor_context.new_page()
        await sign_in(page, await make_staff("auditor"))
        await page.goto(f"/office/audit?action=rules.&subject=program:{shop.program_code}")
        event = page.get_by_test_id("event")
        await expect(event).to_have_count(1)  # who published, proposed by whom, from which version to which
        await expect(event).to_contain_text("rules.published")
        await expect(event).to_contain_text(boris.email)
        await expect(event).to_contain_text(anna.email)
    finally:
        await auditor_context.close()

    sale = await sell(server, shop, member.card, [("milk", 1, 10_000)])
    winter = next(a for a in sale["applied"] if a["rule"] == "winter")
    assert winter["points"] == 10  # 10 % of 100 ₽ in points worth 1 ₽ each

    found: dict[str, list[str]] = {}
    draft_path = draft_url.removeprefix(server)
    for viewport in (DESKTOP, TABLET):
        for state, paths in ((anna_state, [f"/office/rules/?program={shop.program_code}", draft_path,
                                           draft_path + "/rules/winter", draft_path + "/new-rule?group=promo",
                                           draft_path + "/raw", draft_path + "/groups/promo",
                                           draft_path + "/settings"]),
                                         (boris_state, ["/office/"])):
            context = await office_context(chromium, server, viewport, bypass_csp=True, storage_state=state)
            try:
                page = await context.new_page()
                for path in paths:
                    await page.goto(path)
                    await expect(page.locator("main h1")).to_be_visible()
                    found.update(await axe_here(page, f"{viewport['width']} {path}"))
                    await no_sideways_scroll(page)
            finally:
                await context.close()
    assert not found, found
