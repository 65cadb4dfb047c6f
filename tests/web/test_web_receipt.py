"""The receipt line by line without JavaScript (issue 16): points paid and earned per line, the reason a line earned
nothing, returns and cancellations in the totals, and the explanation adding up from the lines."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.factories import Shop, basic_rules, make_shop, sale_body
from tests.web.browser import NoJsBrowser

pytestmark = pytest.mark.asyncio(loop_scope="session")


def card_of(html: str) -> str:
    return re.search(r'data-testid="card-number">([^<]+)<', html).group(1).strip()  # type: ignore[union-attr]


def points_in(html: str, testid: str) -> list[int]:
    return [int(re.sub(r"\D", "", m)) for m in re.findall(rf'data-testid="{testid}">\+?([^<]+)<', html)]


async def confirm(server: str, shop: Shop, card: str, lines: list[tuple[str, float, int]], **extra: object) -> dict:
    async with httpx.AsyncClient(base_url=server) as till:
        r = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, lines, card=card, **extra), headers=shop.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_receipt_adds_up_line_by_line_and_shows_a_return(server: str, db_pool: None) -> None:
    shop = await make_shop(basic_rules(pending_days=0))
    async with NoJsBrowser(server, program=shop.program_code) as browser:
        await browser.sign_in(name="Лев")
        card = card_of((await browser.open("/")).text)
        await confirm(server, shop, card, [("cheese", 10, 59_900)])  # points to spend
        sale = await confirm(server, shop, card, [("cheese", 3, 59_900), ("wine", 1, 99_900), ("milk", 2, 9_990)],
                             redeem=20)
        async with httpx.AsyncClient(base_url=server) as till:
            back = await till.post(f"/pos/v1/sales/{sale['sale_id']}/returns", headers=shop.headers,
                                   json={"return_id": "r1", "lines": [{"line_no": 1, "quantity": 1}]})
        assert back.status_code == 200, back.text
        html = (await browser.open(f"/purchases/{sale['sale_id']}")).text
    earned = sale["totals"]["accrued_points"]
    assert sum(points_in(html, "line-earned")) == earned == points_in(html, "why-total")[0]
    assert "Оплачено баллами:" in html and "баллами: <strong>" in html
    assert re.search(r'data-testid="line-no-points">Баллы не начислены: alcohol не участвует в программе<', html)
    assert 'data-testid="line-returned">Возвращено 1:' in html
    clawed = back.json()["clawed_back_points"]
    if clawed:
        assert points_in(html, "total-clawed") == [clawed] and points_in(html, "total-earned") == [earned - clawed]
    assert 'data-testid="total-returned">−' in html and "Итого после возврата" in html
    assert "Базовые баллы уровня «Basic»" in html  # a program without Russian names: the document's own name


async def test_a_cancelled_receipt_earns_nothing_and_says_so(server: str, shop: Shop, browser: NoJsBrowser) -> None:
    await browser.sign_in()
    card = card_of((await browser.open("/")).text)
    sale = await confirm(server, shop, card, [("cheese", 2, 59_900)])
    async with httpx.AsyncClient(base_url=server) as till:
        cancelled = await till.post(f"/pos/v1/sales/{sale['sale_id']}/cancel", headers=shop.headers)
    assert cancelled.status_code == 200, cancelled.text
    html = (await browser.open(f"/purchases/{sale['sale_id']}")).text
    assert 'data-testid="cancelled-note"' in html and 'data-testid="line-earned"' not in html
    assert re.search(r'data-testid="total-earned">0\u00a0баллов<', html)
    assert "Баллы не начислены: покупка отменена" in html
    await browser.open("/lang/en", params={"next": "/"})
    english = (await browser.open(f"/purchases/{sale['sale_id']}")).text
    assert "The purchase was cancelled" in english and "No points: the purchase was cancelled" in english
