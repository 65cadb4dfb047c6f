"""A till sees and changes only its own store's sales.

Sale ids are sequential, so a till of another store must not cancel or return a sale by its id (it does not
exist for that till), nor read a stored answer about it. A shopper who brings goods back to another store is
served by what the receipt prints; a store bound to one program never finds another program's receipts.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from loyalty_core.setup import entities as setup
from tests.admin.conftest import Operators, operator, problem  # noqa: F401 - the fixture
from tests.factories import Member, Shop, account_balance, count_rows, make_member, make_shop, sale_body, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def another_store(shop: Shop, *, program: int | None = None, till: str = "till-1") -> Shop:
    """A second store selling the same catalog; `program` binds it to one program."""
    code = unique("store")
    store_id = await setup.create_store(code, "Another store", program=program)
    key = await setup.create_till_key(code, till)
    return Shop(program_id=shop.program_id, program_code=shop.program_code, store_id=store_id, store_code=code,
                till_id=key.till_id, key=key.key, skus=shop.skus)


async def another_till(shop: Shop, till: str) -> Shop:
    key = await setup.create_till_key(shop.store_code, till)
    return Shop(program_id=shop.program_id, program_code=shop.program_code, store_id=shop.store_id,
                store_code=shop.store_code, till_id=key.till_id, key=key.key, skus=shop.skus)


async def confirm(http: httpx.AsyncClient, shop: Shop, body: dict[str, Any]) -> dict[str, Any]:
    r = await http.post("/pos/v1/sales/confirm", json=body, headers=shop.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def written(member: Member, sale_id: int) -> tuple[Any, ...]:
    """Everything a cancel or a return of the sale would change."""
    return (
        await account_balance(member.account_id),
        await count_rows("ledger_entry", "account = {}", member.account_id),
        await count_rows("sale_return", "sale = {}", sale_id),
        await count_rows("sale", "id = {} AND status = 'confirmed'", sale_id),
        await count_rows("sale_line", "sale = {} AND returned_quantity_milli > 0", sale_id),
        await count_rows("notification", "card = {}", member.card_id),
    )


def receipt_of(shop: Shop, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"store": shop.store_code, "business_date": body["business_date"], "receipt_id": body["receipt_id"], **extra}


async def test_a_till_cannot_cancel_or_return_another_stores_sale_by_its_id(http: httpx.AsyncClient, shop: Shop) -> None:
    other = await another_store(shop)
    member = await make_member(shop, points=1_000)
    sale = await confirm(http, shop, sale_body(shop, [("cheese", 1, 100_000)], card=member.card, redeem=200))
    sid = sale["sale_id"]
    before = await written(member, sid)
    assert before[0] == (800, 24)

    cancel = problem(await http.post(f"/pos/v1/sales/{sid}/cancel", headers=other.headers), 404, "sale-not-found")
    ret = problem(
        await http.post(f"/pos/v1/sales/{sid}/returns", json={"return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]},
                        headers=other.headers),
        404, "sale-not-found",
    )
    # as if it did not exist: the same answer as for an id nobody has
    missing = problem(await http.post("/pos/v1/sales/999999999/cancel", headers=other.headers), 404, "sale-not-found")
    for found in (cancel, ret):
        assert set(found) == set(missing) and "balance_after" not in found
    assert await written(member, sid) == before

    # the sale's own store still can
    own = await http.post(f"/pos/v1/sales/{sid}/cancel", headers=shop.headers)
    assert own.status_code == 200, own.text
    assert own.json()["balance_after"] == {"active": 1_000, "pending": 0}


async def test_a_stored_cancel_or_return_is_not_replayed_to_another_store(http: httpx.AsyncClient, shop: Shop) -> None:
    other = await another_store(shop)
    member = await make_member(shop, points=1_000)
    returned = await confirm(http, shop, sale_body(shop, [("cheese", 2, 100_000)], card=member.card, redeem=100))
    cancelled = await confirm(http, shop, sale_body(shop, [("milk", 1, 10_000)], card=member.card))
    body = {"return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}
    url = f"/pos/v1/sales/{returned['sale_id']}/returns"
    assert (await http.post(url, json=body, headers=shop.headers)).status_code == 200
    assert (await http.post(f"/pos/v1/sales/{cancelled['sale_id']}/cancel", headers=shop.headers)).status_code == 200
    before = (await written(member, returned["sale_id"]), await written(member, cancelled["sale_id"]))

    # the very same requests from another store: no replay of the stored answers (they carry the balance)
    problem(await http.post(url, json=body, headers=other.headers), 404, "sale-not-found")
    problem(await http.post(f"/pos/v1/sales/{cancelled['sale_id']}/cancel", headers=other.headers), 404, "sale-not-found")
    after = (await written(member, returned["sale_id"]), await written(member, cancelled["sale_id"]))
    assert after == before


async def test_a_return_at_another_store_goes_by_the_printed_receipt(http: httpx.AsyncClient, shop: Shop) -> None:
    other = await another_store(shop)
    shopper = await make_member(shop, points=1_000)
    bystander = await make_member(shop, points=500)
    body = sale_body(shop, [("cheese", 1, 100_000), ("milk", 2, 10_000)], card=shopper.card, redeem=300)
    sale = await confirm(http, shop, body)
    assert await account_balance(shopper.account_id) == (700, 27)
    request = {"original": receipt_of(shop, body), "return_id": "R-78", "lines": [{"line_no": 1, "quantity": 1}]}

    r = await http.post("/pos/v1/returns", json=request, headers=other.headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    cheese = next(line for line in sale["lines"] if line["line_no"] == 1)
    assert answer["return_id"] == "R-78"
    assert answer["clawed_back_points"] == cheese["accrued_points"] and answer["refunded_points"] == cheese["redeemed_points"]
    assert answer["refunded_amount"] == cheese["to_pay"]
    # the points go back to and come from the shopper of the receipt, nobody else
    expected = (700 + cheese["redeemed_points"], 27 - cheese["accrued_points"])
    assert await account_balance(shopper.account_id) == expected
    assert answer["balance_after"] == {"active": expected[0], "pending": expected[1]}
    assert await account_balance(bystander.account_id) == (500, 0)
    assert await count_rows("sale_return", "sale = {} AND till = {} AND return_id = 'R-78'", sale["sale_id"], other.till_id) == 1

    # a replay from the same till is the first answer, and writes nothing
    entries = await count_rows("ledger_entry", "account = {}", shopper.account_id)
    again = await http.post("/pos/v1/returns", json=request, headers=other.headers)
    assert again.status_code == 200 and again.json() == answer
    assert await count_rows("ledger_entry", "account = {}", shopper.account_id) == entries
    changed = dict(request, lines=[{"line_no": 2, "quantity": 1}])
    problem(await http.post("/pos/v1/returns", json=changed, headers=other.headers), 409, "idempotency-conflict")

    # the same return number at other tills is their own return: never a replay of this one
    own = await http.post(f"/pos/v1/sales/{sale['sale_id']}/returns",
                          json={"return_id": "R-78", "lines": [{"line_no": 2, "quantity": 1}]}, headers=shop.headers)
    assert own.status_code == 200, own.text
    assert own.json()["return_id"] == "R-78" and own.json()["refunded_amount"] > 0
    third = await another_store(shop)
    problem(await http.post("/pos/v1/returns", json=request, headers=third.headers), 422, "return-exceeds-sale")
    assert await count_rows("sale_return", "sale = {}", sale["sale_id"]) == 2


async def test_a_receipt_number_printed_by_two_tills_needs_the_till(http: httpx.AsyncClient, shop: Shop) -> None:
    second_till = await another_till(shop, "till-2")
    other = await another_store(shop)
    first, second = await make_member(shop, points=100), await make_member(shop, points=100)
    receipt = unique("000")
    body_1 = sale_body(shop, [("milk", 1, 10_000)], card=first.card, receipt=receipt)
    body_2 = sale_body(shop, [("milk", 1, 10_000)], card=second.card, receipt=receipt)
    await confirm(http, shop, body_1)
    await confirm(http, second_till, body_2)
    request = {"original": receipt_of(shop, body_2), "return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}

    ambiguous = problem(await http.post("/pos/v1/returns", json=request, headers=other.headers), 422, "validation-error")
    assert ambiguous["tills"] == ["till-1", "till-2"]
    assert await account_balance(first.account_id) == (100, 3) and await account_balance(second.account_id) == (100, 3)

    request["original"]["till"] = "till-2"
    r = await http.post("/pos/v1/returns", json=request, headers=other.headers)
    assert r.status_code == 200, r.text
    assert await account_balance(first.account_id) == (100, 3) and await account_balance(second.account_id) == (100, 0)
    request["original"]["till"] = "till-9"
    problem(await http.post("/pos/v1/returns", json=request, headers=other.headers), 404, "sale-not-found")


async def test_another_programs_receipt_is_not_found(http: httpx.AsyncClient, shop: Shop) -> None:
    foreign = await make_shop()  # another program
    same_program = await another_store(shop, program=shop.program_id)
    other_program = await another_store(foreign, program=foreign.program_id)
    member = await make_member(shop, points=100)
    body = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    sale = await confirm(http, shop, body)
    request = {"original": receipt_of(shop, body), "return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}
    before = await written(member, sale["sale_id"])

    problem(await http.post("/pos/v1/returns", json=request, headers=other_program.headers), 404, "sale-not-found")
    # a receipt of a store bound to another program, even without a card
    anonymous = sale_body(foreign, [("milk", 1, 10_000)])
    await confirm(http, other_program, anonymous)
    problem(
        await http.post("/pos/v1/returns", json=dict(request, original=receipt_of(other_program, anonymous)),
                        headers=same_program.headers),
        404, "sale-not-found",
    )
    missing = dict(request, original=dict(request["original"], receipt_id="no-such-receipt"))
    problem(await http.post("/pos/v1/returns", json=missing, headers=same_program.headers), 404, "sale-not-found")
    assert await written(member, sale["sale_id"]) == before

    r = await http.post("/pos/v1/returns", json=request, headers=same_program.headers)
    assert r.status_code == 200, r.text
    assert await account_balance(member.account_id) == (100, 0)


async def test_an_operator_binds_a_store_to_a_program(http: httpx.AsyncClient, shop: Shop, operator: Operators) -> None:
    foreign = await make_shop()
    code = unique("store")
    r = await http.post("/admin/v1/stores", headers=operator("import"),
                        json={"code": code, "name": "Partner", "program": foreign.program_code})
    assert r.status_code == 201, r.text
    problem(await http.post("/admin/v1/stores", headers=operator("import"),
                            json={"code": unique("store"), "name": "x", "program": "no-such-program"}), 404, "not-found")
    key = await http.post(f"/admin/v1/stores/{code}/tills/t1/keys", headers=operator("admin"))
    assert key.status_code == 201, key.text
    member = await make_member(shop, points=100)
    body = sale_body(shop, [("milk", 1, 10_000)], card=member.card)
    await confirm(http, shop, body)
    request = {"original": receipt_of(shop, body), "return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}
    partner = {"Authorization": f"Bearer {key.json()['key']}"}
    problem(await http.post("/pos/v1/returns", json=request, headers=partner), 404, "sale-not-found")
    assert await account_balance(member.account_id) == (100, 3)


async def test_a_malformed_receipt_reference_is_refused(http: httpx.AsyncClient, shop: Shop) -> None:
    before = await count_rows("sale_return")
    lines = [{"line_no": 1, "quantity": 1}]
    for original in (None, {"store": shop.store_code, "receipt_id": "1"},
                     {"store": shop.store_code, "business_date": "2026-13-01", "receipt_id": "1"},
                     {"store": "", "business_date": "2026-11-23", "receipt_id": "1"},
                     {"store": shop.store_code, "business_date": "2026-11-23", "receipt_id": "1", "sale_id": 1}):
        r = await http.post("/pos/v1/returns", json={"original": original, "return_id": "R-1", "lines": lines},
                            headers=shop.headers)
        problem(r, 422, "validation-error")
    r = await http.post("/pos/v1/returns", json={"original": {"store": shop.store_code, "business_date": "2026-11-23",
                                                              "receipt_id": "1"}, "return_id": "R-1", "lines": lines})
    problem(r, 401, "unauthorized")
    assert await count_rows("sale_return") == before


async def test_an_idempotency_key_is_the_tills_own(http: httpx.AsyncClient, shop: Shop) -> None:
    """Another till sending the same Idempotency-Key neither reads the first till's answer nor is refused by it."""
    neighbour = await another_till(shop, unique("till"))
    member = await make_member(shop, points=500)
    first_body = sale_body(shop, [("cheese", 1, 100_000)], card=member.card, redeem=100)
    first = await http.post("/pos/v1/sales/confirm", json=first_body, headers={**shop.headers, "Idempotency-Key": "K-1"})
    assert first.status_code == 200, first.text

    other_body = sale_body(neighbour, [("milk", 1, 10_000)])
    other = await http.post("/pos/v1/sales/confirm", json=other_body,
                            headers={**neighbour.headers, "Idempotency-Key": "K-1"})
    assert other.status_code == 200, other.text
    assert other.json()["sale_id"] != first.json()["sale_id"]
    assert "balance_after" not in other.json() or other.json()["balance_after"] != first.json()["balance_after"]
    assert other.json()["totals"]["amount"] == 10_000


async def test_the_printed_total_when_sent_must_match(http: httpx.AsyncClient, shop: Shop) -> None:
    other = await another_store(shop)
    member = await make_member(shop, points=0)
    body = sale_body(shop, [("cheese", 2, 100_000)], card=member.card)
    sale = await confirm(http, shop, body)
    lines = [{"line_no": 1, "quantity": 1}]
    wrong = await http.post("/pos/v1/returns", headers=other.headers, json={
        "original": receipt_of(shop, body, total=sale["totals"]["to_pay"] - 1), "return_id": "R-1", "lines": lines})
    problem(wrong, 404, "sale-not-found")
    right = await http.post("/pos/v1/returns", headers=other.headers, json={
        "original": receipt_of(shop, body, total=sale["totals"]["to_pay"]), "return_id": "R-1", "lines": lines})
    assert right.status_code == 200, right.text
