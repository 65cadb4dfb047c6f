"""Security headers: a strict CSP (no inline script), no framing, nosniff, Referrer-Policy, HSTS behind https.

Over plain HTTP for every kind of answer, and in Chromium: the pages work under the policy with no violation,
an inline script injected into a page does not run, and another site cannot frame the card forms.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import chromium, phone  # noqa: F401 (fixtures)
from tests.factories import Shop, basic_rules, make_shop, sale_body
from tests.identity.shopper import code_sent_to, new_phone
from tests.web.browser import NoJsBrowser

TEMPLATES = Path(__file__).resolve().parents[2] / "personal_account" / "templates"


def csp_of(response: httpx.Response) -> dict[str, str]:
    policy = response.headers.get("content-security-policy", "")
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in (p.strip() for p in policy.split(";")) if d}


def assert_framing_and_sniffing_closed(response: httpx.Response) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", (response.url, response.status_code, response.headers)
    assert response.headers["x-frame-options"] == "DENY", response.url
    assert response.headers["referrer-policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
    assert csp_of(response)["frame-ancestors"] == "'none'", response.url


def assert_strict_page_policy(response: httpx.Response) -> None:
    assert_framing_and_sniffing_closed(response)
    csp = csp_of(response)
    for directive in ("script-src", "style-src", "default-src"):
        assert csp[directive] == "'self'", (response.url, directive, csp)
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'" and csp["form-action"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]


async def test_every_kind_of_answer_carries_the_headers(server: str, shop: Shop) -> None:
    async with NoJsBrowser(server, program=shop.program_code) as browser:
        anonymous = [await browser.open(p) for p in ("/login", "/no-such-page", "/static/kopilka.css")]
        await browser.sign_in()
        pages = [await browser.open(p) for p in ("/", "/cards", "/purchases", "/history", "/profile", "/favourites", "/offers")]
        for response in anonymous + pages:
            assert response.status_code in (200, 404), (response.url, response.status_code)
            assert_strict_page_policy(response)
            assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS
        refused = await browser.http.post("/cards/0000/block", data={"_csrf": "forged"})  # a refusal carries them too
        assert refused.status_code == 403
        assert_strict_page_policy(refused)
    async with httpx.AsyncClient(base_url=server) as client:
        for response in [await client.get("/api/v1/me"), await client.post("/pos/v1/identify", json={}),
                         await client.get("/health"), await client.get("/admin/v1/operator-keys")]:
            assert_framing_and_sniffing_closed(response)
        docs = await client.get("/schema/swagger")  # Swagger UI from its CDN: only the framing rule
        assert_framing_and_sniffing_closed(docs)


async def test_hsts_only_when_the_request_came_over_https(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        plain = await client.get("/login")
        assert "strict-transport-security" not in plain.headers
        # the TLS-terminating proxy (127.0.0.1 is in FORWARDED_ALLOW_IPS) says the shopper came over https
        behind_tls = await client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert re.fullmatch(r"max-age=\d{7,}.*", behind_tls.headers["strict-transport-security"])
        assert_strict_page_policy(behind_tls)


def test_templates_have_no_inline_script_handler_or_style() -> None:
    """What the policy forbids is not in the markup either (it would silently break a page)."""
    for template in TEMPLATES.glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), template.name
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), template.name
        assert not re.search(r"\sstyle\s*=", html, re.I), template.name
        assert "javascript:" not in html.lower() and "hx-on" not in html, template.name


# --- in Chromium ------------------------------------------------------------------------------------------

WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
  document.documentElement.setAttribute('data-csp-violations', String(window.__csp.length));
});
addEventListener('htmx:sseMessage', () => document.documentElement.setAttribute('data-live', 'on'));
"""


async def sign_in(page: Any, shop: Shop) -> str:
    to = new_phone()
    await page.goto(f"/login?program={shop.program_code}")
    await page.get_by_label("Телефон или e-mail").fill(to)
    await page.get_by_role("button", name="Получить код").click()
    await page.wait_for_url(re.compile(r"/login/code"))
    await page.get_by_label("Код").fill(await code_sent_to(to))
    await page.get_by_role("button", name="Продолжить").click()
    await page.wait_for_url(re.compile(r"/welcome$"))  # a new shopper: name and consents, or skip
    await page.get_by_role("link", name="Пропустить").click()
    await page.wait_for_url(re.compile(r"/$"))
    return to


