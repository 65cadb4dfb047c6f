"""In Chromium: a support agent finds a shopper registered twice and asks to merge the duplicate; an admin approves
it and the member's page shows the duplicate's card and points; an admin makes a new colleague, who signs in with
the password and authenticator key shown once. axe-core with no violations at 1280 px and on a tablet, no sideways
scroll, no CSP violation."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import DESKTOP, screenshot
from tests.e2e.helpers import axe_here, no_sideways_scroll
from tests.e2e.test_office_in_browser import TABLET, office_context, sign_in, watch_csp
from tests.factories import Shop, account_balance, make_member
from tests.office.helpers import PASSWORD, StaffLogin, make_staff
from tests.office.test_office_support import named_member

pytestmark = pytest.mark.e2e


async def test_support_asks_to_merge_a_duplicate_and_an_admin_approves_it(chromium: Any, server: str,
                                                                          shop: Shop) -> None:
    from playwright.async_api import expect

    member, surname, _ = await named_member(shop, points=300)
    twin = await make_member(shop, points=120)
    agent, boss = await make_staff("support"), await make_staff("admin")
    page_of = f"/office/members/{member.membership_id}"
    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, agent)
        await page.goto(page_of)
        await expect(page.get_by_test_id("tier-progress")).to_be_visible()
        await expect(page.get_by_test_id("devices")).to_be_visible()
        await expect(page.get_by_test_id("coupons")).to_be_visible()
        merge = page.get_by_test_id("merge")
        await merge.get_by_label("Дубликат: номер участника или номер карты").fill(twin.card)
        await merge.get_by_label("Причина").fill("одна и та же покупательница, два телефона")
        await merge.get_by_role("button", name="Запросить объединение").click()
        await expect(page.get_by_test_id("flash")).to_contain_text("#")
        await expect(page.get_by_test_id("waiting")).to_contain_text("Объединение участников")
        assert not csp, csp
        agent_state = await context.storage_state()
    finally:
        await context.close()

    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        await sign_in(page, boss)
        await page.goto("/office/approvals")
        row = page.locator('[data-testid^="approval-"]', has_text="member.merge")
        await row.get_by_test_id("approve").click()
        await expect(page.get_by_test_id("flash")).to_be_visible()
        await page.goto(page_of)
        await expect(page.get_by_test_id(f"card-{twin.card}")).to_be_visible()
        await expect(page.get_by_test_id("balance")).to_have_text("420")
        await expect(page.get_by_test_id("trail")).to_contain_text("member.merged")
        await screenshot(page, "office-member-merged")
        boss_state = await context.storage_state()
    finally:
        await context.close()
    assert await account_balance(twin.account_id) == (0, 0)

    found: dict[str, list[str]] = {}
    for viewport in (DESKTOP, TABLET):
        for state, paths in ((agent_state, [page_of, "/office/approvals"]), (boss_state, ["/office/staff"])):
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


async def test_an_admin_makes_a_colleague_who_signs_in_with_what_was_shown_once(chromium: Any, server: str) -> None:
    from playwright.async_api import expect

    boss = await make_staff("admin")
    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, boss)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Сотрудники").click()
        form = page.get_by_test_id("new-staff")
        email = f"new-{boss.email}"
        await form.get_by_label("E-mail").fill(email)
        await form.get_by_label("Имя").fill("Вера, колл-центр")
        await form.get_by_role("button", name="Создать").click()
        await expect(page.get_by_test_id("created-email")).to_have_text(email)
        password = await page.get_by_test_id("created-password").inner_text()
        secret = await page.get_by_test_id("created-secret").inner_text()
        assert not csp, csp
    finally:
        await context.close()
    assert password != PASSWORD and len(password) >= 12 and len(secret) >= 16
    colleague = StaffLogin(email=email, roles=["support"], secret=secret, password=password)
    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        await sign_in(page, colleague)
        await expect(page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Участники")).to_be_visible()
        assert pyotp.TOTP(secret).now().isdigit()
    finally:
        await context.close()


async def test_support_asks_to_erase_a_shopper_and_an_admin_approves_it(chromium: Any, server: str, shop: Shop) -> None:
    from playwright.async_api import expect

    member, surname, _ = await named_member(shop, points=250)
    agent, boss = await make_staff("support"), await make_staff("admin")
    page_of = f"/office/members/{member.membership_id}"
    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, agent)
        await page.goto(page_of)
        erase = page.get_by_test_id("erase")
        await erase.get_by_label("Причина").fill("просьба покупательницы по e-mail, обращение 881")
        await erase.get_by_role("button", name="Запросить удаление").click()  # the tick is required first
        await expect(page.get_by_test_id("waiting")).to_have_count(0)
        await erase.get_by_label("Покупатель просит удалить его данные; баллы сгорят").check()
        await erase.get_by_role("button", name="Запросить удаление").click()
        await expect(page.get_by_test_id("waiting")).to_contain_text("Удаление ждёт согласования")
        assert not csp, csp
    finally:
        await context.close()
    context = await office_context(chromium, server)
    try:
        page = await context.new_page()
        await sign_in(page, boss)
        await page.goto("/office/approvals")
        await page.locator('[data-testid^="approval-"]', has_text="member.erase").get_by_test_id("approve").click()
        await expect(page.get_by_test_id("flash")).to_be_visible()
        await page.goto(page_of)
        await expect(page.get_by_test_id("member-name")).not_to_contain_text(surname)
        await expect(page.get_by_test_id("balance")).to_have_text("0")
        await expect(page.get_by_test_id(f"card-{member.card}").get_by_test_id("card-status")).to_contain_text("blocked")
        await expect(page.get_by_test_id("trail")).to_contain_text("member.erased")
    finally:
        await context.close()
    assert await account_balance(member.account_id) == (0, 0)
