"""A legacy tier survives the member's first purchase: the legacy spend is carried (membership.carried_spend) and
counts in the tier's window until carried_until; then the tier follows the spend Kopilka saw."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import msgspec

from loyalty_core.members.tiers import recompute_lapsed_tiers
from loyalty_core.till import sales
from loyalty_core.till.types import SaleIn
from tests.factories import Shop, sale_body
from tests.imports.legacy import apply, membership, phone, write


async def _buy(shop: Shop, card: str, rub: int, when: dt.datetime) -> None:
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, [("bread", 1, rub * 100)], card=card, when=when), SaleIn)
    await sales.confirm_sale(body, till, when, offline=True)


async def test_an_imported_gold_member_keeps_gold_at_the_first_purchase_until_the_carry_ends(shop: Shop,
                                                                                            tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    src = write(tmp_path / "x", {
        "members.csv": [{"legacy_id": f"{tag}-1", "phone": phone()}, {"legacy_id": f"{tag}-2", "phone": phone()}],
        # the legacy system's gold came at 50 000 RUB; Kopilka's gold starts at 100 000 RUB
        "tiers.csv": [{"member": f"{tag}-1", "tier": "gold", "spend": "50 000,00"},
                      {"member": f"{tag}-2", "tier": "gold", "spend": "150 000"}],
    })
    rec = await apply(shop, src, now)
    assert rec.balanced, rec
    first = await membership(shop, f"{tag}-1")
    assert first["tier"] == "gold" and first["carried_spend"] == 10_000_000  # raised to gold's threshold
    assert first["carried_until"] == now + dt.timedelta(days=365) and first["tier_spend"] == 10_000_000
    assert (await membership(shop, f"{tag}-2"))["carried_spend"] == 15_000_000

    await _buy(shop, first["card"], 50, now + dt.timedelta(minutes=1))  # the ledger writer recomputes the tier
    after_buy = await membership(shop, f"{tag}-1")
    assert after_buy["tier"] == "gold" and after_buy["tier_spend"] == 10_005_000

    # a year and a day later the carry has ended: the tier is what Kopilka's own window holds
    later = now + dt.timedelta(days=366)
    await _buy(shop, first["card"], 70, later)
    assert (await membership(shop, f"{tag}-1"))["tier"] == "basic"
    assert (await membership(shop, f"{tag}-1"))["tier_spend"] == 7_000
    # a member who bought nothing is lowered by the settle job's tier pass, which finds the carries that ended
    changes = await recompute_lapsed_tiers(later, since=now + dt.timedelta(days=300))
    second = await membership(shop, f"{tag}-2")
    assert second["tier"] == "basic" and second["tier_spend"] == 0
    assert [(c.new_code, c.up) for c in changes if c.membership_id == second["id"]] == [("basic", False)]


async def test_the_first_tier_pass_without_a_watermark_keeps_a_carry_that_still_runs(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    src = write(tmp_path / "x", {"members.csv": [{"legacy_id": f"{tag}-1", "phone": phone()}],
                                 "tiers.csv": [{"member": f"{tag}-1", "tier": "silver", "spend": "45 000"}]})
    assert (await apply(shop, src, now)).balanced
    await recompute_lapsed_tiers(now + dt.timedelta(days=10))  # every member whose stored spend differs
    member = await membership(shop, f"{tag}-1")
    assert member["tier"] == "silver" and member["tier_spend"] == 4_500_000


async def test_a_carried_tier_is_not_at_risk_until_the_carry_is_about_to_end(tmp_path: Path) -> None:
    from loyalty_core import db
    from loyalty_core.marketing.events import run_member_events
    from tests.factories import basic_rules, make_shop

    shop = await make_shop(basic_rules(tier_at_risk_days=30))
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    src = write(tmp_path / "x", {"members.csv": [{"legacy_id": f"{tag}-1", "phone": phone()}],
                                 "tiers.csv": [{"member": f"{tag}-1", "tier": "gold", "spend": "120 000"}]})
    assert (await apply(shop, src, now)).balanced
    member = await membership(shop, f"{tag}-1")

    async def told() -> int:
        row = await db.fetchrow("SELECT count(*) n FROM notification WHERE customer = $1 AND kind = 'tier_at_risk'",
                                member["customer"])
        return row["n"]  # type: ignore[index]

    await run_member_events(now)  # the carry runs for a year: nothing is at risk in the next 30 days
    assert await told() == 0
    await run_member_events(now + dt.timedelta(days=340))  # 30 days from then the carry has ended
    assert await told() == 1