@pytest.mark.e2e
async def test_pages_work_in_chromium_under_the_policy_without_a_single_violation(phone: Any, server: str,  # noqa: F811
                                                                                 db_pool: None) -> None:
    from playwright.async_api import expect

    shop = await make_shop(basic_rules(pending_days=0))
    page = await phone.new_page()
    await page.add_init_script(WATCH_CSP)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    await page.goto(f"/login?program={shop.program_code}")
    await sign_in(page, shop)

    # the live dashboard still works: htmx (no eval) and its event stream move the balance after a till sale
    assert await page.evaluate("window.htmx && htmx.config.allowEval === false && htmx.config.allowScriptTags === false")
    card = (await page.get_by_test_id("card-number").inner_text()).strip()
    await expect(page.locator("html")).to_have_attribute("data-live", "on", timeout=10_000)  # the stream is listening
    async with httpx.AsyncClient(base_url=server) as till:
        sale = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, [("cheese", 60, 59_900)], card=card),
                               headers=shop.headers)
    assert sale.status_code == 200, sale.text
    await expect(page.get_by_test_id("balance-active")).not_to_have_text("0", timeout=10_000)
    assert await page.locator("progress.progress").count() == 1  # the tier bar, drawn without an inline style
    violations = await page.evaluate("window.__csp")

    for path in ("/cards", "/purchases", "/history", "/favourites", "/offers", "/profile"):
        await page.goto(path)
        violations += await page.evaluate("window.__csp")
    # the block form still posts and answers
    await page.goto("/cards")
    await page.get_by_test_id("block").click()
    await page.get_by_test_id("confirm-block").click()
    await page.get_by_text("Карта заблокирована.").wait_for()
    violations += await page.evaluate("window.__csp")
    await page.goto("/profile")
    await page.get_by_role("button", name="Выйти", exact=True).click()
    await page.wait_for_url(re.compile(r"/login"))
    violations += await page.evaluate("window.__csp")
    assert violations == [], violations
    assert not [m for m in console if "Content Security Policy" in m or "Refused to" in m], console


@pytest.mark.e2e
async def test_an_injected_inline_script_does_not_run_and_the_card_forms_cannot_be_framed(
    phone: Any, server: str, db_pool: None  # noqa: F811
) -> None:
    from playwright.async_api import expect

    shop = await make_shop()
    page = await phone.new_page()
    await page.add_init_script(WATCH_CSP)

    # the server's real answer with markup an attacker managed to inject: the browser refuses to run it
    async def inject(route: Any) -> None:
        response = await route.fetch()
        body = (await response.text()).replace(
            "</main>", '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2"></main>')
        await route.fulfill(response=response, body=body)

    await page.route(re.compile(r".*/login(\?.*)?$"), inject)
    await page.goto(f"/login?program={shop.program_code}")
    await expect(page.locator("html")).to_have_attribute("data-csp-violations", "2")  # the script and the handler
    assert await page.evaluate("window.__pwned") is None
    assert any(v.startswith("script-src") for v in await page.evaluate("window.__csp"))
    await page.unroute(re.compile(r".*/login(\?.*)?$"))

    # another site frames the cards page (the block button): the frame stays empty
    await sign_in(page, shop)
    attacker = await phone.new_page()
    await attacker.goto("about:blank")
    await attacker.set_content(f'<iframe id="victim" src="{server}/cards" width="400" height="400"></iframe>')
    frame = attacker.frame_locator("#victim")
    await expect(frame.locator("body")).to_be_attached()  # the frame has loaded (Chromium's error page)
    frame = next(f for f in attacker.frames if f != attacker.main_frame)
    # nothing of the site renders in the frame (not even the sign-in form a cookie-less frame would get)
    assert await frame.locator("form").count() == 0 and await frame.locator("[data-testid=block]").count() == 0
    assert frame.url.startswith("chrome-error://"), frame.url  # Chromium refused to render it (frame-ancestors 'none')
