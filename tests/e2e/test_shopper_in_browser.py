"""A shopper in Chromium: signs in with a code from the development inbox, watches the balance change live
after a till sale, picks favourite categories, downloads the wallet pass, blocks and replaces the card, signs out.
Screenshots of the main pages (phone and desktop) go to build/screenshots/."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from personal_account.i18n import number
from tests.e2e.conftest import desktop_twin, screenshot
from tests.factories import basic_rules, make_shop, sale_body
from tests.fakes.pkpass_check import verify_pkpass
from tests.identity.shopper import code_sent_to, new_phone

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def i18n_number(value: int) -> str:
    return number(value, "ru")  # grouped with a no-break space: "1 078"


async def code_from_inbox(server: str, to: str) -> str:
    return await code_sent_to(to)  # the development gateway's messages, read from Valkey


async def till_sale(server: str, shop: Any, card: str, lines: list[tuple[str, float, int]]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server) as till:
        r = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, lines, card=card), headers=shop.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_shopper_story_in_the_browser(chromium: Any, phone: Any, server: str, db_pool: None) -> None:
    # every check waits for what it asserts (expect): on a loaded machine a page is not there the moment a click returns
    from playwright.async_api import expect

    # points are spendable at once in this program, so the big number moves when the till confirms
    shop = await make_shop(basic_rules(pending_days=0))
    page = await phone.new_page()
    # marks the page when the live stream's first message arrives: the server then listens for this account's
    # changes (an attribute, not a JS predicate: the site's CSP forbids the eval wait_for_function needs)
    await page.add_init_script(
        "addEventListener('htmx:sseMessage', () => document.documentElement.setAttribute('data-live', 'on'))")
    to = new_phone()

    # sign in with a code read from the development inbox
    await page.goto(f"/login?program={shop.program_code}")
    await screenshot(page, "login-phone")
    await page.get_by_label("Телефон или e-mail").fill(to)
    await page.get_by_role("button", name="Получить код").click()
    await page.wait_for_url(re.compile(r"/login/code"))
    await page.get_by_label("Код").fill(await code_from_inbox(server, to))
    await page.get_by_label("Ваше имя (для новой карты)").fill("Анна")
    await page.get_by_role("button", name="Продолжить").click()
    await page.wait_for_url(re.compile(r"/$"))
    await expect(page.get_by_role("heading", name="Здравствуйте, Анна!")).to_be_visible()
    balance = page.get_by_test_id("balance-active")
    await expect(balance).to_have_text("0")
    card = (await page.get_by_test_id("card-number").inner_text()).strip()
    qr = await page.locator("svg.qr").bounding_box()
    assert qr and qr["width"] >= 300  # large enough to scan from the phone screen at the till

    # a till sale of 35 940 ₽: the balance, the tier and the latest purchases change on the open page, without a reload
    await expect(page.get_by_test_id("tier")).to_have_text("Basic")
    await expect(page.get_by_text("Покупок пока нет.")).to_be_visible()
    await page.evaluate("window.__sameDocument = true")
    await expect(page.locator("html")).to_have_attribute("data-live", "on", timeout=10_000)
    sale = await till_sale(server, shop, card, [("cheese", 60, 59_900)])
    earned = sale["totals"]["accrued_points"]
    assert earned > 0
    await expect(balance).to_have_text(i18n_number(earned), timeout=10_000)
    await expect(page.get_by_test_id("tier")).to_have_text("Silver", timeout=10_000)
    recent = page.get_by_test_id("recent-purchases").locator(f"a[href='/purchases/{sale['sale_id']}']")
    await recent.wait_for(timeout=10_000)
    await expect(recent).to_contain_text("35\u00a0940")
    assert await page.evaluate("window.__sameDocument") is True
    await screenshot(page, "dashboard-phone")
    desktop = await desktop_twin(chromium, phone, server)
    wide = await desktop.new_page()
    await wide.goto("/")
    await screenshot(wide, "dashboard-desktop")

    # purchases and the receipt with its reasons
    await page.get_by_role("link", name="Покупки", exact=True).click()
    await page.wait_for_url(re.compile(r"/purchases$"))
    await screenshot(page, "purchases-phone")
    await page.locator("table.sales a").first.click()
    await page.wait_for_url(re.compile(r"/purchases/\d+$"))
    await expect(page.get_by_test_id("reasons")).to_be_visible()
    await screenshot(page, "receipt-phone")
    await wide.goto(page.url)
    await screenshot(wide, "receipt-desktop")

    # favourite categories
    await page.get_by_role("link", name="Любимые категории").click()
    await page.locator("input[name=category]").first.check()
    await page.get_by_role("button", name="Сохранить выбор").click()
    await page.get_by_text("Сохранено.").wait_for()
    await expect(page.locator("input[name=category]").first).to_be_checked()
    await screenshot(page, "favourites-phone")

    # download the Apple Wallet pass; it verifies like Wallet would check it
    await page.get_by_role("link", name="Моя карта").click()
    async with page.expect_download() as download_info:
        await page.get_by_test_id("apple-wallet").click()
    download = await download_info.value
    assert download.suggested_filename == f"{card}.pkpass"
    data = Path(await download.path()).read_bytes()
    verify_pkpass(data, Path(os.environ["KOPILKA_DATA_DIR"]) / "wallet-test-chain" / "root.pem")

    # block the lost card, then get a new one: the points stay
    await page.get_by_role("link", name="Карты").click()
    await page.get_by_test_id("block").click()
    await page.get_by_text("Карта заблокирована.").wait_for()
    await page.get_by_test_id("replace").first.click()
    await page.get_by_text("Выпущена новая карта:").wait_for()
    await screenshot(page, "cards-phone")
    await page.get_by_role("link", name="Моя карта").click()
    await page.wait_for_url(re.compile(r"/$"))
    await expect(page.get_by_test_id("card-number")).not_to_have_text(card)
    await expect(page.get_by_test_id("balance-active")).to_have_text(i18n_number(earned))

    # English, then sign out
    await page.get_by_role("link", name="EN").click()
    await expect(page.get_by_role("heading", name="Hello, Анна!")).to_be_visible()
    await screenshot(page, "dashboard-phone-en")
    await wide.goto("/profile")
    await screenshot(wide, "profile-desktop")
    await desktop.close()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r"/login\?bye=1"))
    await page.goto("/")
    assert "/login" in page.url
