"""Two tills, one card, one moment: balances never go below zero and every operation lands exactly once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loyalty_core.ledger.verify import verify_all
from loyalty_core.setup import entities as setup
from tests.factories import Shop, account_balance, count_rows, make_member, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_twenty_tills_spending_one_card_never_overspend(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1_000)
    keys = [shop.key] + [(await setup.create_till_key(shop.store_code, f"till-{i}")).key for i in range(2, 21)]
    # each sale may spend 300 points (30% of 1 000 RUB); the card covers three of them and a third of a fourth
    bodies = [sale_body(shop, [("cheese", 1, 100_000)], card=member.card, redeem=300) for _ in keys]

    async def confirm(key: str, body: dict) -> httpx.Response:
        return await http.post("/pos/v1/sales/confirm", json=body, headers={"Authorization": f"Bearer {key}"})

    responses = await asyncio.gather(*(confirm(k, b) for k, b in zip(keys, bodies)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3, [r.text for r in responses if r.status_code != 200][:3]
    assert statuses.count(409) == 17
    assert all(r.json()["type"].endswith("/insufficient-points") for r in responses if r.status_code == 409)
    active, pending = await account_balance(member.account_id)
    assert active == 100
    assert pending == 3 * 21  # 3% of 700.00 RUB paid with money, for each sale that went through
    assert await count_rows("sale", "membership = {}", member.membership_id) == 3
    assert await verify_all() == []


async def test_a_confirm_replayed_a_hundred_times_at_once_has_one_effect(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=500)
    body = sale_body(shop, [("cheese", 2, 50_000), ("milk", 1, 9_990)], card=member.card, redeem=200)

    responses = await asyncio.gather(
        *(http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers) for _ in range(100))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["sale_id"] for r in responses}) == 1
    assert len({r.text for r in responses}) == 1
    assert await count_rows("sale", "membership = {}", member.membership_id) == 1
    assert await count_rows("ledger_entry", "account = {} AND kind = 'redeem'", member.account_id) == 1
    assert (await account_balance(member.account_id))[0] == 300
    assert await verify_all() == []


async def test_concurrent_returns_of_the_same_line_never_give_back_more(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=1_000)
    sale = (
        await http.post(
            "/pos/v1/sales/confirm",
            json=sale_body(shop, [("cheese", 2, 100_000)], card=member.card, redeem=600),
            headers=shop.headers,
        )
    ).json()
    url = f"/pos/v1/sales/{sale['sale_id']}/returns"
    responses = await asyncio.gather(
        *(
            http.post(url, json={"return_id": f"R{i}", "lines": [{"line_no": 1, "quantity": 1}]}, headers=shop.headers)
            for i in range(10)
        )
    )
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 2
    assert sum(r.json()["refunded_points"] for r in ok) == 600
    assert all(r.json()["type"].endswith("/return-exceeds-sale") for r in responses if r.status_code != 200)
    assert await account_balance(member.account_id) == (1_000, 0)
    assert await verify_all() == []
