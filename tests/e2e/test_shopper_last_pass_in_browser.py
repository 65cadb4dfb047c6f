"""What issue 16 still lacked, in Chromium on a phone (390 px) and a desktop (1280 px), in Russian and English:
a session ended on another device reaching the open dashboard within a second or two (two browser contexts),
the tier-up banner after a till sale and the tier-at-risk hint, operator reasons as the reason's text plus the
operator's note quoted, catalogue names in the page's language, and the 404/500/503 pages. axe-core runs on every
page these touch.

Every check waits for what it asserts (expect); nothing sleeps."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.e2e.conftest import DESKTOP, PHONE, screenshot
from tests.e2e.helpers import axe_here, program_with_promotions, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
LIVE_ON = "addEventListener('htmx:sseMessage', () => document.documentElement.setAttribute('data-live', 'on'))"
PROMPT = 3.0  # seconds: "within a second or two", with room for a loaded machine


async def _context(chromium: Any, server: str, viewport: dict[str, int], lang: str, **extra: Any) -> Any:
    context = await chromium.new_context(base_url=server, viewport=viewport, locale="ru-RU" if lang == "ru" else "en-GB",
                                         **extra)
    await context.add_init_script(LIVE_ON)
    if lang == "en":
        page = await context.new_page()
        await page.goto("/lang/en?next=/login")
        await page.close()
    return context


async def _live_dashboard(page: Any) -> None:
    from playwright.async_api import expect

    await page.goto("/")
    await expect(page.locator("html")).to_have_attribute("data-live", "on", timeout=10_000)


async def test_a_session_ended_on_another_device_shows_on_the_open_dashboard_at_once(chromium: Any, server: str,
                                                                                     db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await program_with_promotions()
    # a phone in Russian keeps the card open; the same shopper on a desktop in English signs out on every device
    phone = await _context(chromium, server, PHONE, "ru", is_mobile=True, has_touch=True)
    # bypass_csp on the desktop only, so axe-core can check the notice there; the phone runs under the CSP
    desktop = await _context(chromium, server, DESKTOP, "en", bypass_csp=True)
    try:
        card = await phone.new_page()
        to = await sign_in(card, shop, name="Анна")
        await _live_dashboard(card)
        other = await desktop.new_page()
        await sign_in(other, shop, lang="en", to=to)
        await other.goto("/lang/en?next=/profile")  # the language follows the profile (Russian): English here
        await other.get_by_test_id("sign-out-everywhere").click()
        await other.wait_for_url(re.compile(r"/login\?bye=1$"))
        started = time.monotonic()
        notice = card.get_by_test_id("session-ended")
        await expect(notice).to_have_text(re.compile("^Сеанс завершён"), timeout=10_000)
        took = time.monotonic() - started
        print(f"\nsession ended: the notice {took:.2f} s after 'sign out on every device'")
        assert took < PROMPT, f"the notice came {took:.1f} s after the sign-out"
        await expect(notice.get_by_role("link", name="Войти снова")).to_have_attribute("href", "/login")
        await screenshot(card, "session-ended-elsewhere-phone", full_page=False)

        # the other way round: a desktop in English keeps the card open; the account is deleted from the phone
        await sign_in(card, shop, to=to)  # every device was signed out, this phone too
        await sign_in(other, shop, lang="en", to=to)  # the profile says English now: both pages follow it
        await _live_dashboard(other)
        await card.goto("/lang/ru?next=/account/delete")
        await card.get_by_label("Введите УДАЛИТЬ для подтверждения").fill("УДАЛИТЬ")
        await card.get_by_role("button", name="Удалить навсегда").click()
        await card.wait_for_url(re.compile(r"/login\?deleted=1$"))
        started = time.monotonic()
        notice = other.get_by_test_id("session-ended")
        await expect(notice).to_have_text(re.compile("^Your session has ended"), timeout=10_000)
        took = time.monotonic() - started
        print(f"session ended: the notice {took:.2f} s after the account's deletion on another device")
        assert took < PROMPT, f"the notice came {took:.1f} s after the deletion"
        found = await axe_here(other, "session ended, en desktop")
        assert found == {}, found
    finally:
        await phone.close()
        await desktop.close()


async def test_the_tier_up_banner_after_a_till_sale_and_the_tier_at_risk_hint(chromium: Any, server: str,
                                                                             db_pool: None) -> None:
    import datetime as dt

    from playwright.async_api import expect

    from loyalty_core.members import tiers
    from loyalty_core.tables import Membership
    from personal_account.i18n import date as format_date
    from personal_account.i18n import money
    from tests.e2e.helpers import till_sale

    shop = await program_with_promotions()
    phone = await _context(chromium, server, PHONE, "ru", is_mobile=True, has_touch=True)
    try:
        page = await phone.new_page()
        await sign_in(page, shop, name="Анна")
        await _live_dashboard(page)
        await expect(page.get_by_test_id("tier-up-banner")).to_have_count(0)  # the first tier is no news
        card = (await page.get_by_test_id("card-number").inner_text()).strip()
        # a sale over the Silver threshold (30 000 ₽) reaches the open page: the tier and the banner, live
        await till_sale(server, shop, card, [("cheese", 60, 59_900)])
        banner = page.get_by_test_id("tier-up-banner")
        await expect(banner).to_contain_text("Вы перешли на уровень «Серебряный»", timeout=10_000)
        await expect(page.get_by_test_id("tier")).to_have_text("Серебряный")
        await expect(page.get_by_test_id("tier-at-risk")).to_have_count(0)  # all the spend is this year's
        await banner.scroll_into_view_if_needed()
        await screenshot(page, "tier-up-phone", full_page=False)

        # the same shopper on a desktop in English sees it too, until it is dismissed (on every device)
        desktop = await _context(chromium, server, DESKTOP, "en", storage_state=await phone.storage_state())
        wide = await desktop.new_page()
        await wide.goto("/lang/en?next=/")
        await expect(wide.get_by_test_id("tier-up-banner")).to_contain_text("You reached Silver")
        await wide.get_by_test_id("dismiss-tier-up").click()
        await expect(wide.get_by_test_id("tier")).to_have_text("Silver")
        await expect(wide.get_by_test_id("tier-up-banner")).to_have_count(0)
        await page.reload()
        await expect(page.get_by_test_id("tier")).to_have_text("Серебряный")
        await expect(page.get_by_test_id("tier-up-banner")).to_have_count(0)

        # Gold next, on the English desktop, live; its banner is a new one
        await _live_dashboard(wide)
        await till_sale(server, shop, card, [("cheese", 120, 59_900)])
        await expect(wide.get_by_test_id("tier-up-banner")).to_contain_text("You reached Gold", timeout=10_000)
        await screenshot(wide, "tier-up-desktop-en", full_page=False)
        await desktop.close()
    finally:
        await phone.close()

    # a shopper kept in Gold by a legacy spend that stops counting in 10 days: the hint says what keeps the tier
    phone = await _context(chromium, server, PHONE, "ru", is_mobile=True, has_touch=True)
    try:
        page = await phone.new_page()
        await sign_in(page, shop, name="Олег")
        membership = await Membership.select(Membership.id, Membership.customer).order_by(
            Membership.id, ascending=False).first()
        now = dt.datetime.now(dt.UTC)
        await Membership.update({Membership.carried_spend: 12_000_000,
                                 Membership.carried_until: now + dt.timedelta(days=10)}).where(
            Membership.id == membership["id"])
        await tiers.recompute_tier(membership["id"], shop.program_id, now, customer_id=membership["customer"])
        await page.goto("/")
        await expect(page.get_by_test_id("tier")).to_have_text("Золотой")
        # the carry ends in 10 days: that is the date to buy by, not the 30 days the hint looks ahead
        by = (now + dt.timedelta(days=10)).astimezone(dt.timezone(dt.timedelta(hours=3))).date()
        hint = page.get_by_test_id("tier-at-risk")
        await expect(hint).to_contain_text(f"Чтобы сохранить уровень «Золотой», купите ещё на {money(10_000_000, 'ru')}")
        await expect(hint).to_contain_text(f"до {format_date(by, 'ru')}")
        await hint.scroll_into_view_if_needed()
        await screenshot(page, "tier-at-risk-phone", full_page=False)
        await page.goto("/lang/en?next=/")
        await expect(page.get_by_test_id("tier-at-risk")).to_contain_text(
            f"Spend {money(10_000_000, 'en')} more by")
        await expect(page.get_by_test_id("tier-at-risk")).to_contain_text(f"by {format_date(by, 'en')} to keep Gold")
        state = await phone.storage_state()
    finally:
        await phone.close()
    found: dict[str, list[str]] = {}
    for viewport, lang in ((PHONE, "ru"), (DESKTOP, "en")):
        axe = await chromium.new_context(base_url=server, viewport=viewport, bypass_csp=True, storage_state=state)
        try:
            tab = await axe.new_page()
            await tab.goto(f"/lang/{lang}?next=/")
            await expect(tab.get_by_test_id("tier-at-risk")).to_be_visible()
            found.update(await axe_here(tab, f"{lang} {viewport['width']} /"))
        finally:
            await axe.close()
    assert found == {}, found


async def test_operator_reasons_read_in_the_shoppers_language_with_the_note_quoted(chromium: Any, server: str,
                                                                                   db_pool: None) -> None:
    """Support adjusts points and blocks a card with a reason from the office's list and a note typed in whatever
    language the operator writes: the shopper reads the reason in the page's language and the note as a quote."""
    import datetime as dt

    from playwright.async_api import expect

    from loyalty_core.adjustments.adjustments import AdjustmentIn, adjust_points
    from loyalty_core.members import cards as members_cards
    from loyalty_core.members.profile import member_of
    from loyalty_core.office import reasons
    from loyalty_core.tables import Membership

    shop = await program_with_promotions()
    phone = await _context(chromium, server, PHONE, "ru", is_mobile=True, has_touch=True)
    try:
        page = await phone.new_page()
        await sign_in(page, shop, name="Анна")
        card = (await page.get_by_test_id("card-number").inner_text()).strip()
        row = await Membership.select(Membership.id, Membership.customer).order_by(Membership.id, ascending=False).first()
        now = dt.datetime.now(dt.UTC)
        goodwill = reasons.compose("Goodwill", "Sorry for the queue at the till", reasons.ADJUST_REASONS)
        await adjust_points(row["id"], AdjustmentIn(points=150, reason=goodwill), now, operator="support-1")
        # free text from the admin API, in Russian: all of it is the operator's note
        await adjust_points(row["id"], AdjustmentIn(points=-20, reason="Списание ошибочного начисления"), now,
                            operator="support-2")
        member = await member_of(row["customer"], shop.program_code)
        await members_cards.block_card(member, card, members_cards.CardBlock(
            reason=reasons.compose("Other", "Карта найдена у другого человека", reasons.CARD_REASONS)))

        await page.goto("/history")
        shown = page.get_by_test_id("reason")
        await expect(shown.nth(0)).to_contain_text("Корректировка службой поддержки")
        await expect(shown.nth(0).get_by_test_id("operator-note")).to_have_text(
            "Комментарий службы поддержки: Списание ошибочного начисления")
        await expect(shown.nth(1)).to_contain_text("Подарок от службы поддержки")
        note = shown.nth(1).get_by_test_id("operator-note")
        await expect(note).to_have_text("Комментарий службы поддержки: Sorry for the queue at the till")
        await expect(note.locator("q")).to_have_attribute("lang", "en")  # a screen reader reads it as English
        assert "Goodwill" not in await page.locator("main").inner_text()  # the office's word, not the shopper's
        await screenshot(page, "history-operator-note-phone", full_page=False)
        await page.goto("/cards")
        blocked = page.get_by_test_id("blocked-reason")
        await expect(blocked).to_contain_text("заблокирована службой поддержки")
        await expect(blocked.get_by_test_id("operator-note")).to_have_text(
            "Комментарий службы поддержки: Карта найдена у другого человека")
        state = await phone.storage_state()
    finally:
        await phone.close()

    desktop = await chromium.new_context(base_url=server, viewport=DESKTOP, storage_state=state, bypass_csp=True)
    try:
        wide = await desktop.new_page()
        await wide.goto("/lang/en?next=/history")
        shown = wide.get_by_test_id("reason")
        await expect(shown.nth(1)).to_contain_text("A gift from our support team")
        await expect(shown.nth(1).get_by_test_id("operator-note")).to_have_text(
            "Note from our support team: Sorry for the queue at the till")
        await expect(shown.nth(0)).to_contain_text("Adjusted by our support team")
        await expect(shown.nth(0).locator("q")).to_have_attribute("lang", "ru")
        found = await axe_here(wide, "en 1280 /history")
        await wide.goto("/cards")
        await expect(wide.get_by_test_id("blocked-reason")).to_contain_text("blocked by our support team")
        await expect(wide.get_by_test_id("blocked-reason").locator("q")).to_have_text("Карта найдена у другого человека")
        found.update(await axe_here(wide, "en 1280 /cards"))
        await screenshot(wide, "cards-operator-note-desktop-en")
        assert found == {}, found
    finally:
        await desktop.close()


