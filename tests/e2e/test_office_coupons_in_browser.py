"""The marketer's coupon story in Chromium: Anna opens Coupons from the menu, creates a series of personal codes (a
shared kind without its promo code refused first, the message next to the field), generates 250 codes (a number
above the limit refused first, readably), and downloads them as CSV for Excel. axe-core with no violations at
1280 px and on a tablet, nothing scrolls sideways, no CSP violation."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from loyalty_core.coupons import series as coupon_series
from tests.e2e.conftest import DESKTOP, screenshot
from tests.e2e.helpers import axe_here, no_sideways_scroll
from tests.e2e.test_office_in_browser import TABLET, office_context, sign_in, watch_csp
from tests.factories import make_shop, unique
from tests.office.helpers import make_staff

pytestmark = pytest.mark.e2e


async def test_a_marketer_creates_a_series_generates_codes_and_downloads_them(chromium: Any, server: str,
                                                                             db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await make_shop()
    anna = await make_staff("marketer")
    code = unique("cheese")
    context = await office_context(chromium, server, accept_downloads=True)
    try:
        page = await context.new_page()
        csp = watch_csp(page)
        await sign_in(page, anna)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Купоны").click()
        await expect(page.locator("main h1")).to_contain_text("Купоны")
        await page.goto(f"/office/coupons/?program={shop.program_code}")
        await page.get_by_test_id("new-series").click()
        await page.get_by_label("Код", exact=True).fill(code)
        await page.get_by_label("Название серии").fill("Минус 10% на сыр")
        await page.get_by_label("Один общий промокод, который вводит любой покупатель").check()
        await page.get_by_test_id("save-series").click()
        await expect(page.get_by_test_id("error-promo_code")).to_be_visible()
        await page.get_by_label("Личные коды: уникальные, по одному на покупателя").check()
        await page.get_by_label("Действует до (последний день)").fill("2030-12-31")
        await page.get_by_test_id("save-series").click()
        await expect(page.get_by_test_id("flash")).to_have_text("Серия купонов сохранена")
        await expect(page.get_by_test_id("issued")).to_have_text("0")

        await page.get_by_label("Сколько кодов").fill("1000000")
        await page.get_by_test_id("generate").click()
        await expect(page.get_by_test_id("error-count")).to_contain_text("100 000")
        await page.get_by_label("Сколько кодов").fill("250")
        await page.get_by_test_id("generate").click()
        await expect(page.get_by_test_id("flash")).to_have_text("+250")
        await expect(page.get_by_test_id("issued")).to_have_text("250")
        await screenshot(page, "office-coupon-series")

        async with page.expect_download() as waiting:
            await page.get_by_test_id("export").click()
        download = await waiting.value
        assert download.suggested_filename == f"kopilka-coupons-{code}.csv"
        body = open(await download.path(), "rb").read()
        assert body.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
        assert rows[0][:2] == ["Код", "Статус"] and len(rows) == 251 and len({r[0] for r in rows[1:]}) == 250
        assert not csp, csp
        state = await context.storage_state()
    finally:
        await context.close()
    assert (await coupon_series.series(code)).codes == 250

    found: dict[str, list[str]] = {}
    for viewport in (DESKTOP, TABLET):
        context = await office_context(chromium, server, viewport, bypass_csp=True, storage_state=state)
        try:
            page = await context.new_page()
            for path in (f"/office/coupons/?program={shop.program_code}",
                         f"/office/coupons/new?program={shop.program_code}", f"/office/coupons/{code}"):
                await page.goto(path)
                await expect(page.locator("main h1")).to_be_visible()
                found.update(await axe_here(page, f"{viewport['width']} {path}"))
                await no_sideways_scroll(page)
            # the refused forms, with their messages next to the fields
            await page.goto(f"/office/coupons/new?program={shop.program_code}")
            await page.get_by_label("Код", exact=True).fill(code)
            await page.get_by_label("Название серии").fill("Ещё раз")
            await page.get_by_test_id("save-series").click()
            await expect(page.get_by_test_id("error-code")).to_be_visible()
            found.update(await axe_here(page, f"{viewport['width']} refused series"))
            await no_sideways_scroll(page)
            await page.goto(f"/office/coupons/{code}")
            await page.get_by_label("Сколько кодов").fill("100001")
            await page.get_by_test_id("generate").click()
            await expect(page.get_by_test_id("error-count")).to_be_visible()
            found.update(await axe_here(page, f"{viewport['width']} refused generate"))
            await no_sideways_scroll(page)
        finally:
            await context.close()
    assert not found, found
