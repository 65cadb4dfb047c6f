"""The website's guard rails over real HTTP: CSRF, the session cookie, other people's receipts, error pages."""

from __future__ import annotations

import os
from unittest.mock import patch

import httpx
import pytest

from backend.settings import load_settings
from tests.factories import Shop, sale_body
from tests.web.browser import NoJsBrowser

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_form_without_its_csrf_token_is_refused(browser: NoJsBrowser) -> None:
    await browser.sign_in()
    for path, data in [("/favourites", {"category": "x"}), ("/logout", {}), ("/cards/123/block", {"reason": "lost"})]:
        refused = await browser.http.post(path, data=data)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"].startswith("text/html")
        wrong = await browser.http.post(path, data={**data, "_csrf": "0" * 64})
        assert wrong.status_code == 403
    # the token of another browser does not work with this browser's cookies
    async with NoJsBrowser(browser.http.base_url.__str__(), program=browser.program) as other:
        await other.sign_in()
        await other.open("/profile")
        stolen = await browser.http.post("/profile/consents", data={"_csrf": other.last_html.split('name="_csrf" value="')[1][:64]})
        assert stolen.status_code == 403
    # still signed in: nothing above logged us out
    assert (await browser.open("/")).status_code == 200


async def test_login_form_also_needs_the_token(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.post("/login", data={"to": "+79991234567"})
        assert r.status_code == 403


def _secure_by_default(public_url: str) -> bool:
    env = {"KOPILKA_PUBLIC_URL": public_url, "KOPILKA_SECRET_KEY": "x", "KOPILKA_DATA_DIR": "/tmp"}
    with patch.dict(os.environ, env):
        os.environ.pop("KOPILKA_WEB_SECURE_COOKIES", None)
        return load_settings().web.secure_cookies


async def test_session_cookie_flags(browser: NoJsBrowser) -> None:
    done = await browser.sign_in()
    set_cookie = done.headers["set-cookie"]
    assert set_cookie.startswith("kp_session=")
    flags = {part.strip().lower() for part in set_cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # the test server is plain http; behind TLS the cookie is Secure:
    assert _secure_by_default("https://loyalty.example") and not _secure_by_default("http://127.0.0.1:8000")
    # the CSRF cookie is HttpOnly too (the token travels in the page, not read by scripts)
    first = await httpx.AsyncClient(base_url=str(browser.http.base_url)).get("/login")
    assert "httponly" in first.headers["set-cookie"].lower() and "samesite=lax" in first.headers["set-cookie"].lower()


async def test_signing_out_ends_the_session_server_side(browser: NoJsBrowser) -> None:
    await browser.sign_in()
    cookie = browser.http.cookies.get("kp_session")
    await browser.open("/profile")  # sign-out lives in the profile tab (issue 16)
    out = await browser.submit("/logout", {})
    assert out.status_code == 303 and out.headers["location"] == "/login?bye=1"
    # replaying the old cookie gets nowhere
    async with httpx.AsyncClient(base_url=str(browser.http.base_url), cookies={"kp_session": cookie}) as replay:
        r = await replay.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


async def test_someone_elses_receipt_is_a_404_page(server: str, shop: Shop, browser: NoJsBrowser) -> None:
    await browser.sign_in()
    async with NoJsBrowser(server, program=shop.program_code) as other:
        await other.sign_in()
        card = (await other.open("/")).text.split('data-testid="card-number">')[1].split("<")[0]
        async with httpx.AsyncClient(base_url=server) as till:
            sale = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, [("milk", 1, 10_000)], card=card),
                                   headers=shop.headers)
            assert sale.status_code == 200, sale.text
        purchases = (await other.open("/purchases")).text
        sale_id = int(purchases.split('href="/purchases/')[1].split('"')[0])
        assert (await other.open(f"/purchases/{sale_id}")).status_code == 200
    foreign = await browser.open(f"/purchases/{sale_id}")
    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith("text/html")
    assert "Страница не найдена" in foreign.text


async def test_pages_need_a_session_and_the_apis_keep_problem_json(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for path in ["/", "/purchases", "/profile", "/wallet/apple.pkpass"]:
            r = await client.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        htmx = await client.get("/fragments/balance", headers={"HX-Request": "true"})
        assert htmx.status_code == 204 and htmx.headers["hx-redirect"].startswith("/login")
        api = await client.get("/api/v1/me")
        assert api.status_code == 401 and api.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/schema/openapi.json")).status_code == 200
        paths = (await client.get("/schema/openapi.json")).json()["paths"]
        assert not any(p.startswith(("/login", "/purchases", "/live")) for p in paths)
        css = await client.get("/static/kopilka.css")
        assert css.status_code == 200 and "max-age=31536000" in css.headers["cache-control"]


async def test_next_never_leaves_the_site(browser: NoJsBrowser) -> None:
    await browser.open("/login", params={"program": browser.program, "next": "//evil.example/x"})
    assert 'name="next" value="/"' in browser.last_html


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_a_url_that_matches_nothing_is_the_websites_404_page_for_a_browser(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for path in ["/no/such/page", "/apiary", "/purchases/1/extra"]:
            page = await client.get(path, headers={"Accept": BROWSER_ACCEPT})
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert "Страница не найдена" in page.text and "Такой страницы нет" in page.text, path
        english = await client.get("/no/such/page", headers={"Accept": BROWSER_ACCEPT, "Cookie": "kp_lang=en"})
        assert "Page not found" in english.text


async def test_a_url_that_matches_nothing_stays_problem_json_for_the_apis_and_programs(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        # (/schema/<unknown> is answered by Litestar's OpenAPI router itself)
        for path in ["/api/v1/nothing", "/api", "/pos/v1/nothing", "/admin/v1/nothing", "/passkit/v1/nothing"]:
            r = await client.get(path, headers={"Accept": BROWSER_ACCEPT})  # even from a browser
            assert r.status_code == 404, path
            assert r.headers["content-type"].startswith("application/problem+json"), path
            assert r.json()["type"].endswith("/not-found"), path
        for accept in ["*/*", "application/json", "application/problem+json"]:
            r = await client.get("/no/such/page", headers={"Accept": accept})
            assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), accept