async def test_catalogue_names_in_the_pages_language_with_a_fallback(chromium: Any, server: str, db_pool: None) -> None:
    """The catalog import's `names: {ru, en}` on categories and products: the receipt's lines, the reason a line
    earned nothing and the favourites in the page's language; the catalog's one name where a language is missing."""
    from playwright.async_api import expect

    from loyalty_core.setup.catalog import CatalogIn, import_catalog
    from loyalty_core.setup.entities import CategorySpec, ProductSpec
    from loyalty_core.tables import Category, Product
    from tests.e2e.helpers import till_sale

    shop = await program_with_promotions()
    rows = await Product.raw(
        "SELECT p.sku, p.name, p.price, p.excluded, c.code AS category, c.name AS category_name, c.selectable_as_favourite "
        "FROM product p JOIN category c ON c.id = p.category WHERE p.sku = ANY({}::varchar[])",
        [shop.skus["cheese"], shop.skus["wine"], shop.skus["milk"]])
    by_sku = {r["sku"]: r for r in rows}
    names = {shop.skus["cheese"]: {"ru": "Сыр «Российский»", "en": "Russian cheese"},
             shop.skus["wine"]: {"ru": "Вино красное", "en": "Red wine"},
             shop.skus["milk"]: {"ru": "Молоко 3,2%"}}  # no English: the catalog's own name ("Milk")
    category_names = {"Dairy": {"ru": "Молочные продукты", "en": "Dairy products"}, "Alcohol": {"ru": "Алкоголь"}}
    categories = {r["category"]: CategorySpec(code=r["category"], name=r["category_name"],
                                              selectable_as_favourite=r["selectable_as_favourite"],
                                              names=category_names[r["category_name"]]) for r in rows}
    brand = await Product.raw("SELECT b.code FROM product p JOIN brand b ON b.id = p.brand WHERE p.sku = {}",
                              shop.skus["cheese"])
    await import_catalog(CatalogIn(categories=list(categories.values()), products=[
        ProductSpec(sku=sku, name=r["name"], category=r["category"], price=r["price"], excluded=r["excluded"],
                    brand=brand[0]["code"] if sku == shop.skus["cheese"] else None, names=names[sku])
        for sku, r in by_sku.items()]))
    assert (await Category.select(Category.names).where(Category.code == next(iter(categories))).first()) is not None

    phone = await _context(chromium, server, PHONE, "ru", is_mobile=True, has_touch=True)
    try:
        page = await phone.new_page()
        await sign_in(page, shop, name="Анна")
        card = (await page.get_by_test_id("card-number").inner_text()).strip()
        sale = await till_sale(server, shop, card, [("cheese", 1, 59_900), ("wine", 1, 99_900), ("milk", 2, 9_990)])
        await page.goto(f"/purchases/{sale['sale_id']}")
        await expect(page.get_by_test_id("line-1")).to_contain_text("Сыр «Российский»")
        await expect(page.get_by_test_id("line-2")).to_contain_text("Вино красное")
        await expect(page.get_by_test_id("line-2").get_by_test_id("line-no-points")).to_contain_text(
            "алкоголь не участвует в программе")
        await expect(page.get_by_test_id("line-3")).to_contain_text("Молоко 3,2%")
        await screenshot(page, "receipt-names-phone", full_page=False)
        await page.goto("/favourites")
        await expect(page.locator("label.chip").filter(has_text="Молочные продукты")).to_have_count(1)
        state = await phone.storage_state()
    finally:
        await phone.close()

    desktop = await chromium.new_context(base_url=server, viewport=DESKTOP, storage_state=state, bypass_csp=True)
    try:
        wide = await desktop.new_page()
        await wide.goto(f"/lang/en?next=/purchases/{sale['sale_id']}")
        await expect(wide.get_by_test_id("line-1")).to_contain_text("Russian cheese")
        await expect(wide.get_by_test_id("line-2").get_by_test_id("line-no-points")).to_contain_text(
            "Alcohol is not part of the programme")  # no English name: the catalog's own
        await expect(wide.get_by_test_id("line-3")).to_contain_text("Milk")
        found = await axe_here(wide, "en 1280 receipt")
        await wide.goto("/favourites")
        await expect(wide.locator("label.chip").filter(has_text="Dairy products")).to_have_count(1)
        found.update(await axe_here(wide, "en 1280 /favourites"))
        assert found == {}, found
    finally:
        await desktop.close()


