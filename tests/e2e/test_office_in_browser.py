"""The back office in Chromium: a support agent signs in with password + TOTP, finds a shopper by a misspelt name
and replaces a lost card; an auditor finds it in the log; an adjustment above the limit waits for a second person.
axe-core with no serious violations, usable at 1280 px and on a tablet, and no CSP violation in the console."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import DESKTOP, screenshot
from tests.e2e.helpers import axe_here, no_sideways_scroll
from tests.factories import Shop, make_member
from tests.office.helpers import StaffLogin, make_staff, restore_default_limit
from tests.office.test_office_support import named_member

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
async def default_limit_after(db_pool: None) -> Any:
    yield
    await restore_default_limit()
TABLET = {"width": 768, "height": 1024}
SERIOUS = ("serious", "critical")


async def office_context(chromium: Any, server: str, viewport: dict[str, int] = DESKTOP, **extra: Any) -> Any:
    return await chromium.new_context(base_url=server, viewport=viewport, locale="ru-RU", **extra)


def watch_csp(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


async def sign_in(page: Any, who: StaffLogin) -> None:
    from playwright.async_api import expect

    await page.goto("/office/login")
    await page.get_by_label("E-mail").fill(who.email)
    await page.get_by_label("Пароль").fill(who.password)
    await page.get_by_label("Код из приложения-аутентификатора").fill(who.code())
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_test_id("staff")).to_have_text(who.email)


async def serious(page: Any, label: str) -> dict[str, list[str]]:
    found = await axe_here(page, label)
    return {k: [v for v in vs if any(f"({level})" in v for level in SERIOUS)] for k, vs in found.items()
            if any(any(f"({level})" in v for level in SERIOUS) for v in vs)}


async def test_support_replaces_a_lost_card_of_a_misspelt_shopper_and_an_auditor_finds_it(chromium: Any, server: str,
                                                                                          shop: Shop) -> None:
    from playwright.async_api import expect

    member, surname, _ = await named_member(shop, points=300)
    agent, auditor = await make_staff("support"), await make_staff("auditor")
    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, agent)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Участники").click()
        await page.get_by_label("Телефон, карта, e-mail или имя").fill(surname[:4] + surname[5:])  # a letter lost
        found = page.locator(f'[data-testid="member-link"][href="/office/members/{member.membership_id}"]')
        await expect(found).to_be_visible()  # htmx, as the agent types
        await found.click()
        await expect(page.get_by_test_id("member-name")).to_contain_text(surname)
        row = page.get_by_test_id(f"card-{member.card}")
        await row.get_by_label("Причина").select_option(label="Карта утеряна")
        await row.get_by_label("Комментарий").fill("потеряна в автобусе")
        await row.get_by_test_id("replace").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Карта заменена")
        await expect(page.get_by_test_id(f"card-{member.card}").get_by_test_id("card-status")).to_contain_text("replaced")
        await expect(page.get_by_test_id("trail")).to_contain_text("card.replace")
        await screenshot(page, "office-member")
        assert not csp, csp
        state = await context.storage_state()
    finally:
        await context.close()

    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        await sign_in(page, auditor)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Журнал аудита").click()
        await page.get_by_label("Действие").fill("card.replace")
        await page.get_by_label("Объект").fill(f"customer:{member.customer_id}")
        await page.get_by_role("button", name="Фильтр").click()
        event = page.get_by_test_id("event")
        await expect(event).to_have_count(1)
        await expect(event).to_contain_text(agent.email)
        await expect(event).to_contain_text("потеряна в автобусе")
        await screenshot(page, "office-audit")
        auditor_state = await context.storage_state()
    finally:
        await context.close()

    # axe-core (a context that lets its script in) and no sideways scroll, at 1280 px and on a tablet
    found: dict[str, list[str]] = {}
    for viewport in (DESKTOP, TABLET):
        for who, paths in ((state, ["/office/", f"/office/members?q={surname}", f"/office/members/{member.membership_id}",
                                    "/office/approvals"]),
                           (auditor_state, ["/office/audit"]), (None, ["/office/login"])):
            context = await office_context(chromium, server, viewport, bypass_csp=True, storage_state=who)
            try:
                page = await context.new_page()
                for path in paths:
                    await page.goto(path)
                    await expect(page.locator("main h1")).to_be_visible()
                    found.update(await serious(page, f"{viewport['width']} {path}"))
                    await no_sideways_scroll(page)
            finally:
                await context.close()
    assert not found, found


async def test_an_adjustment_above_the_limit_waits_for_a_second_person(chromium: Any, server: str, shop: Shop) -> None:
    from playwright.async_api import expect

    member = await make_member(shop, points=0)
    agent, boss = await make_staff("support"), await make_staff("admin")
    desk_context, boss_context = await office_context(chromium, server), await office_context(chromium, server, TABLET)
    try:
        desk, supervisor = await desk_context.new_page(), await boss_context.new_page()
        await sign_in(supervisor, boss)
        await supervisor.goto("/office/settings")
        await supervisor.get_by_label("Лимит корректировки (баллы)").fill("1000")
        await supervisor.get_by_role("button", name="Сохранить").click()
        await expect(supervisor.get_by_test_id("flash")).to_have_text("Лимит сохранён")

        await sign_in(desk, agent)
        await desk.goto(f"/office/members/{member.membership_id}")
        form = desk.get_by_test_id("adjust")
        await form.get_by_label(re.compile("^Баллы")).fill("5000")
        await form.get_by_label("Причина", exact=True).select_option(label="Не начисленная покупка")
        await form.get_by_role("button", name="Провести").click()
        await expect(desk.get_by_test_id("waiting")).to_be_visible()
        await expect(desk.get_by_test_id("balance")).to_have_text("0")

        await supervisor.goto("/office/approvals")
        waiting = supervisor.get_by_test_id("approvals").locator("tr", has_text=agent.email)
        await expect(waiting).to_have_count(1)
        await screenshot(supervisor, "office-approvals")
        await waiting.get_by_test_id("approve").click()
        await expect(supervisor.get_by_test_id("flash")).to_have_text("Согласовано")

        await desk.reload()
        await expect(desk.get_by_test_id("balance")).to_have_text(re.compile(r"^5\s?000$"))
        await expect(desk.get_by_test_id("waiting")).to_have_count(0)
        await supervisor.goto("/office/settings")
        await supervisor.get_by_label("Лимит корректировки (баллы)").fill("10000")
        await supervisor.get_by_role("button", name="Сохранить").click()
        await expect(supervisor.get_by_test_id("flash")).to_have_text("Лимит сохранён")
    finally:
        await desk_context.close()
        await boss_context.close()
