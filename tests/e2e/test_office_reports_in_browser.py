"""A finance user in Chromium: signs in with password + TOTP, opens the points liability of her program, sees the
chart and the table beside it, and downloads the CSV for Excel. Every report page has no axe-core violation at
all (the program reports also with a tier or a store chosen, and a refused tier), no CSP message in the console,
and no sideways scroll at 1280 px and on a tablet."""

from __future__ import annotations

from typing import Any

import pytest

from loyalty_core.reports.refresh import refresh
from personal_account.i18n import number
from tests.e2e.conftest import DESKTOP, screenshot
from tests.e2e.helpers import axe_here, no_sideways_scroll, till_sale
from tests.e2e.test_office_in_browser import TABLET, office_context, sign_in, watch_csp
from tests.factories import Shop, make_member
from tests.office.helpers import make_staff

pytestmark = pytest.mark.e2e
REPORTS = ["liability", "movements", "breakage", "aging", "stores", "rules", "share", "members", "tiers", "coupons"]


async def test_finance_opens_the_liability_sees_chart_and_table_and_downloads_the_csv(chromium: Any, server: str,
                                                                                     shop: Shop) -> None:
    from playwright.async_api import expect

    member = await make_member(shop, points=2_000)
    sale = await till_sale(server, shop, member.card, [("cheese", 2, 59_900), ("milk", 1, 9_990)], redeem=300)
    await refresh()
    liability = 2_000 - 300 + sale["totals"]["accrued_points"]
    accountant = await make_staff("finance")

    context = await office_context(chromium, server, accept_downloads=True)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, accountant)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Финансовые отчёты").click()
        await page.get_by_role("link", name="Обязательства по баллам").click()
        await page.get_by_label("Программа").select_option(value=shop.program_code)
        await page.get_by_role("button", name="Показать").click()
        await expect(page.get_by_test_id("reconciled")).to_have_text("да")

        chart = page.get_by_test_id("chart").get_by_role("img")
        await expect(chart).to_be_visible()
        await expect(chart).to_have_attribute("alt", "График: Обязательства по баллам. Те же числа — в таблице ниже.")
        drawn = await chart.evaluate("img => img.complete && img.naturalWidth")
        assert drawn and drawn > 0, "the chart's SVG did not load"
        table = page.get_by_role("table", name="Обязательства по баллам")
        last = table.locator("tbody tr").last
        await expect(last.locator("td").nth(3)).to_have_text(number(liability, "ru"))
        await screenshot(page, "office-finance-liability")

        async with page.expect_download() as waiting:
            await page.get_by_test_id("csv").click()
        download = await waiting.value
        assert download.suggested_filename.startswith(f"kopilka-liability-{shop.program_code}-")
        body = open(await download.path(), "rb").read()
        assert body.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads Cyrillic right
        lines = body.decode("utf-8-sig").split("\r\n")
        assert lines[0] == "Период;Конец периода;Активные;Ожидают;Обязательства, баллы;Деньги, RUB"
        assert lines[-2].split(";")[4] == str(liability)
        assert lines[-2].split(";")[5] == f"{liability},00"  # 1 point = 1.00 RUB, a decimal comma
        assert not csp, csp
        state = await context.storage_state()
    finally:
        await context.close()

    found: dict[str, list[str]] = {}
    for viewport in (DESKTOP, TABLET):
        context = await office_context(chromium, server, viewport, bypass_csp=True, storage_state=state)
        try:
            page = await context.new_page()
            for path in ["/office/reports/", *(f"/office/reports/{n}?program={shop.program_code}" for n in REPORTS),
                         "/office/reports/movements?since=2026-13-01",
                         f"/office/reports/members?program={shop.program_code}&tier=silver&grain=month",
                         f"/office/reports/rules?program={shop.program_code}&store={shop.store_id}",
                         f"/office/reports/tiers?program={shop.program_code}&tier=platinum"]:
                await page.goto(path)
                await expect(page.locator("main h1")).to_be_visible()
                found.update(await axe_here(page, f"{viewport['width']} {path}"))
                await no_sideways_scroll(page)
                if viewport == TABLET and "program=" in path and "&" not in path:
                    await screenshot(page, "office-finance-" + path.split("/")[3].split("?")[0] + "-tablet")
        finally:
            await context.close()
    assert not found, found
