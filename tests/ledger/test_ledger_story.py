"""The ledger's story over time: pending points activate, old points burn, spending takes the oldest first,
returns take back pending points first, tiers follow the spend of the last 12 months."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.ledger import ops
from loyalty_core.ledger.settle import settle_due
from loyalty_core.ledger.verify import verify_all
from loyalty_core.piccolo_conf import DB
from loyalty_core.till import returns
from loyalty_core.till import sales
from loyalty_core.till.types import ReturnIn, SaleIn
from loyalty_core.tables import Card, LedgerEntry, Membership
from tests.factories import account_balance, make_member, make_shop, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

MSK = dt.timezone(dt.timedelta(hours=3))
T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=MSK)


@pytest.fixture
async def story_shop(db_pool: None):
    return await make_shop()


async def confirm(shop, member, lines, when, redeem=0, receipt=None):
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, lines, card=member.card, when=when, redeem=redeem, receipt=receipt), SaleIn)
    return await sales.confirm_sale(body, till, when)


async def test_points_wait_for_the_return_window_then_burn_after_their_year(story_shop) -> None:
    member = await make_member(story_shop, now=T0)
    sale = await confirm(story_shop, member, [("cheese", 1, 100_000)], T0)
    assert sale.totals.accrued_points == 30
    assert await account_balance(member.account_id) == (0, 30)

    day13 = T0 + dt.timedelta(days=13)
    assert (await ops.balance(member.account_id, day13)).pending == 30
    day14 = T0 + dt.timedelta(days=14, seconds=1)
    # the shopper's view is right before any job runs: showing the balance applies what fell due, so the
    # stored balances (and the history) agree with it at once...
    view = await ops.balance(member.account_id, day14)
    assert (view.active, view.pending) == (30, 0)
    assert await account_balance(member.account_id) == (30, 0)
    # ...and the settle job has nothing left to do for this account
    await settle_due(day14)
    assert await account_balance(member.account_id) == (30, 0)

    burn = day14 + dt.timedelta(days=365)
    assert (await ops.balance(member.account_id, burn - dt.timedelta(days=1))).expiring[0].points == 30
    await settle_due(burn)
    assert await account_balance(member.account_id) == (0, 0)
    kinds = [r["kind"] for r in await LedgerEntry.select(LedgerEntry.kind).where(LedgerEntry.account == member.account_id).order_by(LedgerEntry.id)]
    assert kinds == ["accrue", "activate", "activate", "expire"]
    assert await verify_all() == []


async def test_an_operation_applies_what_fell_due_even_if_the_job_lags(story_shop) -> None:
    member = await make_member(story_shop, now=T0)
    await confirm(story_shop, member, [("cheese", 10, 100_000)], T0)  # 300 points pending
    later = T0 + dt.timedelta(days=20)
    # no settle ran: the confirm itself activates the lot under the account lock, then spends from it
    sale = await confirm(story_shop, member, [("cheese", 1, 100_000)], later, redeem=250)
    assert sale.totals.redeemed_points == 250
    assert (await account_balance(member.account_id))[0] == 50


async def test_spending_takes_the_earliest_expiring_lot_first(story_shop) -> None:
    member = await make_member(story_shop, now=T0)
    async with DB.transaction():
        state = await ops.lock_account(member.account_id, T0)
        late = await ops.accrue(state, 100, T0, kind="adjust", source="adjust", activates_at=T0,
                                expires_at=T0 + dt.timedelta(days=300), reason="goodwill")
        early = await ops.accrue(state, 100, T0, kind="adjust", source="adjust", activates_at=T0,
                                 expires_at=T0 + dt.timedelta(days=30), reason="promo")
        taken = await ops.spend(state, 150, T0, reason="test")
    assert taken == [(early, 100), (late, 50)]


async def test_a_return_takes_back_pending_points_first_and_refunds_spent_ones(story_shop) -> None:
    member = await make_member(story_shop, 1_000, now=T0)
    sale = await confirm(story_shop, member, [("cheese", 2, 100_000)], T0, redeem=600)
    assert sale.totals.accrued_points == 42  # 3% of 1 400.00 RUB
    assert await account_balance(member.account_id) == (400, 42)
    till = sales.Till(till_id=story_shop.till_id, store_id=story_shop.store_id)
    body = msgspec.convert({"return_id": "R1", "lines": [{"line_no": 1, "quantity": 1}]}, ReturnIn)
    result = await returns.return_sale(sale.sale_id, body, till, T0 + dt.timedelta(days=1))
    assert (result.clawed_back_points, result.refunded_points, result.refunded_amount) == (21, 300, 70_000)
    assert await account_balance(member.account_id) == (700, 21)


async def test_refunded_points_whose_lot_expired_meanwhile_burn_at_once(story_shop) -> None:
    member = await make_member(story_shop, 500, now=T0, expires_in_days=10)
    sale = await confirm(story_shop, member, [("cheese", 2, 100_000)], T0, redeem=500)
    till = sales.Till(till_id=story_shop.till_id, store_id=story_shop.store_id)
    body = msgspec.convert({"return_id": "late", "lines": [{"line_no": 1, "quantity": 2}]}, ReturnIn)
    result = await returns.return_sale(sale.sale_id, body, till, T0 + dt.timedelta(days=40))
    assert result.refunded_points == 500
    assert result.balance_after is not None and result.balance_after.active == 0
    assert await verify_all() == []


async def test_tiers_follow_twelve_months_of_spend_and_the_card_number_stays(story_shop) -> None:
    member = await make_member(story_shop, now=T0)
    await confirm(story_shop, member, [("cheese", 20, 100_000)], T0)  # 20 000 RUB: still Basic
    assert await _tier(member) == "basic"
    big = await confirm(story_shop, member, [("cheese", 15, 100_000)], T0 + dt.timedelta(days=1))  # 35 000 RUB: Silver
    assert await _tier(member) == "silver"
    assert big.totals.accrued_points == 15 * 1_000 * 3 // 100  # the sale that lifts the tier earns at the old rate
    nxt = await confirm(story_shop, member, [("cheese", 1, 100_000)], T0 + dt.timedelta(days=2))
    assert nxt.totals.accrued_points == 50  # Silver: 5%
    till = sales.Till(till_id=story_shop.till_id, store_id=story_shop.store_id)
    body = msgspec.convert({"return_id": "R", "lines": [{"line_no": 1, "quantity": 10}]}, ReturnIn)
    await returns.return_sale(big.sale_id, body, till, T0 + dt.timedelta(days=3))
    assert await _tier(member) == "basic"  # 26 000 RUB left in the window
    assert (await Card.select(Card.number).where(Card.id == member.card_id).first())["number"] == member.card
    # a year later the old spend has left the window
    await confirm(story_shop, member, [("bread", 1, 4_990)], T0 + dt.timedelta(days=400))
    row = await Membership.select(Membership.tier_spend).where(Membership.id == member.membership_id).first()
    assert row["tier_spend"] == 4_990


async def _tier(member) -> str:
    rows = await Membership.raw(
        "SELECT t.code FROM membership m JOIN tier t ON t.id = m.tier WHERE m.id = {}", member.membership_id
    )
    return rows[0]["code"]


async def test_a_tier_falls_when_old_spend_leaves_the_window_without_a_sale(story_shop) -> None:
    from loyalty_core.members.tiers import recompute_lapsed_tiers

    member = await make_member(story_shop, now=T0)
    await confirm(story_shop, member, [("cheese", 35, 100_000)], T0)  # 35 000 RUB: Silver
    assert await _tier(member) == "silver"
    def mine(changes):  # other tests' members share the database
        return [(c.new_code, c.up) for c in changes if c.membership_id == member.membership_id]

    assert mine(await recompute_lapsed_tiers(T0 + dt.timedelta(days=300))) == []
    assert await _tier(member) == "silver"
    assert mine(await recompute_lapsed_tiers(T0 + dt.timedelta(days=366))) == [("basic", False)]
    assert await _tier(member) == "basic"
    assert mine(await recompute_lapsed_tiers(T0 + dt.timedelta(days=367))) == []  # once