async def test_error_pages_keep_the_layout_for_a_signed_in_shopper_and_stay_minimal_when_we_fail(
        chromium: Any, server: str, db_pool: None, tmp_path: Any) -> None:
    """A 404 has the tab bar for a signed-in shopper (the way back), none for a visitor; the 500 and the 503 have no
    tabs but speak the shopper's language and offer to try again. The 500 and the 503 come from two more servers of
    the same app: one on a database without our tables (every query fails), one whose Valkey is not there."""
    import os
    from urllib.parse import urlsplit, urlunsplit

    from playwright.async_api import expect

    from tests.e2e.helpers import no_sideways_scroll
    from tests.servers import free_port, uvicorn_app

    shop = await program_with_promotions()
    phone = await _context(chromium, server, PHONE, "ru", is_mobile=True, has_touch=True, bypass_csp=True)
    found: dict[str, list[str]] = {}
    try:
        page = await phone.new_page()
        await sign_in(page, shop, name="Анна")
        for path, tab in (("/no-such-page", None), ("/purchases/2147483000", "Покупки")):
            await page.goto(path)
            await expect(page.get_by_role("heading", name="Страница не найдена")).to_be_visible()
            tabs = page.get_by_role("navigation", name="Главное меню")
            await expect(tabs).to_be_visible()
            box = await tabs.bounding_box()
            assert box and abs(box["y"] + box["height"] - PHONE["height"]) <= 1, box  # at the bottom, as everywhere
            if tab:
                await expect(tabs.get_by_role("link", name=tab)).to_have_attribute("aria-current", "page")
            await no_sideways_scroll(page)
            found.update(await axe_here(page, f"ru 390 {path}"))
        await screenshot(page, "not-found-phone", full_page=False)
        await page.get_by_role("navigation", name="Главное меню").get_by_role("link", name="Карта").click()
        await expect(page.get_by_test_id("card-number")).to_be_visible()  # back in one tap
        state = await phone.storage_state()
    finally:
        await phone.close()

    desktop = await chromium.new_context(base_url=server, viewport=DESKTOP, storage_state=state, bypass_csp=True)
    visitor = await chromium.new_context(base_url=server, viewport=DESKTOP, bypass_csp=True)
    try:
        wide = await desktop.new_page()
        await wide.goto("/lang/en?next=/no-such-page")
        await expect(wide.get_by_role("heading", name="Page not found")).to_be_visible()
        tabs = wide.get_by_role("navigation", name="Main menu")
        await expect(tabs.get_by_role("link")).to_have_text(["Card", "Purchases", "Offers", "Profile"])
        box = await tabs.bounding_box()
        assert box and box["y"] < 100, box  # in the header on a desktop
        found.update(await axe_here(wide, "en 1280 /no-such-page"))
        stranger = await visitor.new_page()
        await stranger.goto("/no-such-page")
        await expect(stranger.get_by_role("heading", name="Страница не найдена")).to_be_visible()
        await expect(stranger.get_by_role("navigation", name="Главное меню")).to_have_count(0)  # no session, no tabs
        small = await (await chromium.new_context(base_url=server, viewport=PHONE, storage_state=state,
                                                  bypass_csp=True, is_mobile=True)).new_page()  # Russian, signed in

        # our failures: the 500 (a database without our tables) and the 503 (no Valkey), in each language
        empty = "kop_web_empty_" + str(os.getpid())
        import asyncpg

        admin = await asyncpg.connect(os.environ["KOPILKA_DATABASE_URL"])
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{empty}"')
            await admin.execute(f'CREATE DATABASE "{empty}"')
        finally:
            await admin.close()
        # the same server, another database: the path changes, the query (the embedded server's socket) stays
        parts = urlsplit(os.environ["KOPILKA_DATABASE_URL"])
        broken_db = urlunsplit(parts._replace(path="/" + empty))
        no_valkey = f"redis://127.0.0.1:{free_port()}/0"
        for name, env, code, titles in (
                ("500", {"KOPILKA_DATABASE_URL": broken_db}, 500, ("Что-то пошло не так", "Something went wrong")),
                ("503", {"KOPILKA_VALKEY_URL": no_valkey}, 503, ("Временно недоступно", "Temporarily unavailable"))):
            with uvicorn_app(tmp_path / f"server-{name}.log", extra_env=env, timeout=60, stop_timeout=10) as failing:
                # the same browsers: cookies belong to the host, not the port, so the session and language go along
                for tab, lang in ((wide, "en"), (small, "ru")):
                    title = titles[0] if lang == "ru" else titles[1]
                    answer = await tab.goto(f"{failing.base}/purchases")
                    assert answer is not None and answer.status == code, (name, lang, answer and answer.status)
                    await expect(tab.get_by_role("heading", name=title)).to_be_visible()
                    await expect(tab.locator("html")).to_have_attribute("lang", lang)
                    await expect(tab.get_by_test_id("try-again")).to_have_attribute("href", "/purchases")
                    await expect(tab.get_by_role("navigation", name="Main menu" if lang == "en" else "Главное меню")
                                 ).to_have_count(0)  # minimal: no tabs (and no session lookup) when we fail
                    text = await tab.locator("main").inner_text()
                    assert ("Ничего не изменилось" in text) if lang == "ru" else ("Nothing was changed" in text), text
                    found.update(await axe_here(tab, f"{lang} {name}"))
                if name == "503":
                    await screenshot(wide, "unavailable-desktop-en")
        admin = await asyncpg.connect(os.environ["KOPILKA_DATABASE_URL"])
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{empty}"')
        finally:
            await admin.close()
        await small.context.close()
    finally:
        await desktop.close()
        await visitor.close()
    assert found == {}, found
