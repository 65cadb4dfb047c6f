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
    membership_id: int, program_id: int, as_of: dt.datetime, *, customer_id: int | None = None
) -> TierChange | None:
    """Spend over the window (as_of - 12 months, as_of] decides the tier, whatever order sales arrived in, plus an
    imported legacy spend while its carry lasts (membership.carried_until);
    returns the change, if any, and queues `tier_changed` to `customer_id` then. Written by the ledger
    writer (the one copy of the tier's SQL; a confirm and a return recompute it in their own statement).
    Runs in the caller's transaction."""
    from loyalty_core.ledger import writer
    from loyalty_core.ledger.posting import MemberChange, Posting

    written = await writer.write(Posting(account=None, version=0, at=as_of, member=MemberChange(
        membership=membership_id, program=program_id, window_start=as_of - TIER_WINDOW, as_of=as_of,
        customer=customer_id)))
    if not written.tier_changed:
        return None
    return TierChange(membership_id=membership_id, old_code=written.tier_old_code, new_code=written.tier_code or "",
                      new_name=written.tier_name or "", up=written.tier_up)


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
    till with a clock ahead sends), or an imported legacy spend stopped counting (carried_until in (since, now]).
    Without `since` (the first pass, or a lost watermark) every membership whose stored spend differs from its
    window's (plus a carry that still runs) is recomputed. Safe to repeat; each change queues a message.
    """
    from loyalty_core.piccolo_conf import DB

    edge = now - TIER_WINDOW
    if since is None:
        rows = await Membership.raw(
            "WITH w AS (SELECT membership, SUM(earning_spend - returned_earning_spend) AS s FROM sale "
            "WHERE status = 'confirmed' AND membership IS NOT NULL AND occurred_at > {} AND occurred_at <= {} "
            "GROUP BY membership) "
            "SELECT m.id AS membership, m.program, m.customer FROM membership m LEFT JOIN w ON w.membership = m.id "
            "WHERE m.tier_spend <> COALESCE(w.s, 0) + CASE WHEN m.carried_until > {} THEN m.carried_spend ELSE 0 END "
            "ORDER BY m.id",
            edge, now, now,
        )
    else:
        rows = await Membership.raw(
            "SELECT DISTINCT s.membership, m.program, m.customer FROM sale s JOIN membership m ON m.id = s.membership "
            "WHERE s.status = 'confirmed' AND ((s.occurred_at <= {} AND s.occurred_at > {}) "
            "OR (s.occurred_at <= {} AND s.occurred_at > {})) "
            # an imported legacy spend whose carry ended since the last pass (docs/import.md)
            "UNION SELECT m.id, m.program, m.customer FROM membership m WHERE m.carried_until <= {} AND m.carried_until > {} "
            "ORDER BY 1",
            edge, min(since, now) - TIER_WINDOW, now, min(since, now), now, min(since, now),
        )
    changes = []
    for row in rows:
        async with DB.transaction():
            await Membership.raw("SELECT id FROM membership WHERE id = {} FOR UPDATE", row["membership"])
            change = await recompute_tier(row["membership"], row["program"], now, customer_id=row["customer"])
            if change is not None:
                changes.append(change)
    return changes
