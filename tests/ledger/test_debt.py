"""Undoing purchases never leaks points: spent points a return cannot take back are a recorded debt, paid
first from the next refunds and accruals, and undoing every purchase of a member, in any order, leaves the
balance as if they never happened (less what expired)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_core.errors import DomainError
from loyalty_core.ledger import ops
from loyalty_core.ledger.settle import settle_due
from loyalty_core.ledger.verify import verify_all
from loyalty_core.till import returns
from loyalty_core.till import sales
from loyalty_core.till.types import ReturnIn, SaleIn
from loyalty_core.tables import LedgerEntry
from tests.factories import basic_rules, make_member, make_shop, sale_body

MSK = dt.timezone(dt.timedelta(hours=3))
T0 = dt.datetime(2026, 2, 2, 11, 0, tzinfo=MSK)


async def _debt(account_id: int) -> int:
    rows = await LedgerEntry.raw("SELECT debt FROM account WHERE id = {}", account_id)
    return rows[0]["debt"]


async def _confirm(shop, member, lines, when, redeem=0):
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, lines, card=member.card, when=when, redeem=redeem), SaleIn)
    return await sales.confirm_sale(body, till, when)


async def _return_all(shop, sale, quantity, when, return_id):
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert({"return_id": return_id, "lines": [{"line_no": 1, "quantity": quantity}]}, ReturnIn)
    return await returns.return_sale(sale.sale_id, body, till, when)


async def _story(shop):
    """The issue's story: 500 welcome points, S earns 134, S2 spends 590; S then S2 are returned in full."""
    member = await make_member(shop, 500, now=T0)
    s = await _confirm(shop, member, [("cheese", 3, 149_990)], T0)
    assert s.totals.accrued_points == 134
    day15 = T0 + dt.timedelta(days=15)
    s2 = await _confirm(shop, member, [("cheese", 2, 149_990)], day15, redeem=590)
    assert s2.totals.redeemed_points == 590
    back = await _return_all(shop, s, 3, day15 + dt.timedelta(hours=1), "RS")
    return member, s, s2, back, day15


@pytest.mark.asyncio(loop_scope="session")
async def test_returning_a_spent_sale_then_the_spending_sale_gives_back_exactly_the_welcome_points(db_pool: None) -> None:
    shop = await make_shop()
    member, s, s2, back, day15 = await _story(shop)
    assert (back.clawed_back_points, back.unrecovered_points) == (44, 90)
    assert await _debt(member.account_id) == 90
    assert await verify_all() == []
    await _return_all(shop, s2, 2, day15 + dt.timedelta(hours=2), "RS2")
    bal = await ops.balance(member.account_id, day15 + dt.timedelta(hours=2))
    assert (bal.active, bal.pending) == (500, 0)
    assert await _debt(member.account_id) == 0
    # the history shows the debt being recorded and paid
    kinds = [r["kind"] for r in await LedgerEntry.select(LedgerEntry.kind).where(
        (LedgerEntry.account == member.account_id) & (LedgerEntry.bucket == "debt")).order_by(LedgerEntry.id)]
    assert kinds == ["debt", "debt_paid"]
    assert await verify_all() == []


@pytest.mark.asyncio(loop_scope="session")
async def test_a_debt_is_paid_from_the_next_accrual(db_pool: None) -> None:
    shop = await make_shop()
    member, s, s2, back, day15 = await _story(shop)
    later = day15 + dt.timedelta(hours=3)
    assert (await ops.balance(member.account_id, later)).debt == 90
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    calc_body = sale_body(shop, [("cheese", 1, 99_900)], card=member.card, when=later)
    calc = await sales.calculate_sale(msgspec.convert(calc_body, SaleIn), till, later)
    sale = await sales.confirm_sale(msgspec.convert(calc_body, SaleIn), till, later)  # earns 29: all pays the debt
    assert calc.balance_after == sale.balance_after
    assert sale.totals.accrued_points == 29
    assert sale.balance_after is not None and sale.balance_after.pending == 72  # S2's points only
    assert await _debt(member.account_id) == 90 - 29
    bal = await ops.balance(member.account_id, later)
    assert (bal.active, bal.pending) == (sale.balance_after.active, sale.balance_after.pending)
    assert await verify_all() == []


@pytest.mark.asyncio(loop_scope="session")
async def test_a_program_can_write_the_debt_off(db_pool: None) -> None:
    shop = await make_shop(basic_rules(return_debt="write_off"))
    member, *_ = await _story(shop)
    assert await _debt(member.account_id) == 0
    kinds = [r["kind"] for r in await LedgerEntry.select(LedgerEntry.kind).where(
        (LedgerEntry.account == member.account_id) & (LedgerEntry.bucket == "debt")).order_by(LedgerEntry.id)]
    assert kinds == ["debt", "debt_write_off"]
    assert await verify_all() == []


# --- the property: undo everything, in any order --------------------------------------------------

