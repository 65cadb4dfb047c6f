"""A till is trusted to report what it sold, not with a shopper's phone or with impossible numbers.

Phone look-ups are limited per till on every endpoint that takes a phone; spending by phone needs the
shopper's one-time code; a sale's amounts and times must be plausible; operators' caps trim accrual;
a batch refuses its bad items one by one and writes the others.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import msgspec
import pytest

from loyalty_core.shopper_auth import otp
from loyalty_core.setup import entities as setup
from tests.admin.conftest import Operators, operator  # noqa: F401 - the fixture
from tests.factories import Shop, account_balance, basic_rules, count_rows, make_member, make_shop, sale_body, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"
MSK = dt.timezone(dt.timedelta(hours=3))


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    return body


async def code_sent_to(valkey: Any, phone: str) -> str:
    """The newest code the (development) SMS gateway delivered to this phone."""
    messages = await otp.read_inbox(valkey, phone)
    assert messages, f"no message for {phone}"
    found = re.search(r"\b(\d{6})\b", messages[0].text)
    assert found, messages[0]
    return found.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_phone_lookups_are_limited_on_every_endpoint_that_takes_a_phone(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=500)
    answers: list[str] = []  # "limited" or "served", in order
    for i in range(35):
        body = sale_body(shop, [("milk", 1, 10_000)], card=member.phone)
        kind = i % 4
        if kind == 0:
            r = await http.post("/pos/v1/identify", json={"scan": member.phone}, headers=shop.headers)
        elif kind == 1:
            r = await http.post("/pos/v1/sales/calculate", json=body, headers=shop.headers)
        elif kind == 2:
            r = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
        else:
            r = await http.post("/pos/v1/sales/batch", json={"sales": [body]}, headers=shop.headers)
            assert r.status_code == 200, r.text
            item = r.json()["results"][0]
            limited = item["status"] == "rejected" and item["problem"]["type"].endswith("/rate-limited")
            answers.append("limited" if limited else "served")
            if not limited:
                assert item["status"] == "confirmed", item
            continue
        if r.status_code == 429:
            problem(r, 429, "rate-limited")
            assert int(r.headers["retry-after"]) >= 1
            answers.append("limited")
        else:
            assert r.status_code == 200, r.text
            answers.append("served")
    assert answers == ["served"] * 30 + ["limited"] * 5
    # asking for a code is a look-up too
    problem(await http.post("/pos/v1/confirmations", json={"scan": member.phone}, headers=shop.headers),
            429, "rate-limited")
    # a card is shown, not guessed: still served
    assert (await http.post("/pos/v1/identify", json={"scan": member.card}, headers=shop.headers)).status_code == 200


async def test_spending_by_phone_needs_the_shoppers_code(http: httpx.AsyncClient, shop: Shop, valkey: Any) -> None:
    member = await make_member(shop, points=1_000)
    assert member.phone is not None

    def spend(**extra: Any) -> dict[str, Any]:
        return sale_body(shop, [("milk", 5, 10_000)], card=member.phone, redeem=100, **extra)

    # pricing writes nothing and needs no code; spending does
    assert (await http.post("/pos/v1/sales/calculate", json=spend(), headers=shop.headers)).status_code == 200
    problem(await http.post("/pos/v1/sales/confirm", json=spend(), headers=shop.headers), 409, "confirmation-required")
    problem(await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code="123456"), headers=shop.headers),
            409, "confirmation-required")

    r = await http.post("/pos/v1/confirmations", json={"scan": member.phone}, headers=shop.headers)
    assert r.status_code == 202, r.text
    code = await code_sent_to(valkey, member.phone)
    for _ in range(5):
        problem(await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code=wrong(code)), headers=shop.headers),
                409, "confirmation-required")
    # the sixth try is refused even with the right code: it died after five wrong ones
    problem(await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code=code), headers=shop.headers),
            409, "confirmation-required")
    assert await account_balance(member.account_id) == (1_000, 0)

    assert (await http.post("/pos/v1/confirmations", json={"scan": member.phone}, headers=shop.headers)).status_code == 202
    code = await code_sent_to(valkey, member.phone)
    sold = await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code=code), headers=shop.headers)
    assert sold.status_code == 200, sold.text
    assert sold.json()["totals"]["redeemed_points"] == 100
    assert (await account_balance(member.account_id))[0] == 900
    # single use
    problem(await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code=code), headers=shop.headers),
            409, "confirmation-required")

    # a code asked for at another till works only there
    other = await setup.create_till_key(shop.store_code, unique("till"))
    other_headers = {"Authorization": f"Bearer {other.key}"}
    assert (await http.post("/pos/v1/confirmations", json={"scan": member.phone}, headers=other_headers)).status_code == 202
    code = await code_sent_to(valkey, member.phone)
    problem(await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code=code), headers=shop.headers),
            409, "confirmation-required")
    assert (await http.post("/pos/v1/sales/confirm", json=spend(confirmation_code=code), headers=other_headers)).status_code == 200
    assert (await account_balance(member.account_id))[0] == 800

    # an offline till cannot have asked for a code: a batch item spending by phone is refused, alone
    batch = await http.post("/pos/v1/sales/batch", json={"sales": [spend()]}, headers=shop.headers)
    assert batch.status_code == 200 and batch.json()["results"][0]["problem"]["type"].endswith("/confirmation-required")

    # a card is proof of possession: no code
    by_card = sale_body(shop, [("milk", 5, 10_000)], card=member.card, redeem=100)
    assert (await http.post("/pos/v1/sales/confirm", json=by_card, headers=shop.headers)).status_code == 200
    assert (await account_balance(member.account_id))[0] == 700


async def test_a_confirmed_phone_sale_replays_without_a_new_code(http: httpx.AsyncClient, shop: Shop, valkey: Any) -> None:
    member = await make_member(shop, points=1_000)
    assert member.phone is not None
    assert (await http.post("/pos/v1/confirmations", json={"scan": member.phone}, headers=shop.headers)).status_code == 202
    body = sale_body(shop, [("milk", 5, 10_000)], card=member.phone, redeem=100,
                     confirmation_code=await code_sent_to(valkey, member.phone))
    first = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    again = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert (await account_balance(member.account_id))[0] == 900


async def test_a_till_cannot_report_impossible_numbers(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop)
    before = (await count_rows("sale"), await count_rows("ledger_entry"))
    now = dt.datetime.now(MSK)
    huge = sale_body(shop, [("milk", 1, 1)], card=member.card)
    huge["lines"][0]["amount"] = 10**12
    for url in ("/pos/v1/sales/calculate", "/pos/v1/sales/confirm"):
        problem(await http.post(url, json=huge, headers=shop.headers), 422, "validation-error")
    # price x quantity, rounded, plus one kopeck is what a till may round to
    edge = sale_body(shop, [("milk", 1.5, 333)], card=member.card)
    edge["lines"][0]["amount"] = 501  # 499.5 -> 500, +1
    assert (await http.post("/pos/v1/sales/calculate", json=edge, headers=shop.headers)).status_code == 200
    edge["lines"][0]["amount"] = 502
    problem(await http.post("/pos/v1/sales/calculate", json=edge, headers=shop.headers), 422, "validation-error")
    old = sale_body(shop, [("milk", 1, 10_000)], card=member.card, when=now - dt.timedelta(days=20))
    problem(await http.post("/pos/v1/sales/confirm", json=old, headers=shop.headers), 422, "validation-error")
    ahead = sale_body(shop, [("milk", 1, 10_000)], card=member.card, when=now + dt.timedelta(minutes=11))
    problem(await http.post("/pos/v1/sales/confirm", json=ahead, headers=shop.headers), 422, "validation-error")
    zero = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    zero["lines"][0]["quantity"] = 0
    problem(await http.post("/pos/v1/sales/confirm", json=zero, headers=shop.headers), 422, "validation-error")
    assert (await count_rows("sale"), await count_rows("ledger_entry")) == before


async def test_a_late_upload_does_not_skip_the_pending_window(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop)
    now = dt.datetime.now(MSK)
    twenty_days_ago = sale_body(shop, [("milk", 10, 10_000)], card=member.card, when=now - dt.timedelta(days=20))
    too_old = sale_body(shop, [("milk", 1, 10_000)], card=member.card, when=now - dt.timedelta(days=31))
    r = await http.post("/pos/v1/sales/batch", json={"sales": [twenty_days_ago, too_old]}, headers=shop.headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["confirmed", "rejected"]
    assert results[1]["problem"]["type"].endswith("/validation-error")
    # 3% of 1 000 RUB: pending, although the sale is older than the 14-day window
    assert await account_balance(member.account_id) == (0, 30)
    lots = await count_rows("point_lot", "sale = {} AND activates_at >= now() + interval '13 days 23 hours'",
                            results[0]["sale_id"])
    assert lots == 1


async def test_operator_caps_trim_accrual_and_the_till_is_told(
    http: httpx.AsyncClient, operator: Operators  # noqa: F811 - the fixture
) -> None:
    shop = await make_shop()
    member = await make_member(shop)
    # the default is not unlimited: 3% of 500 000 RUB would be 15 000 points
    big = sale_body(shop, [("cheese", 1, 50_000_000)], card=member.card)
    priced = (await http.post("/pos/v1/sales/calculate", json=big, headers=shop.headers)).json()
    assert priced["totals"]["accrued_points"] == 10_000

    settings = msgspec.to_builtins(basic_rules(max_accrual_per_receipt=50, max_accrual_per_day=80).settings)
    r = await http.put(f"/admin/v1/programs/{shop.program_code}/rules/settings", json=settings, headers=operator("marketer"))
    assert r.status_code in (200, 201), r.text

    accrued = []
    for _ in range(3):
        body = sale_body(shop, [("milk", 50, 10_000), ("bread", 10, 4_990)], card=member.card)  # 3% = 164 points
        sale = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
        assert sale.status_code == 200, sale.text
        out = sale.json()
        assert out["totals"]["accrued_points"] == sum(ln["accrued_points"] for ln in out["lines"])
        assert out["totals"]["accrued_points"] == sum(a["points"] for a in out["applied"])
        accrued.append(out["totals"]["accrued_points"])
        if accrued[-1] < 164:  # the cashier can tell the shopper why
            assert any(m.startswith("лимит") for m in out["cashier_messages"]), out["cashier_messages"]
    assert accrued == [50, 30, 0]
    assert await account_balance(member.account_id) == (0, 80)


async def test_a_batch_refuses_bad_items_one_by_one(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop)
    first = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    nul = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    nul["lines"][0]["sku"] = "milk\u0000"
    implausible = sale_body(shop, [("milk", 1, 1)], card=member.card)
    implausible["lines"][0]["amount"] = 10**12
    missing_lines = {k: v for k, v in sale_body(shop, [("milk", 1, 1)]).items() if k != "lines"}
    year_one = dict(sale_body(shop, [("milk", 1, 10_000)], card=member.card), business_date="0001-01-01")
    past_bigint = sale_body(shop, [("milk", 1, 10_000)], card=member.card, redeem=10**30)
    last = sale_body(shop, [("bread", 1, 4_990)], card=member.card)
    sales = [first, nul, implausible, missing_lines, 42, year_one, past_bigint, last]
    r = await http.post("/pos/v1/sales/batch", json={"sales": sales}, headers=shop.headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["confirmed"] + ["rejected"] * 6 + ["confirmed"]
    for bad in results[1:7]:
        assert bad["problem"]["type"].endswith("/validation-error"), bad
        assert bad["sale_id"] is None
    assert [x["receipt_id"] for x in results] == [s["receipt_id"] if isinstance(s, dict) else "" for s in sales]
    assert await count_rows("sale", "membership = {}", member.membership_id) == 2


async def test_a_batch_item_that_needs_valkey_while_it_is_down_is_refused_alone(shop: Shop) -> None:
    """Valkey down: a phone item cannot be counted, so it is refused with `dependency-unavailable`;
    the card items around it do not need Valkey and are written."""
    import socket

    import valkey.asyncio as valkey_asyncio

    from loyalty_core.till import sales
    from loyalty_core.till.trust import PhoneGate

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = valkey_asyncio.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
    member = await make_member(shop)
    items = [sale_body(shop, [("milk", 1, 10_000)], card=member.card),
             sale_body(shop, [("milk", 1, 10_000)], card=member.phone),
             sale_body(shop, [("bread", 1, 4_990)], card=member.card)]
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    try:
        results = await sales.confirm_batch(items, till, dt.datetime.now(dt.UTC), PhoneGate(down, shop.till_id, "s", 30))
    finally:
        await down.aclose()
    assert [r.status for r in results] == ["confirmed", "rejected", "confirmed"]
    assert results[1].problem is not None and results[1].problem["type"].endswith("/dependency-unavailable")
    assert results[1].problem["dependency"] == "valkey"
