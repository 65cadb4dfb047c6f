"""A shopper's phone or e-mail never travels in a URL of the website's sign-in (URLs land in access logs,
proxies and browser history), and the API's OpenID Connect callback completes only for the client that
started the flow."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlparse

import httpx
import pytest

from tests import servers
from tests.factories import Shop
from tests.identity.shopper import new_phone
from tests.web.browser import NoJsBrowser


@pytest.fixture(scope="module")
def logged_server(services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app with uvicorn's access log on, as production logs requests."""
    log = tmp_path_factory.mktemp("access-log") / "server.log"
    with servers.uvicorn_app(log, log_level="info") as app:
        yield app.base, log


def _forms_of(contact: str) -> list[str]:
    """The contact as it could show in a URL: raw, percent-encoded, form-encoded, the bare digits of a phone."""
    forms = {contact, quote(contact, safe=""), quote_plus(contact)}
    if contact.startswith("+"):
        forms.add(contact[2:])  # 999…: the national number
    else:
        forms.add(contact.split("@")[0])
    return sorted(forms)


@pytest.mark.parametrize("kind", ["phone", "email"])
async def test_sign_in_keeps_the_contact_out_of_every_url_and_the_access_log(
    logged_server: tuple[str, Path], shop: Shop, kind: str
) -> None:
    base, log = logged_server
    contact = new_phone() if kind == "phone" else f"web{new_phone()[-7:]}@example.org"
    urls: list[str] = []

    async def record(response: httpx.Response) -> None:
        urls.append(str(response.request.url))
        if "location" in response.headers:
            urls.append(response.headers["location"])

    async with NoJsBrowser(base, program=shop.program_code, to=contact) as browser:
        browser.http.event_hooks["response"].append(record)
        done = await browser.sign_in()
        assert done.status_code == 303 and (await browser.open("/")).status_code == 200
        # the code page named the contact in its body, never in its address
        assert any(urlparse(u).path == "/login/code" for u in urls)
        cookie_values = " ".join(c.value for c in browser.http.cookies.jar)
    for url in urls:
        for form in _forms_of(contact):
            assert form not in url, (form, url)
    for form in _forms_of(contact):
        assert form not in cookie_values  # the pending sign-in is an opaque id
    wanted = re.compile(r'"(GET|POST) [^"]*login[^"]*"')
    deadline = time.monotonic() + 5
    while len(wanted.findall(log.read_text())) < 4:  # uvicorn writes the access log line after the answer
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    access = "\n".join(line for line in log.read_text().splitlines() if '"GET ' in line or '"POST ' in line)
    for form in _forms_of(contact):
        assert form not in access, (form, access[-2000:])


async def test_the_code_page_shows_a_contact_only_to_the_browser_that_asked(server: str, shop: Shop) -> None:
    async with NoJsBrowser(server, program=shop.program_code) as asked, NoJsBrowser(server) as other:
        await asked.open("/login")
        sent = await asked.submit("/login", {"to": asked.to, "program": shop.program_code})
        assert sent.status_code == 303 and asked.to not in sent.headers["location"]
        assert asked.to in (await asked.open(sent.headers["location"])).text
        # the same address in another browser, or an old bookmark carrying ?to=: back to the sign-in form
        for path in (sent.headers["location"], f"/login/code?to={quote(asked.to)}"):
            page = await other.open(path)
            assert page.status_code == 303 and page.headers["location"].startswith("/login?")
            assert asked.to not in page.headers["location"] and asked.to not in page.text


async def _authorize(http: httpx.AsyncClient, shop: Shop, provider, user: dict) -> str:
    """Start the API's flow with `http` and let the provider approve it; the callback path the provider answers."""
    provider.next_user = user
    start = await http.get("/api/v1/auth/oidc/login", params={"program": shop.program_code})
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as at_provider:
        back = await at_provider.get(start.headers["location"])
    callback = urlparse(back.headers["location"])
    return callback.path + "?" + callback.query


async def test_an_oidc_callback_is_refused_to_any_client_but_the_one_that_started_it(
    server: str, shop: Shop, oidc_provider
) -> None:
    email = f"oidc{new_phone()[-7:]}@example.org"
    user = {"sub": "victim-" + email, "email": email, "email_verified": True, "name": "Vera"}
    async with httpx.AsyncClient(base_url=server) as victim, httpx.AsyncClient(base_url=server) as thief:
        callback = await _authorize(victim, shop, oidc_provider, user)
        assert victim.cookies.get("kp_api_oidc")
        # the code and state leaked (a log, a referrer, a shared screenshot): a client without the flow's cookie,
        # or with a cookie of a flow of its own, gets nothing
        stolen = await thief.get(callback)
        assert stolen.status_code == 401 and stolen.json()["type"].endswith("/oidc-failed"), stolen.text
        assert "access_token" not in stolen.text
        await _authorize(thief, shop, oidc_provider, {"sub": "thief", "email": "t@example.org", "email_verified": True})
        stolen = await thief.get(callback)
        assert stolen.status_code == 401 and "access_token" not in stolen.text
        forged = await thief.get(callback, headers={"Cookie": "kp_api_oidc=guess"})
        assert forged.status_code == 401
        # the shopper who started it still completes, once
        mine = await victim.get(callback)
        assert mine.status_code == 200, mine.text
        assert (await victim.get("/api/v1/me", headers={"Authorization": f"Bearer {mine.json()['access_token']}"})).json()["email"] == email
        assert (await victim.get(callback)).status_code == 401
