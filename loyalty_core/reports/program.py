"""The program reports: cost per rule, loyalty share per store, active members and registrations, members per tier
and tier moves, coupon redemption. Reads of the aggregates only (the `reports` job keeps them,
program_queries.py); the definitions are in docs/back-office.md."""

from __future__ import annotations

from collections import defaultdict

import msgspec

from loyalty_core import db
from loyalty_core.errors import ValidationFailed
from loyalty_core.replicas import reading
from loyalty_core.reports import program_queries as q
from loyalty_core.reports.finance import period_starts, whole_months
from loyalty_core.reports.rows import (
    Activity,
    CostPerRule,
    CouponRedemption,
    Period,
    ProgramFacts,
    RuleCost,
    StoreShare,
    TierCount,
    TierMoves,
    TierRef,
)


@reading
async def tiers(program_id: int) -> list[TierRef]:
    return [TierRef(r["id"], r["code"], r["name"], r["rank"]) for r in await db.fetch(q.TIERS, program_id)]


async def tier_filter(program_id: int, code: str) -> TierRef | None:
    """The form's tier (a code of the program's tiers; empty: all). Raises ValidationFailed."""
    if not code:
        return None
    for tier in await tiers(program_id):
        if tier.code == code:
            return tier
    raise ValidationFailed("Tier: choose one from the list")


@reading
async def cost_per_rule(facts: ProgramFacts, period: Period, store_id: int | None = None) -> CostPerRule:
    """What each rule gave per period and over the range; with a store, on that store's sales only."""
    asked = (facts.id, period.grain, period.since, period.until)
    found = await (db.fetch(q.RULES, *asked) if store_id is None else db.fetch(q.RULES_AT_STORE, *asked, store_id))
    rows = [msgspec.convert(dict(r), RuleCost) for r in found]
    totals: dict[str, RuleCost] = {}
    for r in rows:
        seen = totals.get(r.rule) or RuleCost(period=None, rule=r.rule, name=r.name, points=0, discount=0, sales=0)
        totals[r.rule] = RuleCost(period=None, rule=r.rule, name=r.name, points=seen.points + r.points,
                                  discount=seen.discount + r.discount, sales=seen.sales + r.sales)
    ranked = sorted(totals.values(), key=lambda r: (-(facts.money(r.points) + r.discount), r.rule))
    if store_id is None:
        first, after = whole_months(period)
        accrued = await db.fetchval(q.LEDGER_SALE_ACCRUALS, facts.id, period.since, period.until, first, after)
    else:
        accrued = await db.fetchval(q.LEDGER_SALE_ACCRUALS_AT_STORE, facts.id, period.since, period.until, store_id)
    return CostPerRule(rows=rows, totals=ranked, ledger_accrued=int(accrued or 0))


@reading
async def loyalty_share(facts: ProgramFacts, period: Period) -> list[StoreShare]:
    """Stores ranked by the share of their sales amount with a card, then of receipts."""
    found = await db.fetch(q.SHARE, facts.id, period.since, period.until)
    shares = [msgspec.convert(dict(r), StoreShare) for r in found]
    return sorted(shares, key=lambda s: (-(s.amount_bp or 0), -(s.receipts_bp or 0), s.name, s.store_id))


@reading
async def activity(facts: ProgramFacts, period: Period, tier_id: int | None = None) -> list[Activity]:
    new: dict[object, dict[str, int]] = defaultdict(dict)
    for r in await db.fetch(q.REGISTRATIONS, facts.id, period.grain, period.since, period.until, tier_id):
        new[r["period"]][r["channel"]] = int(r["registered"])
    active = {r["period"]: int(r["members"])
              for r in await db.fetch(q.ACTIVE, facts.id, period.grain, period.since, period.until, tier_id)}
    registered = int(await db.fetchval(q.REGISTERED_BEFORE, facts.id, period.since, tier_id) or 0)
    out = []
    for start in period_starts(period):
        registered += sum(new[start].values())
        out.append(Activity(period=start, active=active.get(start, 0), registered=registered, new=dict(new[start])))
    return out


@reading
async def tier_counts(facts: ProgramFacts, period: Period, tier_id: int | None = None) -> list[TierCount]:
    """The members per tier at the last count in each period (the refresh counts them; periods before the first
    count have none)."""
    found: dict[object, TierCount] = {}
    for r in await db.fetch(q.TIER_COUNTS, facts.id, period.grain, period.since, period.until, tier_id):
        count = found.get(r["period"]) or TierCount(period=r["period"], counted_on=r["day"], members={})
        count.members[r["tier"]] = int(r["members"])
        found[r["period"]] = TierCount(period=count.period, counted_on=max(count.counted_on, r["day"]),
                                       members=count.members)
    return [found[s] for s in period_starts(period) if s in found]


@reading
async def tier_moves(facts: ProgramFacts, period: Period, tier_code: str | None = None) -> list[TierMoves]:
    moves = {s: TierMoves(period=s, up={}, down={}) for s in period_starts(period)}
    for r in await db.fetch(q.TIER_MOVES, facts.id, period.grain, period.since, period.until, tier_code):
        if int(r["up"]):
            moves[r["period"]].up[r["tier"]] = int(r["up"])
        if int(r["down"]):
            moves[r["period"]].down[r["tier"]] = int(r["down"])
    return list(moves.values())


@reading
async def coupons(facts: ProgramFacts, period: Period) -> list[CouponRedemption]:
    return [msgspec.convert(dict(r), CouponRedemption)
            for r in await db.fetch(q.COUPONS, facts.id, period.since, period.until)]


