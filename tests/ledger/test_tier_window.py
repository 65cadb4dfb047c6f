"""The tier is the earning spend within (now - 12 months, now], whatever order sales arrive in, and the settle
pass that lowers tiers covers every member whose window changed, however long it did not run."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.till import sales
from loyalty_core.till.types import SaleIn
from loyalty_core.members.tiers import recompute_lapsed_tiers
from loyalty_core.tables import Membership
from tests.factories import make_member, make_shop, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

MSK = dt.timezone(dt.timedelta(hours=3))
T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=MSK)


async def _confirm(shop, member, lines, occurred_at, now, **extra):
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, lines, card=member.card, when=occurred_at, **extra), SaleIn)
    return await sales.confirm_sale(body, till, now, offline=True)


async def _tier(member) -> tuple[str, int]:
    rows = await Membership.raw(
        "SELECT t.code, m.tier_spend FROM membership m JOIN tier t ON t.id = m.tier WHERE m.id = {}", member.membership_id
    )
    return rows[0]["code"], rows[0]["tier_spend"]


async def test_a_late_upload_does_not_bring_back_spend_that_left_the_window(db_pool: None) -> None:
    shop = await make_shop()
    member = await make_member(shop, now=T0)
    await _confirm(shop, member, [("cheese", 35, 100_000)], T0, T0)  # 35 000 RUB: Silver
    assert await _tier(member) == ("silver", 3_500_000)
    later = T0 + dt.timedelta(days=370)
    await recompute_lapsed_tiers(later)
    assert await _tier(member) == ("basic", 0)
    # a till that was offline uploads a small sale from 10 days ago: only it is in the window
    await _confirm(shop, member, [("bread", 1, 4_990)], later - dt.timedelta(days=10), later)
    assert await _tier(member) == ("basic", 4_990)


async def test_the_tier_pass_catches_up_after_missing_weeks(db_pool: None) -> None:
    shop = await make_shop()
    member = await make_member(shop, now=T0)
    await _confirm(shop, member, [("cheese", 35, 100_000)], T0, T0)
    assert await _tier(member) == ("silver", 3_500_000)
    last_pass = T0 + dt.timedelta(days=300)
    await recompute_lapsed_tiers(last_pass)
    # the job did not run for 100 days: the sale left the window 65 days before this pass
    now = T0 + dt.timedelta(days=400)
    changes = await recompute_lapsed_tiers(now, since=last_pass)
    assert [(c.new_code, c.up) for c in changes if c.membership_id == member.membership_id] == [("basic", False)]
    assert await _tier(member) == ("basic", 0)
