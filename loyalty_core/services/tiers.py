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
    """Spend over the window (as_of - 12 months, as_of] decides the tier, whatever order sales arrived in;
    returns the change, if any.

    With `purchase_at`, the same statement counts the purchase on the membership (one round trip
    on the till's hot path). Runs in the caller's transaction.
    """
    rows = await Membership.raw(
        "WITH spend AS (SELECT COALESCE(SUM(earning_spend - returned_earning_spend), 0) AS s FROM sale "
        "WHERE membership = {} AND status = 'confirmed' AND occurred_at > {} AND occurred_at <= {}), "
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
        membership_id, as_of - TIER_WINDOW, as_of, program_id, membership_id,
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


async def recompute_lapsed_tiers(now: dt.datetime, since: dt.datetime | None = None) -> list[TierChange]:
    """Tiers follow the window without any sale to notice: the settle job runs this.

    Recomputes every membership whose window changed since the last pass at `since`: a confirmed sale left
    it (occurred_at in (since - 12 months, now - 12 months]) or entered it (a sale dated after `since`, as a
    till with a clock ahead sends). Without `since` (the first pass, or a lost watermark) every membership
    whose stored spend differs from its window's is recomputed. Safe to repeat; each change queues a message.
    """
    from loyalty_core.piccolo_conf import DB
    from loyalty_core.services import outbox

    edge = now - TIER_WINDOW
    if since is None:
        rows = await Membership.raw(
            "WITH w AS (SELECT membership, SUM(earning_spend - returned_earning_spend) AS s FROM sale "
            "WHERE status = 'confirmed' AND membership IS NOT NULL AND occurred_at > {} AND occurred_at <= {} "
            "GROUP BY membership) "
            "SELECT m.id AS membership, m.program, m.customer FROM membership m LEFT JOIN w ON w.membership = m.id "
            "WHERE m.tier_spend <> COALESCE(w.s, 0) ORDER BY m.id",
            edge, now,
        )
    else:
        rows = await Membership.raw(
            "SELECT DISTINCT s.membership, m.program, m.customer FROM sale s JOIN membership m ON m.id = s.membership "
            "WHERE s.status = 'confirmed' AND ((s.occurred_at <= {} AND s.occurred_at > {}) "
            "OR (s.occurred_at <= {} AND s.occurred_at > {})) ORDER BY s.membership",
            edge, min(since, now) - TIER_WINDOW, now, min(since, now),
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
