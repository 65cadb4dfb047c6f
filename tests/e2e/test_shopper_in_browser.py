"""A shopper in Chromium, on a phone in Russian and on a desktop in English (issue 16): sign-in by code with its
errors and countdown, the welcome page of a new shopper, the first screen (the rotating QR beside the balance, the
tab bar at the bottom), a till sale reaching the open page, the receipt line by line with a return, offers as cards
with names in the page's language, favourites locked for the month, blocking a card after a confirmation, the delete
page, a session ended elsewhere, the wallet pass, the language following the shopper to another browser, 320 px,
and axe-core with no violations on every page. Screenshots go to build/screenshots/ (docs/screenshots/ shows them).

Every check waits for what it asserts (expect): on a loaded machine a page is not there the moment a click returns."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from personal_account.i18n import number
from tests.e2e.conftest import DESKTOP, desktop_twin, screenshot
from tests.e2e.helpers import (
    SMALL,
    axe_here,
    axe_violations,
    no_sideways_scroll,
    program_with_promotions,
    sign_in,
    till_return,
    till_sale,
)
from tests.fakes.pkpass_check import verify_pkpass
from tests.identity.shopper import code_sent_to, new_phone

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
NBSP = "\u00a0"


async def test_a_shopper_on_a_phone_in_russian(chromium: Any, phone: Any, server: str, db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await program_with_promotions()
    page = await phone.new_page()
    # marks the page when the live stream's first message arrives (an attribute: the CSP forbids the eval that
    # wait_for_function needs)
    await page.add_init_script(
        "addEventListener('htmx:sseMessage', () => document.documentElement.setAttribute('data-live', 'on'))")
    to = new_phone()

    # --- sign in: the phone formatted, a countdown to "send a new code", attempts left after a wrong code
    await page.goto(f"/login?program={shop.program_code}")
    await screenshot(page, "login-phone")
    await page.get_by_label("Телефон или e-mail").fill(to)
    await page.get_by_role("button", name="Получить код").click()
    shown = f"+7{NBSP}{to[2:5]}{NBSP}{to[5:8]}-{to[8:10]}-{to[10:]}"
    await expect(page.get_by_test_id("code-sent-to")).to_have_text(shown)
    await expect(page.get_by_test_id("resend")).to_be_disabled()
    await expect(page.get_by_test_id("resend-countdown")).to_contain_text("Новый код можно запросить через")
    assert not await page.get_by_label("Ваше имя").count()  # name and consents only after the code, for a new shopper
    code = await code_sent_to(to)
    assert code in (await _sms(to)) and (await _sms(to)).startswith("Копилка: ваш код")
    await page.get_by_label("Код", exact=True).fill("000000" if code != "000000" else "111111")
    await page.get_by_role("button", name="Продолжить").click()
    await expect(page.get_by_test_id("code-error")).to_have_text("Неверный код. Осталось попыток: 4")
    await screenshot(page, "code-phone", full_page=False)
    await page.get_by_label("Код", exact=True).fill(code)
    await page.get_by_role("button", name="Продолжить").click()
    await page.wait_for_url(re.compile(r"/welcome$"))
    await page.get_by_label("Ваше имя").fill("Анна")
    await page.get_by_label("SMS").check()
    await page.get_by_role("button", name="Продолжить").click()
    await page.wait_for_url(re.compile(r"/$"))
    await expect(page.get_by_role("heading", name="Здравствуйте, Анна!")).to_be_visible()
    await expect(page.get_by_test_id("flash")).to_have_text("Добро пожаловать в Копилку!")

    # --- the first screen: the card's QR beside the balance (the welcome bonus), the tab bar at the bottom
    balance = page.get_by_test_id("balance-active")
    await expect(balance).to_have_text("500")
    await expect(page.locator(".card-balance .unit")).to_have_text("баллов")
    qr, points = await page.get_by_test_id("card-qr").bounding_box(), await balance.bounding_box()
    assert qr and points and points["x"] > qr["x"] + qr["width"] / 2 and points["y"] < qr["y"] + qr["height"], (qr, points)
    assert qr["width"] >= 160  # still large enough to scan at the till (a 33x33 token QR: 5 px a module)
    await expect(page.get_by_test_id("card-qr")).to_have_attribute("hx-trigger", "every 25s, kprefresh")  # before the 30 s token expires
    tabs = page.get_by_role("navigation", name="Главное меню")
    await expect(tabs.get_by_role("link")).to_have_text(["Карта", "Покупки", "Акции", "Профиль"])
    bar = await tabs.bounding_box()
    assert bar and abs(bar["y"] + bar["height"] - 844) <= 1 and bar["width"] == 390, bar
    await expect(page.get_by_test_id("friends-joined")).to_have_text(f"0{NBSP}друзей присоединились")
    await expect(page.get_by_test_id("expiring")).to_have_count(0)  # nothing burns within 60 days
    card = (await page.get_by_test_id("card-number").inner_text()).strip()

    # --- a till sale reaches the open page; near the next tier a banner says how much is left
    await page.evaluate("window.__sameDocument = true")
    await expect(page.locator("html")).to_have_attribute("data-live", "on", timeout=10_000)
    sale = await till_sale(server, shop, card, [("cheese", 40, 59_900), ("wine", 1, 99_900)], redeem=100)
    earned = sale["totals"]["accrued_points"]
    await expect(balance).to_have_text(number(500 - 100 + earned, "ru"), timeout=10_000)
    await expect(page.get_by_test_id("tier-banner")).to_contain_text("до уровня «Серебряный»", timeout=10_000)
    await expect(page.get_by_test_id("tier")).to_have_text("Базовый")
    assert await page.evaluate("window.__sameDocument") is True
    await screenshot(page, "dashboard-phone", full_page=False)
    desktop = await desktop_twin(chromium, phone, server)
    wide = await desktop.new_page()
    await wide.goto("/")
    await screenshot(wide, "dashboard-desktop")

    # --- the receipt line by line, after one cheese went back
    await till_return(server, shop, sale["sale_id"], 1, 1)
    await tabs.get_by_role("link", name="Покупки").click()
    await page.wait_for_url(re.compile(r"/purchases$"))
    await page.locator(f"a[href='/purchases/{sale['sale_id']}']").click()
    await page.wait_for_url(re.compile(r"/purchases/\d+$"))
    cheese, wine = page.get_by_test_id("line-1"), page.get_by_test_id("line-2")
    await expect(cheese.get_by_test_id("line-points-paid")).to_contain_text("Оплачено баллами:")
    await expect(cheese.get_by_test_id("line-earned")).to_contain_text("балл")
    await expect(cheese.get_by_test_id("line-returned")).to_contain_text("Возвращено 1")
    await expect(wine.get_by_test_id("line-no-points")).to_contain_text("не участвует в программе")
    await expect(page.get_by_test_id("total-returned")).to_contain_text("−")
    await expect(page.get_by_test_id("total-clawed")).to_be_visible()
    await expect(page.get_by_test_id("why-total")).to_have_text(re.compile(rf"^{number(earned, 'ru')}{NBSP}балл"))
    lines_sum = sum(int(re.sub(r"\D", "", t)) for t in await page.get_by_test_id("line-earned").all_inner_texts())
    assert lines_sum == earned  # the explanation adds up from the lines
    await screenshot(page, "receipt-phone", full_page=False)
    receipt_url = page.url
    await wide.goto(receipt_url)
    await screenshot(wide, "receipt-desktop")

    # --- offers as cards, names in Russian; favourites warn about the month's lock and keep the ticks on an error
    await tabs.get_by_role("link", name="Акции").click()
    await expect(page.get_by_test_id("offer-own-brand")).to_contain_text("Собственная марка")
    await expect(page.get_by_test_id("offer-own-brand")).to_contain_text("+2% баллами за товары своей марки")
    await expect(page.get_by_test_id("offer-winter")).to_contain_text("до ")
    await screenshot(page, "offers-phone", full_page=False)
    await page.get_by_test_id("to-favourites").click()
    await expect(page.get_by_test_id("lock-warning")).to_contain_text("После сохранения выбор нельзя будет изменить до")
    await page.locator("input[name=category]").first.check()
    await page.get_by_role("button", name="Сохранить выбор").click()
    await expect(page.get_by_test_id("flash")).to_have_text("Сохранено.")
    await expect(page.locator("input[name=category]").first).to_be_checked()
    await screenshot(page, "favourites-phone", full_page=False)

    # --- the wallet pass verifies like Wallet checks it
    await tabs.get_by_role("link", name="Карта").click()
    async with page.expect_download() as download_info:
        await page.get_by_test_id("apple-wallet").click()
    download = await download_info.value
    assert download.suggested_filename == f"{card}.pkpass"
    verify_pkpass(Path(await download.path()).read_bytes(), Path(os.environ["KOPILKA_DATA_DIR"]) / "wallet-test-chain" / "root.pem")

    # --- profile: cards (block after a confirmation with a reason), the delete page's points at stake
    await tabs.get_by_role("link", name="Профиль").click()
    await page.get_by_test_id("to-cards").click()
    await page.get_by_test_id("block").click()
    await expect(page.get_by_role("heading", name=re.compile("Заблокировать карту"))).to_be_visible()
    await screenshot(page, "block-phone", full_page=False)
    await page.get_by_label("Украдена").check()
    await page.get_by_test_id("confirm-block").click()
    await expect(page.get_by_test_id("flash")).to_have_text("Карта заблокирована.")
    await expect(page.get_by_test_id("card-blocked")).to_contain_text("украдена")
    await page.get_by_test_id("replace").first.click()
    await expect(page.get_by_test_id("flash")).to_contain_text("Выпущена новая карта:")
    await screenshot(page, "cards-phone")
    await page.goto("/cards/bind")  # a form's URL opened directly: the page with the form, not a 405
    await expect(page.get_by_role("heading", name="Ваши карты")).to_be_visible()
    await page.goto("/")
    await expect(page.get_by_test_id("card-number")).not_to_have_text(card)
    left = (await balance.inner_text()).strip()
    await page.goto("/account/delete")
    await expect(page.get_by_test_id("points-lost")).to_contain_text(f"Вы потеряете {left}{NBSP}балл")
    await page.goto("/")

    # --- every page has no axe-core violation (a context of its own that lets axe's script in)
    signed_in = ["/", "/purchases", receipt_url, "/history", "/offers", "/favourites", "/profile", "/cards",
                 f"/cards/{(await page.get_by_test_id('card-number').inner_text()).strip()}/block", "/account/delete",
                 "/no-such-page"]
    found = await axe_violations(chromium, server, signed_in, state=await phone.storage_state())
    assert found == {}, found

    # --- a sign-out in another tab: the open dashboard says the session ended
    await expect(page.locator("html")).to_have_attribute("data-live", "on", timeout=10_000)
    other = await phone.new_page()
    await other.goto("/profile")
    await other.get_by_test_id("sign-out").click()
    await other.wait_for_url(re.compile(r"/login\?bye=1"))
    await expect(page.get_by_test_id("session-ended")).to_be_visible(timeout=10_000)
    await screenshot(page, "session-ended-phone", full_page=False)
    await desktop.close()


async def _sms(to: str) -> str:
    import valkey.asyncio as valkey_asyncio

    from loyalty_core.shopper_auth.otp import read_inbox

    client = valkey_asyncio.from_url(os.environ["KOPILKA_VALKEY_URL"])
    try:
        return (await read_inbox(client, to, limit=1))[0].text
    finally:
        await client.aclose()


async def test_a_shopper_on_a_desktop_in_english_and_the_language_follows_them(chromium: Any, server: str,
                                                                              db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await program_with_promotions()
    first = await chromium.new_context(base_url=server, viewport=DESKTOP, locale="en-GB")
    page = await first.new_page()
    await page.goto("/lang/en?next=/login")
    to = await sign_in(page, shop, lang="en", name="Ann")
    assert (await _sms(to)).startswith("Kopilka: your code")  # the code's SMS in the page's language
    await expect(page.get_by_test_id("flash")).to_have_text("Welcome to Kopilka!")
    tabs = page.get_by_role("navigation", name="Main menu")
    await expect(tabs.get_by_role("link")).to_have_text(["Card", "Purchases", "Offers", "Profile"])
    bar = await tabs.bounding_box()
    assert bar and bar["y"] < 100  # in the header on a desktop
    await expect(page.get_by_test_id("balance-active")).to_have_text("500")
    card = (await page.get_by_test_id("card-number").inner_text()).strip()
    sale = await till_sale(server, shop, card, [("cheese", 1, 59_900), ("wine", 1, 99_900)])
    await page.goto(f"/purchases/{sale['sale_id']}")
    await expect(page.get_by_test_id("line-2").get_by_test_id("line-no-points")).to_contain_text(
        "Alcohol is not part of the programme")
    await expect(page.get_by_role("heading", name="How the points add up")).to_be_visible()
    await expect(page.get_by_test_id("reasons")).to_contain_text("Own brand")
    await screenshot(page, "receipt-desktop-en")
    await page.goto("/history")  # the award the engine wrote in the program's language (Russian), read in English
    await expect(page.get_by_test_id("reason").last).to_have_text("Welcome bonus: 500 points")
    await page.goto("/offers")
    await expect(page.get_by_test_id("offer-own-brand")).to_contain_text("+2% in points on own-brand goods")
    await expect(page.get_by_test_id("offer-winter")).to_contain_text("Winter points")
    await screenshot(page, "offers-desktop-en")
    await page.goto("/profile")
    await expect(page.locator("#locale")).to_have_value("en")
    today = dt.datetime.now(ZoneInfo("Europe/Moscow")).date()  # the program's time zone
    await page.locator("#birth").fill(today.replace(year=1992).isoformat())  # 1992: a leap year, 29 February too
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_test_id("flash")).to_have_text("Saved.")
    await page.goto("/")
    await expect(page.get_by_test_id("birthday-banner")).to_contain_text("Happy birthday!")
    await expect(page.get_by_test_id("birthday-banner")).to_contain_text("Birthday ×10: Points ×10")
    await screenshot(page, "dashboard-desktop-en")
    await page.goto("/profile")
    await screenshot(page, "profile-desktop-en")
    found = await axe_violations(chromium, server, ["/", "/purchases", f"/purchases/{sale['sale_id']}", "/history",
                                                    "/offers", "/favourites", "/profile", "/cards", "/account/delete"],
                                 state=await first.storage_state(), viewport=DESKTOP)
    assert found == {}, found

    # the same shopper on another browser (Russian by default) gets English after signing in
    second = await chromium.new_context(base_url=server, viewport=DESKTOP, locale="ru-RU")
    other = await second.new_page()
    await sign_in(other, shop, lang="ru", to=to)
    await expect(other.get_by_role("heading", name="Hello, Ann!")).to_be_visible()
    await expect(other.get_by_test_id("flash")).to_have_text("Welcome back, Ann!")
    # the switch sets the profile: Russian now follows them back to the first browser
    await other.get_by_role("link", name="RU").click()
    await expect(other.get_by_role("heading", name="Здравствуйте, Ann!")).to_be_visible()
    await page.goto("/profile")
    await expect(page.locator("#locale")).to_have_value("ru")
    await second.close()
    await first.close()


async def test_on_a_320_px_phone_nothing_is_cut(chromium: Any, server: str, db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await program_with_promotions(expiry_days=30)  # the welcome bonus burns within 60 days
    context = await chromium.new_context(base_url=server, viewport=SMALL, device_scale_factor=2, locale="ru-RU",
                                         is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.goto("/login")
    await no_sideways_scroll(page)
    await sign_in(page, shop, name="Константин")
    await expect(page.get_by_test_id("expiring")).to_contain_text(f"500{NBSP}баллов сгорят")
    card = (await page.get_by_test_id("card-number").inner_text()).strip()
    sale = await till_sale(server, shop, card, [("cheese", 3, 59_900), ("wine", 1, 99_900), ("milk", 12, 9_990)], redeem=200)
    for path in ("/", "/purchases", f"/purchases/{sale['sale_id']}", "/offers", "/profile", "/cards", "/history",
                 "/favourites", f"/cards/{card}/block", "/account/delete"):
        await page.goto(path)
        await expect(page.get_by_role("navigation", name="Главное меню")).to_be_visible()
        await no_sideways_scroll(page)
    await page.goto(f"/purchases/{sale['sale_id']}")
    await expect(page.get_by_test_id("line-1").get_by_test_id("line-earned")).to_be_in_viewport()
    await screenshot(page, "receipt-320")
    await page.goto("/cards")
    block = page.get_by_test_id("block")
    box = await block.bounding_box()
    assert box and box["x"] + box["width"] <= 320
    await screenshot(page, "cards-320")
    await page.goto("/")
    await screenshot(page, "dashboard-320", full_page=False)
    found = await axe_violations(chromium, server, ["/", f"/purchases/{sale['sale_id']}", "/cards"],
                                 state=await context.storage_state(), viewport=SMALL)
    assert found == {}, found
    await context.close()


async def test_the_invite_link_and_the_pages_before_sign_in(chromium: Any, phone: Any, server: str, db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await program_with_promotions()
    page = await phone.new_page()
    await sign_in(page, shop, name="Ольга Петрова")
    code = (await page.get_by_test_id("referral-code").inner_text()).strip()
    link = await page.locator("#ref-link").input_value()
    assert link.endswith(f"/invite/{code}")
    friend = await chromium.new_context(base_url=server, viewport={"width": 390, "height": 844}, locale="ru-RU")
    invited = await friend.new_page()
    await invited.goto(f"/invite/{code}")
    await expect(invited.get_by_role("heading", name="Ольга приглашает вас в Копилку")).to_be_visible()
    await expect(invited.get_by_test_id("invite-you")).to_contain_text("500")
    await expect(invited.get_by_test_id("invite-friend")).to_contain_text("200")
    await screenshot(invited, "invite-phone")
    await invited.get_by_test_id("join").click()
    await sign_in(invited, shop, ref=code)
    await page.reload()
    await expect(page.get_by_test_id("friends-joined")).to_have_text(f"1{NBSP}друг присоединился")
    await friend.close()

    # the pages before sign-in, and the Add to Home Screen manifest and icons
    anonymous = await chromium.new_context(base_url=server, viewport={"width": 390, "height": 844}, bypass_csp=True)
    try:
        visitor = await anonymous.new_page()
        found: dict[str, list[str]] = {}
        for path in (f"/invite/{code}", "/invite/NOSUCHCODE", "/login", "/login?bye=1"):
            await visitor.goto(path)
            found.update(await axe_here(visitor, path))
        to = new_phone()
        await visitor.goto(f"/login?program={shop.program_code}")
        await visitor.get_by_label("Телефон или e-mail").fill(to)
        await visitor.get_by_role("button", name="Получить код").click()
        await expect(visitor.get_by_test_id("code-sent-to")).to_be_visible()
        found.update(await axe_here(visitor, "/login/code"))
        await visitor.get_by_label("Код", exact=True).fill(await code_sent_to(to))
        await visitor.get_by_role("button", name="Продолжить").click()
        await visitor.wait_for_url(re.compile(r"/welcome$"))
        found.update(await axe_here(visitor, "/welcome"))
        assert found == {}, found
        manifest = await visitor.request.get("/manifest.webmanifest")
        assert manifest.ok and manifest.headers["content-type"].startswith("application/manifest+json")
        body = await manifest.json()
        assert body["display"] == "standalone" and body["start_url"] == "/"
        for icon in body["icons"]:
            got = await visitor.request.get(icon["src"])
            assert got.ok and got.headers["content-type"] == "image/png", icon
        await expect(visitor.locator("link[rel=manifest]")).to_have_attribute("href", "/manifest.webmanifest")
    finally:
        await anonymous.close()


# English words of the interface that must not show on a Russian page (catalogue data such as "Cheese" may)
ENGLISH_UI = re.compile(r"\b(points?|Why|Validation|friends?|joined|Own brand|Happy|expire|until|Welcome|Saved|Error|"
                        r"Balance|Pending|Tier|Receipt|Total|Discount|Earned|Returned|Offers?|Profile|Card|Sign)\b")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


async def test_every_page_in_both_languages_on_a_phone_and_a_desktop(chromium: Any, server: str, db_pool: None) -> None:
    """No word of the other language on any page, the tabs where a thumb or an eye expects them, nothing scrolling
    sideways, and axe-core with no violations: Russian and English, 390 px and 1280 px."""
    from playwright.async_api import expect

    from tests.e2e.conftest import PHONE

    shop = await program_with_promotions()
    context = await chromium.new_context(base_url=server, viewport=PHONE, locale="ru-RU")
    page = await context.new_page()
    await sign_in(page, shop, name="Ann")
    card = (await page.get_by_test_id("card-number").inner_text()).strip()
    sale = await till_sale(server, shop, card, [("cheese", 2, 59_900), ("wine", 1, 99_900), ("milk", 1, 9_990)], redeem=50)
    await till_return(server, shop, sale["sale_id"], 1, 1)
    state = await context.storage_state()
    await context.close()
    paths = ["/", "/purchases", f"/purchases/{sale['sale_id']}", "/history", "/offers", "/favourites", "/profile",
             "/cards", f"/cards/{card}/block", "/account/delete", "/no-such-page"]
    found: dict[str, list[str]] = {}
    for viewport, lang in ((PHONE, "en"), (DESKTOP, "ru"), (PHONE, "ru"), (DESKTOP, "en")):
        # bypass_csp: axe-core is an injected script; these pages run under the CSP in the other stories
        browser = await chromium.new_context(base_url=server, viewport=viewport, storage_state=state, bypass_csp=True)
        try:
            tab = await browser.new_page()
            await tab.goto(f"/lang/{lang}?next=/")
            for path in paths:
                await tab.goto(path)
                await expect(tab.locator("main h1").first).to_be_visible()
                text = await tab.locator("main").inner_text()
                # every page, the 404 too: a signed-in shopper always has the tabs to get back
                tabs = tab.get_by_role("navigation", name="Main menu" if lang == "en" else "Главное меню")
                await expect(tabs).to_be_visible()
                box = await tabs.bounding_box()
                assert box is not None
                if viewport is PHONE:
                    assert abs(box["y"] + box["height"] - viewport["height"]) <= 1, (path, box)
                else:
                    assert box["y"] < 100, (path, box)
                text += "\n" + await tabs.inner_text()
                if lang == "en":
                    # a language's own name stays itself in the language picker
                    leaks = [line for line in text.splitlines() if CYRILLIC.search(line.replace("Русский", ""))]
                    assert not leaks, (path, leaks)
                else:
                    leaks = [line for line in text.splitlines() if ENGLISH_UI.search(line)]
                    assert not leaks, (path, leaks)
                await no_sideways_scroll(tab)
                if (viewport is PHONE) == (lang == "en"):  # the other two pairings run axe in the stories above
                    found.update(await axe_here(tab, f"{lang} {viewport['width']} {path}"))
        finally:
            await browser.close()
    assert found == {}, found
