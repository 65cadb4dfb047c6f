"""Signing in on the website through the OpenID Connect provider (the tests' own, speaking the real protocol).

A browser without JavaScript: httpx following redirects with its cookie jar, from the sign-in page's button
to the provider and back to the dashboard.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from tests.identity.oidc_provider import Provider
from tests.identity.shopper import new_ip, new_phone
from tests.web.browser import NoJsBrowser

BUTTON = re.compile(r'<a class="button" data-testid="oidc"\s+href="([^"]+)">([^<]+)</a>')


def client(server: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server, timeout=30, follow_redirects=True,
                             headers={"X-Forwarded-For": new_ip(), "Accept": "text/html"})


async def sign_in_with_provider(browser: httpx.AsyncClient, provider: Provider, program: str, user: dict[str, Any],
                                next_path: str = "/") -> httpx.Response:
    provider.next_user = user
    login = await browser.get("/login", params={"program": program, "next": next_path})
    button = BUTTON.search(login.text)
    assert button, "no provider button on the sign-in page"
    return await browser.get(unescape(button.group(1)))


async def test_sign_in_with_the_provider_registers_then_finds_the_same_shopper(server: str, shop: Any,
                                                                               oidc_provider: Provider) -> None:
    email = f"web-oidc{new_phone()[-7:]}@example.org"
    user = {"sub": "w-" + email, "email": email, "email_verified": True, "name": "Olga"}
    async with client(server) as browser:
        login = await browser.get("/login", params={"program": shop.program_code})
        assert "Войти через 127.0.0.1" in login.text  # the provider's name: the issuer's host unless configured
        done = await sign_in_with_provider(browser, oidc_provider, shop.program_code, user, next_path="/purchases")
        hops = [urlparse(str(r.url)) for r in done.history]
        assert [h.path for h in hops] == ["/login/oidc", "/authorize", "/login/oidc/callback"]
        authorize = parse_qs(hops[1].query)
        assert authorize["code_challenge_method"] == ["S256"] and authorize["nonce"] and authorize["state"]
        assert authorize["redirect_uri"] == [server + "/login/oidc/callback"]
        assert done.status_code == 200 and done.url.path == "/purchases"  # where the shopper was going
        assert "kp_oidc" not in browser.cookies  # the flow is spent
        dashboard = await browser.get("/")
        assert "Здравствуйте, Olga!" in dashboard.text
        card = dashboard.text.split('data-testid="card-number">')[1].split("<")[0]

        # the callback cannot be replayed, not even by the browser that made it
        replay = await browser.get(done.history[-1].url)
        assert replay.status_code == 400 and "Этот вход устарел" in replay.text

    # the same person signing in by e-mail code finds the same card; and again through the provider
    async with NoJsBrowser(server, program=shop.program_code, to=email) as by_code:
        await by_code.sign_in()
        assert card in (await by_code.open("/")).text
    async with client(server) as again:
        await sign_in_with_provider(again, oidc_provider, shop.program_code, user)
        assert card in (await again.get("/")).text


async def test_an_unverified_address_or_a_bad_token_is_a_readable_refusal(server: str, shop: Any,
                                                                          oidc_provider: Provider) -> None:
    async with client(server) as browser:
        victim = {"sub": "x", "email": "victim@example.org", "email_verified": False}
        refused = await sign_in_with_provider(browser, oidc_provider, shop.program_code, victim)
        assert refused.status_code == 401 and refused.headers["content-type"].startswith("text/html")
        assert "Провайдер не подтвердил ваш e-mail или телефон" in refused.text
        assert refused.url.path == "/login/oidc/callback"
        assert (await browser.get("/")).url.path == "/login"  # no session was opened

        for tamper in ("audience", "signature", "nonce"):
            oidc_provider.tamper = tamper
            bad = await sign_in_with_provider(browser, oidc_provider, shop.program_code,
                                              {"sub": "y", "email": "y@example.org", "email_verified": True})
            assert bad.status_code == 401, tamper
            assert "Не удалось войти через провайдера" in bad.text, tamper
        assert (await browser.get("/")).url.path == "/login"


async def test_a_callback_from_another_browser_or_a_cancelled_sign_in_opens_no_session(
        server: str, shop: Any, oidc_provider: Provider) -> None:
    oidc_provider.next_user = {"sub": "z", "email": f"z{new_phone()[-7:]}@example.org", "email_verified": True}
    async with client(server) as victim, client(server) as attacker:
        # the attacker starts a sign-in with their own account and lures the victim to the callback URL
        attacker.follow_redirects = False
        start = await attacker.get("/login/oidc", params={"program": shop.program_code})
        assert start.status_code == 303 and start.cookies.get("kp_oidc")
        async with httpx.AsyncClient() as provider_side:
            back = await provider_side.get(start.headers["location"])
        lured = await victim.get(back.headers["location"])
        assert lured.status_code == 400 and "начат в другом браузере" in lured.text
        assert (await victim.get("/")).url.path == "/login"

        # the shopper said no at the provider
        start = await victim.get("/login/oidc", params={"program": shop.program_code}, follow_redirects=False)
        state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
        cancelled = await victim.get("/login/oidc/callback", params={"error": "access_denied", "state": state})
        assert cancelled.status_code == 401 and "Вход отменён" in cancelled.text
        assert (await victim.get("/")).url.path == "/login"
