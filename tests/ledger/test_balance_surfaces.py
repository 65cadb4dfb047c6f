"""Every surface shows the same balance at every moment, also between an expiry and the next settle run:
the till's identify, the shopper's /balance and history, the operator's view, the account row; and a
confirm dated long ago does not count points whose life already ended."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.ledger import ops
from loyalty_core.ledger.verify import verify_all
from loyalty_core.piccolo_conf import DB
from loyalty_core.members import history as member_history
from loyalty_core.members import points as members_points
from loyalty_core.till import sales
from loyalty_core.members.profile import member_of
from loyalty_core.till.types import SaleIn
from loyalty_core.tables import LedgerEntry
from tests.factories import account_balance, basic_rules, make_member, make_shop, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

MSK = dt.timezone(dt.timedelta(hours=3))
T0 = dt.datetime(2026, 4, 4, 10, 0, tzinfo=MSK)


async def _history_sum(account_id: int) -> int:
    rows = await LedgerEntry.raw(
        "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entry WHERE account = {} AND bucket = 'active'", account_id
    )
    return rows[0]["s"]


async def test_all_surfaces_agree_between_an_expiry_and_the_next_settle(db_pool: None) -> None:
    shop = await make_shop()
    member = await make_member(shop, 589, now=T0, expires_in_days=365)
    async with DB.transaction():
        state = await ops.lock_account(member.account_id, T0)
        await ops.accrue(state, 67, T0, kind="adjust", source="adjust", activates_at=T0,
                         expires_at=T0 + dt.timedelta(days=30), reason="promo")
    after_expiry = T0 + dt.timedelta(days=31)  # no settle has run
    shopper = await member_of(member.customer_id, shop.program_code)
    # the shopper opens their history first: it already adds up to what the balance will say
    page = await members_points.history(shopper, None, 50, now=after_expiry)
    assert sum(i.amount for i in page.items if i.bucket == "active") == 589
    identified = await sales.identify(member.card, after_expiry)
    assert identified.balance.active == 589
    assert (await members_points.balance(shopper, after_expiry)).active == 589
    assert (await member_history.member_history(member.membership_id, after_expiry)).balance.active == 589
    assert await account_balance(member.account_id) == (589, 0)
    assert await _history_sum(member.account_id) == 589
    assert await verify_all() == []


async def test_an_old_sale_answers_the_balance_every_surface_then_shows(db_pool: None) -> None:
    # a program whose points live 10 days: an offline till's sale from 25 days ago; its points wait their
    # window from the upload (till_trust), and none of them is counted once dead
    shop = await make_shop(basic_rules(pending_days=0, expiry_days=10))
    member = await make_member(shop, 100, now=T0)
    now = T0 + dt.timedelta(days=1)
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    old = now - dt.timedelta(days=25)
    body = msgspec.convert(sale_body(shop, [("cheese", 1, 100_000)], card=member.card, when=old), SaleIn)
    sale = await sales.confirm_sale(body, till, now, offline=True)
    assert sale.totals.accrued_points == 30
    assert sale.balance_after is not None
    after = (sale.balance_after.active, sale.balance_after.pending)
    assert await account_balance(member.account_id) == after
    view = await ops.balance(member.account_id, now)
    assert (view.active, view.pending) == after
    assert (await sales.identify(member.card, now)).balance.active == after[0]
    assert await _history_sum(member.account_id) == after[0]
    assert await verify_all() == []


async def test_over_http_the_till_the_shopper_and_the_operator_see_one_figure(http, shop, shopper_factory) -> None:
    """Points that burnt yesterday, and no settle since: every surface already leaves them out."""
    from backend.admin.auth import create_operator_key
    from tests.factories import unique

    shopper = await shopper_factory()
    rows = await LedgerEntry.raw(
        "SELECT a.id FROM card c JOIN account a ON a.membership = c.membership WHERE c.number = {}", shopper.card)
    account_id = rows[0]["id"]
    real_now = dt.datetime.now(dt.UTC)
    long_ago = real_now - dt.timedelta(days=60)
    async with DB.transaction():
        state = await ops.lock_account(account_id, long_ago)
        await ops.accrue(state, 589, long_ago, kind="adjust", source="adjust", activates_at=long_ago,
                         expires_at=real_now + dt.timedelta(days=300), reason="goodwill")
        await ops.accrue(state, 67, long_ago, kind="adjust", source="adjust", activates_at=long_ago,
                         expires_at=real_now - dt.timedelta(days=1), reason="promo")
    base = await account_balance(account_id)  # the stored row still counts the burnt 67: nothing settled yet
    history = (await shopper.get("/history", params={"limit": 100})).json()
    assert sum(i["amount"] for i in history["items"] if i["bucket"] == "active") == base[0] - 67
    balance = (await shopper.get("/balance")).json()
    identified = (await http.post("/pos/v1/identify", headers=shop.headers, json={"scan": shopper.card})).json()
    key = (await create_operator_key(unique("support"), ["support"])).key
    membership = (await LedgerEntry.raw("SELECT membership FROM card WHERE number = {}", shopper.card))[0]["membership"]
    operator_view = (await http.get(f"/admin/v1/members/{membership}/history",
                                    headers={"Authorization": f"Bearer {key}"})).json()
    figures = {balance["active"], identified["balance"]["active"], operator_view["balance"]["active"],
               (await account_balance(account_id))[0], await _history_sum(account_id)}
    assert figures == {base[0] - 67}
