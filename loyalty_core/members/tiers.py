"""Tiers by points-earning spend over a rolling window (not by balance); the card number never changes."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import db
from loyalty_core.tables import Tier

TIER_WINDOW = dt.timedelta(days=365)

# --- the statements ------------------------------------------------------------------------------------------

ASSIGN_INITIAL_TIER = (
    "UPDATE membership SET tier = (SELECT id FROM tier WHERE program = $1 ORDER BY threshold_spend, rank LIMIT 1) "
    "WHERE id = $2 AND tier IS NULL"
)
# every membership whose stored spend differs from its window's (occurred_at in ($1, $2]) plus a carry running at $3
SPEND_DIFFERS = (
    "WITH w AS (SELECT membership, SUM(earning_spend - returned_earning_spend) AS s FROM sale "
    "WHERE status = 'confirmed' AND membership IS NOT NULL AND occurred_at > $1 AND occurred_at <= $2 "
    "GROUP BY membership) "
    "SELECT m.id AS membership, m.program, m.customer FROM membership m LEFT JOIN w ON w.membership = m.id "
    "WHERE m.tier_spend <> COALESCE(w.s, 0) + CASE WHEN m.carried_until > $3 THEN m.carried_spend ELSE 0 END "
    "ORDER BY m.id"
)
# a sale left the window (occurred_at in ($2, $1]) or entered it (in ($4, $3]), or a carry ended (in ($6, $5])
WINDOW_CHANGED = (
    "SELECT DISTINCT s.membership, m.program, m.customer FROM sale s JOIN membership m ON m.id = s.membership "
    "WHERE s.status = 'confirmed' AND ((s.occurred_at <= $1 AND s.occurred_at > $2) "
    "OR (s.occurred_at <= $3 AND s.occurred_at > $4)) "
    # an imported legacy spend whose carry ended since the last pass (docs/import.md)
    "UNION SELECT m.id, m.program, m.customer FROM membership m WHERE m.carried_until <= $5 AND m.carried_until > $6 "
    "ORDER BY 1"
)
LOCK_MEMBERSHIP = "SELECT id FROM membership WHERE id = $1 FOR UPDATE"
LAST_TIER_UP = (
    "SELECT id, payload->>'tier' AS code, created_at FROM notification "
    "WHERE customer = $1 AND kind = 'tier_changed' AND created_at > $2 AND (payload->>'up')::boolean "
    "ORDER BY created_at DESC, id DESC LIMIT 1"
)
TIER_HELD = (
    "SELECT t.code, t.threshold_spend, m.tier_spend, m.carried_spend, m.carried_until "
    "FROM membership m JOIN tier t ON t.id = m.tier WHERE m.id = $1"
)
LEAVING_WINDOW = (
    "SELECT occurred_at, earning_spend - returned_earning_spend AS amount FROM sale WHERE membership = $1 "
    "AND status = 'confirmed' AND occurred_at > $2 AND occurred_at <= $3"
)


class TierChange(msgspec.Struct, frozen=True):
    membership_id: int
    old_code: str | None
    new_code: str
    new_name: str
    up: bool


async def assign_initial_tier(membership_id: int, program_id: int) -> None:
    await db.fetch(ASSIGN_INITIAL_TIER, program_id, membership_id)


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
        rows = await db.fetch(SPEND_DIFFERS, edge, now, now)
    else:
        last = min(since, now)
        rows = await db.fetch(WINDOW_CHANGED, edge, last - TIER_WINDOW, now, last, now, last)
    changes = []
    for row in rows:
        async with DB.transaction():
            await db.fetch(LOCK_MEMBERSHIP, row["membership"])
            change = await recompute_tier(row["membership"], row["program"], now, customer_id=row["customer"])
            if change is not None:
                changes.append(change)
    return changes


# --- what the shopper's dashboard says about the tier --------------------------------------------------------


class TierReached(msgspec.Struct, frozen=True, kw_only=True):
    message_id: int  # the `tier_changed` message the ledger writer queued with the change (dismissed by it)
    code: str
    reached_at: dt.datetime


class TierAtRisk(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    spend_needed: int  # minor units to buy before `by` to keep the tier
    by: dt.datetime


async def tier_reached(customer_id: int, current_code: str, since: dt.datetime) -> TierReached | None:
    """The latest move up to the member's current tier after `since`, from the message the ledger writer queued in
    the sale's own transaction (so only a committed change is seen, and nothing in the till's path changes)."""
    row = await db.fetchrow(LAST_TIER_UP, customer_id, since)
    if row is None or row["code"] != current_code:  # moved again since (down, or another program's tier)
        return None
    return TierReached(message_id=row["id"], code=row["code"], reached_at=row["created_at"])


def first_drop(spend: int, threshold: int, drops: list[tuple[dt.datetime, int]]) -> tuple[dt.datetime, int] | None:
    """When the window's spend first falls below the tier's threshold as its oldest purchases (and a legacy carry)
    leave it, and how much buying before then keeps the tier at that moment; None if it never does."""
    for at, amount in sorted(drops):
        spend -= amount
        if spend < threshold:
            return at, threshold - spend
    return None


async def tier_at_risk(membership_id: int, as_of: dt.datetime, days: int) -> TierAtRisk | None:
    """The member's tier would be lost within `days`: the window ((t - 12 months, t], the same as `recompute_tier`'s)
    loses purchases as t moves on, and a legacy carry ends at `carried_until`; the first moment the spend left falls
    below the tier's threshold is the date to buy by. The marketing's "tier at risk" message asks the same question
    for a whole program."""
    ahead = as_of + dt.timedelta(days=days)
    row = await db.fetchrow(TIER_HELD, membership_id)
    if row is None or row["threshold_spend"] <= 0 or row["tier_spend"] < row["threshold_spend"]:
        return None
    leaving = await db.fetch(LEAVING_WINDOW, membership_id, as_of - TIER_WINDOW, ahead - TIER_WINDOW)
    drops = [(r["occurred_at"] + TIER_WINDOW, int(r["amount"])) for r in leaving]
    if row["carried_until"] is not None and as_of < row["carried_until"] <= ahead and row["carried_spend"]:
        drops.append((row["carried_until"], int(row["carried_spend"])))
    found = first_drop(int(row["tier_spend"]), int(row["threshold_spend"]), drops)
    if found is None:
        return None
    return TierAtRisk(code=row["code"], spend_needed=found[1], by=found[0])
