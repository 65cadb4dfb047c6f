"""Tiers by points-earning spend over a rolling window (not by balance); the card number never changes."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core.tables import Membership, Tier

TIER_WINDOW = dt.timedelta(days=365)


class TierChange(msgspec.Struct, frozen=True):
    membership_id: int
    old_code: str | None
    new_code: str
    new_name: str
    up: bool


async def assign_initial_tier(membership_id: int, program_id: int) -> None:
    await Membership.raw(
        "UPDATE membership SET tier = (SELECT id FROM tier WHERE program = {} ORDER BY threshold_spend, rank LIMIT 1) "
        "WHERE id = {} AND tier IS NULL",
        program_id, membership_id,
    )


async def recompute_tier(
    membership_id: int, program_id: int, as_of: dt.datetime, purchase_at: dt.datetime | None = None
) -> TierChange | None:
    """Spend over the window ending `as_of` decides the tier; returns the change, if any.

    With `purchase_at`, the same statement counts the purchase on the membership (one round trip
    on the till's hot path). Runs in the caller's transaction.
    """
    rows = await Membership.raw(
        "WITH spend AS (SELECT COALESCE(SUM(earning_spend - returned_earning_spend), 0) AS s FROM sale "
        "WHERE membership = {} AND status = 'confirmed' AND occurred_at > {}), "
        "best AS (SELECT t.id, t.code, t.name, t.rank FROM tier t, spend WHERE t.program = {} AND t.threshold_spend <= spend.s "
        "ORDER BY t.threshold_spend DESC, t.rank DESC LIMIT 1), "
        "old AS (SELECT t.code, t.rank FROM membership m JOIN tier t ON t.id = m.tier WHERE m.id = {}) "
        "UPDATE membership m SET tier_spend = spend.s, tier = COALESCE(best.id, m.tier), "
        "purchases_count = m.purchases_count + CASE WHEN {}::timestamptz IS NULL THEN 0 ELSE 1 END, "
        "first_purchase_at = COALESCE(m.first_purchase_at, {}::timestamptz), "
        "last_purchase_at = GREATEST(m.last_purchase_at, {}::timestamptz) "
        "FROM spend LEFT JOIN best ON true WHERE m.id = {} "
        "RETURNING best.id AS tier_id, best.code, best.name, best.rank, "
        "(SELECT code FROM old) AS old_code, (SELECT rank FROM old) AS old_rank",
        membership_id, as_of - TIER_WINDOW, program_id, membership_id,
        purchase_at, purchase_at, purchase_at, membership_id,
    )
    row = rows[0]
    if row["tier_id"] is None or row["code"] == row["old_code"]:
        return None
    return TierChange(
        membership_id=membership_id, old_code=row["old_code"], new_code=row["code"], new_name=row["name"],
        up=row["old_rank"] is None or row["rank"] > row["old_rank"],
    )


async def next_tier(program_id: int, spend: int) -> dict | None:
    return await (
        Tier.select(Tier.code, Tier.name, Tier.threshold_spend)
        .where((Tier.program == program_id) & (Tier.threshold_spend > spend))
        .order_by(Tier.threshold_spend)
        .first()
    )


async def recompute_lapsed_tiers(now: dt.datetime, lookback: dt.timedelta = dt.timedelta(days=7)) -> list[TierChange]:
    """Tiers fall when old spend leaves the window, without any sale to notice: the settle job runs this.

    Memberships with a confirmed sale that left the window within `lookback` are recomputed (safe to
    repeat: a recompute that changes nothing reports nothing). Each change queues a message.
    """
    from loyalty_core.piccolo_conf import DB
    from loyalty_core.services import outbox

    edge = now - TIER_WINDOW
    rows = await Membership.raw(
        "SELECT DISTINCT s.membership, m.program, m.customer FROM sale s JOIN membership m ON m.id = s.membership "
        "WHERE s.status = 'confirmed' AND s.occurred_at <= {} AND s.occurred_at > {}",
        edge, edge - lookback,
    )
    changes = []
    for row in rows:
        async with DB.transaction():
            await Membership.raw("SELECT id FROM membership WHERE id = {} FOR UPDATE", row["membership"])
            change = await recompute_tier(row["membership"], row["program"], now)
            if change is not None:
                changes.append(change)
                if row["customer"] is not None:
                    await outbox.enqueue("tier_changed", {"tier": change.new_code, "name": change.new_name, "up": change.up},
                                         customer_id=row["customer"])
    return changes
