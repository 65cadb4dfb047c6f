"""The ledger writer's version guard: a plan priced on an account that changed meanwhile writes nothing.

Two tills read the same card, both plan to spend its points; the first write moves the account's version,
the second is refused as a whole (no lot, entry, balance or message of it lands) with `concurrent-update`.
"""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty_core.ledger import ops, writer
from loyalty_core.ledger.posting import Plan
from loyalty_core.ledger.verify import verify_all
from loyalty_core.piccolo_conf import DB
from tests.factories import account_balance, count_rows, make_member, make_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC)


async def test_a_plan_read_before_another_write_is_refused_whole(db_pool: None) -> None:
    shop = await make_shop()
    member = await make_member(shop, 500, now=T0)
    first, second = (await ops.load_views([member.account_id]))[0], (await ops.load_views([member.account_id]))[0]
    entries = await count_rows("ledger_entry", "account = {}", member.account_id)
    messages = await count_rows("notification")

    a = Plan(first, T0)
    a.spend(400, reason="till 1")
    await writer.write(a.posting())
    b = Plan(second, T0)  # priced on the balance before till 1 spent: it would overspend
    b.spend(400, reason="till 2")
    b.message("points_adjusted", {"points": -400}, customer=None)
    async with DB.transaction():
        with pytest.raises(writer.ConcurrentUpdate) as refused:
            await writer.write(b.posting())
    assert refused.value.as_problem()["type"].endswith("/concurrent-update")
    assert refused.value.status == 409

    assert await account_balance(member.account_id) == (100, 0)
    assert await count_rows("ledger_entry", "account = {}", member.account_id) == entries + 1
    assert await count_rows("notification") == messages
    assert await verify_all() == []


async def test_every_write_moves_the_version(db_pool: None) -> None:
    shop = await make_shop()
    member = await make_member(shop, 100, now=T0)
    before = (await ops.load_views([member.account_id]))[0].version
    async with DB.transaction():
        view = await ops.lock_account(member.account_id, T0)
        await ops.spend(view, 10, T0, reason="one")
        await ops.spend(view, 10, T0, reason="two")  # the view follows its own writes
    assert (await ops.load_views([member.account_id]))[0].version == before + 2 == view.version
