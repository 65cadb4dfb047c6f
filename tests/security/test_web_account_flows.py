"""The website's issue-16 boundaries, without JavaScript (httpx with a cookie jar):

- the dashboard's QR is the app's signed token, turning every 30 s, and the till resolves it to the card; the QR
  fragment gives nothing to a browser without a session (286: htmx stops polling, the notice instead);
- a form's URL opened directly changes nothing (GET never blocks, signs out or binds);
- blocking a card takes a confirmation and only the shopper's own cards; the reason is one of the list;
- "send a new code" is refused server-side during the countdown (no SMS), and the send limit says how long to wait;
- the welcome page needs the session and the form's token; the language switch changes only the signed-in
  shopper's own profile;
- the invitation page shows the inviter's first name only, and an unknown code is a 404 page.
"""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest

from loyalty_core.tables import Card, Customer
from personal_account.pages import card_qr
from tests.factories import Shop
from tests.web.browser import NoJsBrowser, csrf_of
from loyalty_core.shopper_auth.qr_token import issue_app_qr_token

pytestmark = pytest.mark.asyncio(loop_scope="session")
SECRET = "test-secret"  # tests/conftest.py starts the server with it


@pytest.fixture
async def browser(server: str, shop: Shop) -> NoJsBrowser:
    async with NoJsBrowser(server, program=shop.program_code) as b:
        yield b


def card_of(html: str) -> str:
    found = re.search(r'data-testid="card-number">([^<]+)<', html)
    assert found, "no card number on the page"
    return found.group(1).strip()


async def test_the_qr_is_the_signed_rotating_token_and_the_till_resolves_it(server: str, shop: Shop,
                                                                            browser: NoJsBrowser) -> None:
    await browser.sign_in(name="Вера")
    home = (await browser.open("/")).text
    card = card_of(home)
    assert card_qr(card) not in home  # not the static number (a screenshot of it would work for ever)
    fragment = await browser.open("/fragments/qr")
    assert fragment.status_code == 200 and 'hx-trigger="every 25s, kprefresh"' in fragment.text
    now = int(dt.datetime.now(dt.UTC).timestamp())
    tokens = {issue_app_qr_token(card, SECRET, dt.datetime.fromtimestamp(t, dt.UTC), period=30): t
              for t in range(now - 5, now + 2)}
    shown = [token for token in tokens if card_qr(token) in fragment.text]
    assert len(shown) == 1, "the fragment's QR is none of the tokens signed in the last seconds"
    async with httpx.AsyncClient(base_url=server) as till:
        scanned = await till.post("/pos/v1/identify", json={"scan": shown[0]}, headers=shop.headers)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["card"]["number"] == card


async def test_the_qr_fragment_without_a_session_gives_the_notice_and_stops_polling(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, headers={"HX-Request": "true", "Accept": "text/html"}) as anyone:
        r = await anyone.get("/fragments/qr")
    assert r.status_code == 286 and 'data-testid="session-ended"' in r.text and "<svg" not in r.text


async def test_form_urls_opened_directly_change_nothing(server: str, shop: Shop, browser: NoJsBrowser) -> None:
    await browser.sign_in()
    card = card_of((await browser.open("/")).text)
    for path, lands in [(f"/cards/{card}/replace", "/cards"), ("/cards/bind", "/cards"), ("/logout", "/profile"),
                        ("/profile/consents", "/profile"), ("/profile/devices/1/remove", "/profile")]:
        r = await browser.open(path)
        assert r.status_code == 303 and r.headers["location"] == lands, (path, r.status_code, r.text[:200])
    confirm = await browser.open(f"/cards/{card}/block")  # the confirmation page, not the block itself
    assert confirm.status_code == 200 and 'data-testid="confirm-block"' in confirm.text
    status = await Card.select(Card.status).where(Card.number == card).first()
    assert status == {"status": "active"}
    assert (await browser.open("/")).status_code == 200  # still signed in


async def test_blocking_takes_the_shoppers_own_card_and_a_listed_reason(server: str, shop: Shop,
                                                                        browser: NoJsBrowser) -> None:
    await browser.sign_in()
    async with NoJsBrowser(server, program=shop.program_code) as other:
        await other.sign_in()
        theirs = card_of((await other.open("/")).text)
    page = await browser.open(f"/cards/{theirs}/block")
    assert page.status_code == 404 and "confirm-block" not in page.text
    mine = card_of((await browser.open("/")).text)
    await browser.open(f"/cards/{mine}/block")
    done = await browser.submit(f"/cards/{mine}/block", {"reason": "<script>alert(1)</script>"})
    assert done.status_code == 303
    row = await Card.select(Card.status, Card.blocked_reason).where(Card.number == mine).first()
    assert row == {"status": "blocked", "blocked_reason": "lost"}  # not the planted text
    again = await browser.open(f"/cards/{mine}/block")
    assert again.status_code == 409 and "confirm-block" not in again.text


async def test_a_new_code_is_refused_during_the_countdown_without_sending(server: str, shop: Shop) -> None:
    from tests.identity.shopper import code_sent_to

    async with NoJsBrowser(server, program=shop.program_code) as b:
        await b.open("/login", params={"program": shop.program_code})
        sent = await b.submit("/login", {"to": b.to, "program": shop.program_code})
        page = await b.open(sent.headers["location"])
        assert 'data-testid="resend-countdown"' in page.text and 'data-testid="resend"' in page.text
        first = await code_sent_to(b.to)
        early = await b.submit("/login", {"to": b.to, "program": shop.program_code, "resend": "1"})
        assert early.status_code == 429 and "Новый код можно запросить через" in early.text
        assert await code_sent_to(b.to) == first  # no second message went out (the same code still works)
        done = await b.submit("/login/code", {"code": first, "program": shop.program_code, "next": "/"},
                              page=sent.headers["location"])
        assert done.status_code == 303


