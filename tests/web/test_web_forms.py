"""The shopper's website without JavaScript: every form posts, redirects, and the next page shows the outcome."""

from __future__ import annotations

import re

import httpx
import pytest

from loyalty_core.tables import Card, Consent, Customer
from tests.factories import Shop, sale_body
from tests.web.browser import NoJsBrowser

pytestmark = pytest.mark.asyncio(loop_scope="session")


def card_number(html: str) -> str:
    return re.search(r'data-testid="card-number">([^<]+)<', html).group(1)  # type: ignore[union-attr]


async def test_register_by_code_and_see_the_card(browser: NoJsBrowser) -> None:
    await browser.open("/login", params={"program": browser.program})
    assert "Вход и регистрация" in browser.last_html
    wrong = await browser.submit("/login", {"to": "not a phone", "program": browser.program})
    assert wrong.status_code == 422 and "Это не похоже на телефон" in wrong.text
    done = await browser.sign_in(name="Мария", consent_email="on")
    assert done.headers["location"] == "/"
    home = await browser.open("/")
    assert "Здравствуйте, Мария!" in home.text and "Добро пожаловать в Копилку!" in home.text
    assert 'class="qr"' in home.text and card_number(home.text)
    # nothing burns within 60 days, so no "Скоро сгорят" block (issue 16)
    assert "Скоро сгорят" not in home.text and "Уровень" in home.text


async def test_a_wrong_code_shows_the_form_again(browser: NoJsBrowser) -> None:
    await browser.open("/login", params={"program": browser.program})
    sent = await browser.submit("/login", {"to": browser.to, "program": browser.program})
    await browser.open(sent.headers["location"])
    code = await browser.last_code()
    wrong = await browser.submit("/login/code", {"to": browser.to, "code": "000000" if code != "000000" else "111111",
                                                 "program": browser.program})
    assert wrong.status_code == 422 and "Неверный код. Осталось попыток: 4" in wrong.text
    assert "kp_session" not in wrong.headers.get("set-cookie", "")


async def test_english_money_and_dates(server: str, shop: Shop, browser: NoJsBrowser) -> None:
    await browser.sign_in()
    card = card_number((await browser.open("/")).text)
    async with httpx.AsyncClient(base_url=server) as till:
        r = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, [("cheese", 3, 59_900), ("milk", 1, 9_990)], card=card),
                             headers=shop.headers)
        assert r.status_code == 200, r.text
    ru = (await browser.open("/purchases")).text
    assert "1\u00a0896,90\u00a0₽" in ru  # 3 x 599.00 + 99.90
    switched = await browser.open("/lang/en", params={"next": "/purchases"})
    assert switched.status_code == 303 and switched.headers["location"] == "/purchases"
    en = (await browser.open("/purchases")).text
    assert "₽1,896.90" in en and "Purchases" in en
    sale_id = re.search(r'href="/purchases/(\d+)"', en).group(1)  # type: ignore[union-attr]
    receipt = (await browser.open(f"/purchases/{sale_id}")).text
    assert "Cheese" in receipt and "How the points add up" in receipt and "+56" in receipt  # 3% of 1 896.90 = 56 points


async def test_favourites_once_a_month(browser: NoJsBrowser, shop: Shop) -> None:
    await browser.sign_in()
    page = (await browser.open("/favourites")).text
    code = re.search(r'name="category" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    saved = await browser.submit("/favourites", {"category": code})
    assert saved.status_code == 303 and saved.headers["location"] == "/favourites"
    after = (await browser.open("/favourites")).text
    assert "Сохранено." in after and "checked" in after and 'data-testid="next-change"' in after
    again = await browser.submit("/favourites", {"category": code})
    # the page again (the shopper's ticks kept), saying why in Russian
    assert again.status_code == 409 and 'class="flash error"' in again.text and "раз в месяц" in again.text
    assert "checked" in again.text


async def test_profile_consents_and_language(browser: NoJsBrowser) -> None:
    await browser.sign_in()
    await browser.open("/profile")
    saved = await browser.submit("/profile", {"name": "Пётр", "birth_date": "1990-04-01", "locale": "en"})
    assert saved.status_code == 303 and "kp_lang=en" in saved.headers["set-cookie"]
    page = (await browser.open("/profile")).text
    assert 'value="Пётр"' in page and "1990-04-01" in page and "Saved." in page
    await browser.submit("/profile/consents", {"sms": "on"})
    customer = await Customer.select(Customer.id).where(Customer.phone == browser.to).first()
    rows = await Consent.select(Consent.channel, Consent.granted, Consent.source).where(Consent.customer == customer["id"]).order_by(Consent.id)
    latest = {r["channel"]: r for r in rows}
    assert latest["sms"]["granted"] and not latest["email"]["granted"] and latest["sms"]["source"] == "web"


async def test_block_and_replace_a_card(browser: NoJsBrowser) -> None:
    await browser.sign_in()
    old = card_number((await browser.open("/")).text)
    await browser.open("/cards")
    blocked = await browser.submit(f"/cards/{old}/block", {"reason": "lost"})
    assert blocked.status_code == 303
    page = (await browser.open("/cards")).text
    assert "Карта заблокирована." in page and 'data-testid="card-blocked"' in page
    assert "Карта заблокирована. Выпустите новую" in (await browser.open("/")).text
    await browser.open("/cards")
    replaced = await browser.submit(f"/cards/{old}/replace", {})
    assert replaced.status_code == 303
    page = (await browser.open("/cards")).text
    new = re.search(r"Выпущена новая карта: (\S+)<", page).group(1)  # type: ignore[union-attr]
    assert new != old and card_number((await browser.open("/")).text) == new
    status = await Card.select(Card.status).where(Card.number == old).first()
    assert status["status"] == "replaced"


async def test_delete_the_account(browser: NoJsBrowser) -> None:
    await browser.sign_in()
    await browser.open("/account/delete")
    not_confirmed = await browser.submit("/account/delete", {"confirm": "no"})
    assert not_confirmed.status_code == 422
    gone = await browser.submit("/account/delete", {"confirm": "удалить"})
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
    assert (await Customer.select(Customer.status).where(Customer.phone == browser.to).first()) is None
    assert (await browser.open("/")).status_code == 303
