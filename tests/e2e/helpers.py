"""What the browser stories share: a program with names per language, signing in, till sales, axe-core, layout checks."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.factories import Shop, basic_rules, make_shop, sale_body
from tests.identity.shopper import code_sent_to, new_phone

AXE = Path(__file__).with_name("axe.min.js")  # axe-core 4.14.1 from the npm registry (MPL-2.0), vendored
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SMALL = {"width": 320, "height": 640}


async def program_with_promotions(**settings: Any) -> Shop:
    """The foundation's tiers, names in Russian and English, a welcome bonus (spendable at once), an own-brand bonus,
    a birthday bonus and a promotion that ends, so every block of the website has something to show."""
    from loyalty_core.engine.effects import EventBonus, Multiplier, PercentPoints
    from loyalty_core.engine.program import Rule, RuleGroup
    from loyalty_core.engine.targeting import LineFilter, Schedule, Targeting

    base = basic_rules(pending_days=0, **settings)
    tiers = [msgspec.structs.replace(t, names={"ru": ru, "en": t.name})
             for t, ru in zip(base.settings.tiers, ("Базовый", "Серебряный", "Золотой"), strict=True)]
    ends = dt.date.today() + dt.timedelta(days=20)
    promos = RuleGroup(code="promo", name="Promotions", stage="accrual", rules=[
        Rule(code="own-brand", name="Own brand", effect=PercentPoints(bp=200), lines=LineFilter(own_brand=True),
             names={"ru": "Собственная марка", "en": "Own brand"},
             descriptions={"ru": "+2% баллами за товары своей марки", "en": "+2% in points on own-brand goods"}),
        Rule(code="birthday", name="Birthday x10", effect=Multiplier(factor_bp=100_000),
             target=Targeting(birthday_window_days=0), names={"ru": "День рождения ×10", "en": "Birthday ×10"}),
        Rule(code="winter", name="Winter", effect=PercentPoints(bp=500), schedule=Schedule(valid_to=ends),
             names={"ru": "Зимние баллы", "en": "Winter points"}),
    ])
    events = RuleGroup(code="events", name="Events", stage="event", rules=[
        Rule(code="welcome", name="Welcome bonus", effect=EventBonus(event="registered", points=500),
             names={"ru": "Приветственный бонус", "en": "Welcome bonus"}),
        Rule(code="referral", name="Bring a friend", effect=EventBonus(event="first_purchase", referrer_points=200),
             names={"ru": "Приведи друга", "en": "Bring a friend"}),
    ])
    rules = msgspec.structs.replace(base, settings=msgspec.structs.replace(base.settings, tiers=tiers),
                                    groups=[promos, events])
    return await make_shop(rules)


async def sign_in(page: Any, shop: Shop, *, lang: str = "ru", name: str = "", to: str | None = None,
                  ref: str = "") -> str:
    """Through the real pages: the phone, the code from the development inbox, the welcome page of a new shopper."""
    from playwright.async_api import expect

    ru = lang == "ru"
    to = to or new_phone()
    await page.goto(f"/login?program={shop.program_code}" + (f"&ref={ref}" if ref else ""))
    await page.get_by_label("Телефон или e-mail" if ru else "Phone or e-mail").fill(to)
    await page.get_by_role("button", name="Получить код" if ru else "Get a code").click()
    await expect(page.get_by_test_id("code-sent-to")).to_be_visible()
    await page.get_by_label("Код" if ru else "Code", exact=True).fill(await code_sent_to(to))
    await page.get_by_role("button", name="Продолжить" if ru else "Continue").click()
    await page.wait_for_url(re.compile(r"/(welcome)?$"))
    if page.url.endswith("/welcome"):
        if name:
            await page.get_by_label("Ваше имя" if ru else "Your name").fill(name)
            await page.get_by_role("button", name="Продолжить" if ru else "Continue").click()
        else:
            await page.get_by_role("link", name="Пропустить" if ru else "Skip").click()
        await page.wait_for_url(re.compile(r"/$"))
    return to


async def till_sale(server: str, shop: Shop, card: str, lines: list[tuple[str, float, int]], **extra: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server) as till:
        r = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, lines, card=card, **extra), headers=shop.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def till_return(server: str, shop: Shop, sale_id: int, line_no: int, quantity: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server) as till:
        r = await till.post(f"/pos/v1/sales/{sale_id}/returns", headers=shop.headers,
                            json={"return_id": f"ret-{sale_id}-{line_no}", "lines": [{"line_no": line_no, "quantity": quantity}]})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def axe_violations(chromium: Any, server: str, paths: list[str], *, state: Any = None,
                         viewport: dict[str, int] | None = None) -> dict[str, list[str]]:
    """axe-core on each page, in a context of its own that bypasses the CSP (axe is injected as a script; the pages
    themselves are checked under the CSP by the stories and tests/security/test_headers.py)."""
    context = await chromium.new_context(base_url=server, viewport=viewport or {"width": 390, "height": 844},
                                         bypass_csp=True, storage_state=state)
    found: dict[str, list[str]] = {}
    try:
        page = await context.new_page()
        for path in paths:
            await page.goto(path)
            found.update(await axe_here(page, path))
    finally:
        await context.close()
    return found


async def axe_here(page: Any, label: str) -> dict[str, list[str]]:
    await page.add_script_tag(path=str(AXE))
    violations = await page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')))")
    return {label: violations} if violations else {}


async def no_sideways_scroll(page: Any) -> None:
    """Nothing is cut or scrolls sideways at this width."""
    width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: {width[0]} px wide on a {width[1]} px screen"