async def test_the_welcome_page_needs_the_session_and_the_token(server: str, shop: Shop, browser: NoJsBrowser) -> None:
    async with httpx.AsyncClient(base_url=server, headers={"Accept": "text/html"}) as anyone:
        assert (await anyone.get("/welcome")).headers["location"].startswith("/login")
    await browser.sign_in()
    forged = await browser.http.post("/welcome", data={"_csrf": "0" * 64, "name": "Mallory"})
    assert forged.status_code == 403
    customer = await Customer.select(Customer.name).where(Customer.phone == browser.to).first()
    assert customer == {"name": ""}


async def test_the_language_switch_changes_only_the_signed_in_shoppers_profile(server: str, shop: Shop,
                                                                              browser: NoJsBrowser) -> None:
    await browser.sign_in()
    async with NoJsBrowser(server, program=shop.program_code) as other:
        await other.sign_in()
        await browser.open("/lang/en", params={"next": "/"})
        mine = await Customer.select(Customer.locale).where(Customer.phone == browser.to).first()
        theirs = await Customer.select(Customer.locale).where(Customer.phone == other.to).first()
    assert mine == {"locale": "en"} and theirs == {"locale": "ru"}
    async with httpx.AsyncClient(base_url=server, headers={"Accept": "text/html"}) as anyone:
        r = await anyone.get("/lang/en", params={"next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_the_invitation_shows_a_first_name_only_and_unknown_codes_are_a_404_page(server: str, shop: Shop,
                                                                                      browser: NoJsBrowser) -> None:
    await browser.sign_in(name="Ольга Петрова")
    code = re.search(r'data-testid="referral-code">([^<]+)<', (await browser.open("/")).text).group(1)  # type: ignore[union-attr]
    async with httpx.AsyncClient(base_url=server, headers={"Accept": "text/html"}) as anyone:
        page = await anyone.get(f"/invite/{code}")
        assert page.status_code == 200 and "Ольга" in page.text and "Петрова" not in page.text
        assert browser.to not in page.text and browser.to[2:] not in page.text
        unknown = await anyone.get("/invite/NOSUCHCODE1")
        assert unknown.status_code == 404 and "недействительна" in unknown.text
        odd = await anyone.get("/invite/%3Cscript%3E")
        assert odd.status_code in (400, 404, 422) and "<script>" not in odd.text


async def test_a_session_cannot_see_another_shoppers_qr_through_the_fragment(server: str, shop: Shop,
                                                                            browser: NoJsBrowser) -> None:
    await browser.sign_in()
    mine = card_of((await browser.open("/")).text)
    fragment = (await browser.open("/fragments/qr")).text
    assert card_of(fragment) == mine and 'csrf' not in csrf_safe(fragment)


def csrf_safe(html: str) -> str:
    """The fragment carries no form (nothing to replay)."""
    try:
        csrf_of(html)
    except AssertionError:
        return ""
    return "csrf"


async def test_a_killed_code_says_so_and_the_send_limit_says_how_long_to_wait(server: str, shop: Shop) -> None:
    from tests.identity.shopper import code_sent_to

    async with NoJsBrowser(server, program=shop.program_code) as b:
        await b.open("/login", params={"program": shop.program_code})
        sent = await b.submit("/login", {"to": b.to, "program": shop.program_code})
        await b.open(sent.headers["location"])
        right = await code_sent_to(b.to)
        wrong = "000000" if right != "000000" else "111111"
        answers = [await b.submit("/login/code", {"code": wrong, "program": shop.program_code, "next": "/"},
                                  page=sent.headers["location"]) for _ in range(5)]
        assert "Осталось попыток: 1" in answers[3].text
        assert "этот код больше не действует" in answers[4].text and "disabled" in answers[4].text
        late = await b.submit("/login/code", {"code": right, "program": shop.program_code, "next": "/"},
                              page=sent.headers["location"])
        assert late.status_code == 422 and "kp_session" not in late.headers.get("set-cookie", "")
        # five codes a quarter of an hour per phone: the sixth request says how long to wait, in minutes
        statuses = [(await b.submit("/login", {"to": b.to, "program": shop.program_code}, page="/login")).status_code
                    for _ in range(4)]
        assert statuses == [303] * 4
        limited = await b.submit("/login", {"to": b.to, "program": shop.program_code}, page="/login")
        assert limited.status_code == 429
        assert re.search(r"Новый можно запросить через \d+ мин", limited.text), limited.text[-1500:]


async def test_a_bad_address_and_a_refusal_read_in_the_shoppers_language(server: str, shop: Shop,
                                                                         browser: NoJsBrowser) -> None:
    await browser.sign_in()
    bad = await browser.open("/purchases", params={"cursor": "!!"})
    assert bad.status_code == 400 and "В адресе недопустимое значение." in bad.text and "Validation failed" not in bad.text
    await browser.open("/profile")
    later = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    await browser.submit("/profile", {"name": "", "birth_date": later, "locale": "ru"})
    page = (await browser.open("/profile")).text
    assert "Это не похоже на дату рождения." in page and "plausible" not in page
    await browser.open("/lang/en", params={"next": "/"})
    english = await browser.open("/purchases", params={"cursor": "!!"})
    assert "The address has a value that is not allowed." in english.text
