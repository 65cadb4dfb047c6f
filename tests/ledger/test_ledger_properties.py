"""Random sequences of sales, returns, cancels, settles and clock moves: every invariant holds after each step."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_core.errors import DomainError
from loyalty_core.ledger import ops
from loyalty_core.ledger.maths import LotView, proportional_share, take_from_lots
from loyalty_core.ledger.settle import settle_due
from loyalty_core.ledger.verify import verify_all
from loyalty_core.till import returns
from loyalty_core.till import sales
from loyalty_core.till.types import ReturnIn, SaleIn
from tests.factories import make_member, make_shop, sale_body



MSK = dt.timezone(dt.timedelta(hours=3))
START = dt.datetime(2026, 3, 1, 10, 0, tzinfo=MSK)

sale_op = st.tuples(
    st.just("sale"),
    st.lists(st.tuples(st.sampled_from(["milk", "cheese", "wine", "bread"]), st.integers(1, 4), st.integers(1, 300_000)),
             min_size=1, max_size=4),
    st.integers(0, 100),  # percent of the allowed maximum to spend
)
return_op = st.tuples(st.just("return"), st.integers(0, 20), st.integers(1, 4), st.integers(1, 4))
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 20))
settle_op = st.tuples(st.just("settle"))
clock_op = st.tuples(st.just("clock"), st.integers(0, 200))  # days
operations = st.lists(st.one_of(sale_op, sale_op, return_op, cancel_op, settle_op, clock_op), min_size=1, max_size=14)


@pytest.fixture(scope="module")
async def ledger_shop(db_pool: None):
    return await make_shop()


@pytest.mark.asyncio(loop_scope="session")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations, initial=st.integers(0, 3_000))
async def test_invariants_hold_after_every_step(ledger_shop, steps, initial) -> None:
    shop = ledger_shop
    now = START
    member = await make_member(shop, initial, now=now, expires_in_days=90)
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    confirmed: list[dict] = []
    receipt = 0
    for step in steps:
        kind = step[0]
        if kind == "sale":
            receipt += 1
            lines = [(sku, qty, price) for sku, qty, price in step[1]]
            calc_body = sale_body(shop, lines, card=member.card, when=now, receipt=f"p{member.card}-{receipt}")
            sale_in = msgspec.convert(calc_body, SaleIn)
            calc = await sales.calculate_sale(sale_in, till, now)
            spend = calc.max_redeem_points * step[2] // 100
            body = msgspec.convert(dict(calc_body, redeem_points=spend), SaleIn)
            result = await sales.confirm_sale(body, till, now)
            assert result.totals.redeemed_points == spend
            confirmed.append({"id": result.sale_id, "lines": {ln.line_no: qty for ln, (_, qty, _) in zip(result.lines, lines)}})
        elif kind == "return" and confirmed:
            sale = confirmed[step[1] % len(confirmed)]
            line_no = (step[2] - 1) % len(sale["lines"]) + 1
            body = ReturnIn(return_id=f"R{receipt}-{step}", lines=[{"line_no": line_no, "quantity": step[3]}])  # type: ignore[list-item]
            body = msgspec.convert(msgspec.to_builtins(body), ReturnIn)
            try:
                await returns.return_sale(sale["id"], body, till, now)
            except DomainError as exc:
                assert exc.slug == "return-exceeds-sale"
        elif kind == "cancel" and confirmed:
            sale = confirmed[step[1] % len(confirmed)]
            try:
                await returns.cancel_sale(sale["id"], till, now)
            except DomainError as exc:
                assert exc.slug == "sale-not-cancellable"
        elif kind == "settle":
            await settle_due(now, batch_size=50)
        elif kind == "clock":
            now += dt.timedelta(days=step[1] // 10, hours=step[1] % 10)
        violations = await verify_all()
        assert violations == [], (step, violations)
        bal = await ops.balance(member.account_id, now)
        assert bal.active >= 0 and bal.pending >= 0


@given(
    lots=st.lists(st.tuples(st.integers(0, 1_000), st.integers(0, 400)), min_size=0, max_size=12),
    points=st.integers(0, 5_000),
)
def test_spending_takes_the_earliest_expiring_points_first(lots, points) -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    views = [LotView(id=i, remaining=r, expires_at=base + dt.timedelta(days=d)) for i, (r, d) in enumerate(lots)]
    available = sum(v.remaining for v in views)
    if points > available:
        with pytest.raises(ValueError):
            take_from_lots(views, points)
        return
    taken = take_from_lots(views, points)
    assert sum(t for _, t in taken) == points
    by_id = {v.id: v for v in views}
    assert all(0 < t <= by_id[i].remaining for i, t in taken)
    # every lot left untouched expires no earlier than every lot taken from, but the last
    touched = {i for i, _ in taken}
    if taken:
        last_expiry = max(by_id[i].expires_at for i in touched)
        fully_taken = [i for i, t in taken if t == by_id[i].remaining]
        for v in views:
            if v.id not in touched and v.remaining:
                assert v.expires_at >= max((by_id[i].expires_at for i in fully_taken), default=v.expires_at)
        assert last_expiry is not None


@given(
    value=st.integers(0, 100_000),
    whole=st.integers(1, 50_000),
    cuts=st.lists(st.integers(1, 50_000), min_size=1, max_size=8),
)
def test_returns_in_parts_add_up_to_a_full_return(value, whole, cuts) -> None:
    returned = 0
    total = 0
    for cut in cuts:
        part = min(cut, whole - returned)
        if part == 0:
            break
        share = proportional_share(value, returned, part, whole)
        assert share >= 0
        total += share
        returned += part
        assert total <= value
    total += proportional_share(value, returned, whole - returned, whole)
    assert total == value