sale_op = st.tuples(
    st.just("sale"),
    st.lists(st.tuples(st.sampled_from(["milk", "cheese", "bread"]), st.integers(1, 4), st.integers(1, 300_000)),
             min_size=1, max_size=3),
    st.integers(0, 100),  # percent of the allowed maximum to spend
)
return_op = st.tuples(st.just("return"), st.integers(0, 20), st.integers(1, 3), st.integers(1, 4))
settle_op = st.tuples(st.just("settle"))
clock_op = st.tuples(st.just("clock"), st.integers(0, 400))  # tenths of days
steps_st = st.lists(st.one_of(sale_op, sale_op, sale_op, return_op, settle_op, clock_op, clock_op), min_size=1, max_size=12)

WELCOME_DAYS = 90


@pytest.fixture(scope="module")
async def debt_shop(db_pool: None):
    return await make_shop()


@pytest.mark.asyncio(loop_scope="session")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps_st, initial=st.integers(0, 2_000), undo_order=st.randoms(use_true_random=False),
       undo_clock=st.lists(st.integers(0, 300), min_size=0, max_size=6))
async def test_undoing_every_purchase_in_any_order_leaves_the_balance_as_if_they_never_happened(
    debt_shop, steps, initial, undo_order, undo_clock
) -> None:
    shop = debt_shop
    now = T0
    member = await make_member(shop, initial, now=now, expires_in_days=WELCOME_DAYS, registered=False)
    welcome_expires = T0 + dt.timedelta(days=WELCOME_DAYS)
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    confirmed: list[dict] = []
    for n, step in enumerate(steps):
        if step[0] == "sale":
            calc_body = sale_body(shop, step[1], card=member.card, when=now, receipt=f"d{member.card}-{n}")
            calc = await sales.calculate_sale(msgspec.convert(calc_body, SaleIn), till, now)
            body = msgspec.convert(dict(calc_body, redeem_points=calc.max_redeem_points * step[2] // 100), SaleIn)
            result = await sales.confirm_sale(body, till, now)
            confirmed.append({"id": result.sale_id, "lines": len(step[1])})
        elif step[0] == "return" and confirmed:
            sale = confirmed[step[1] % len(confirmed)]
            body = msgspec.convert({"return_id": f"p{n}", "lines": [
                {"line_no": (step[2] - 1) % sale["lines"] + 1, "quantity": step[3]}]}, ReturnIn)
            try:
                await returns.return_sale(sale["id"], body, till, now)
            except DomainError as exc:
                assert exc.slug == "return-exceeds-sale"
        elif step[0] == "settle":
            await settle_due(now, batch_size=50)
        elif step[0] == "clock":
            now += dt.timedelta(hours=step[1] * 24 // 10)
    # undo every purchase, in a random order, with the clock moving between undos
    undo_order.shuffle(confirmed)
    for i, sale in enumerate(confirmed):
        if i < len(undo_clock):
            now += dt.timedelta(hours=undo_clock[i] * 24 // 10)
        await returns.cancel_sale(sale["id"], till, now, any_day=True)
        assert await verify_all() == []
    bal = await ops.balance(member.account_id, now)
    expected = initial if now < welcome_expires else 0
    entries = await LedgerEntry.raw(
        "SELECT e.lot, e.kind, e.bucket, e.amount, e.sale, e.created_at, l.source, l.sale AS lot_sale, l.expires_at "
        "FROM ledger_entry e LEFT JOIN point_lot l ON l.id = e.lot WHERE e.account = {} ORDER BY e.id", member.account_id)
    assert (bal.active + bal.pending, await _debt(member.account_id)) == (expected, 0), (
        steps, initial, now, [s["id"] for s in confirmed], "\n".join(map(str, entries)))


@pytest.mark.asyncio(loop_scope="session")
async def test_a_debt_moves_with_the_points_when_accounts_are_merged(db_pool: None) -> None:
    from loyalty_core.piccolo_conf import DB

    shop = await make_shop()
    member, *_ = await _story(shop)
    other = await make_member(shop, 10, now=T0)
    later = T0 + dt.timedelta(days=16)
    async with DB.transaction():
        states = await ops.lock_accounts([member.account_id, other.account_id], later)
        await ops.transfer(states[member.account_id], states[other.account_id], later, "merge")
    assert (await _debt(member.account_id), await _debt(other.account_id)) == (0, 90)
    assert await verify_all() == []


@pytest.mark.asyncio(loop_scope="session")
async def test_verify_reports_a_debt_that_disagrees_with_its_entries(db_pool: None) -> None:
    shop = await make_shop()
    member, *_ = await _story(shop)
    await LedgerEntry.raw("UPDATE account SET debt = debt + 5 WHERE id = {}", member.account_id)
    try:
        found = [v for v in await verify_all() if v.subject == f"account {member.account_id}"]
        assert [v.invariant for v in found] == [
            "account.debt == sum(ledger entries into the debt bucket), never below zero, per lot too"]
    finally:
        await LedgerEntry.raw("UPDATE account SET debt = debt - 5 WHERE id = {}", member.account_id)
