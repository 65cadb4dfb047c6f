"""Simulate: what the till would answer for a basket and a member, under the live rules or a draft,
with the engine's trace. Reads only, writes nothing.

The member is an existing one (card number or membership id: their tier, segments, counters, balance
as the till would see them) or a described one (a marketer's "Gold member on her birthday with 800
points"). The draft is a whole rules document or one group that replaces (or joins) the live group
of the same code; it is validated like a publish and compiled for this request only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from loyalty_core.engine import (
    AppliedRule,
    Basket,
    MemberInfo,
    Payment,
    PricingContext,
    RedeemLimitExceeded,
    StoreInfo,
    TraceEntry,
    compile_program,
    price,
)
from loyalty_core.errors import InsufficientPoints, NotFound, RedeemLimit, ValidationFailed
from loyalty_core.ledger.ops import BalanceOut
from loyalty_core.ledger import ops
from loyalty_core.rules import programs
from loyalty_core.rules import admin as rules_admin
from loyalty_core.till.identify import CardContext, resolve_scan
from loyalty_core.till.pricing import accrued_today, basket_lines, coupon_inputs, member_info, store_info
from loyalty_core.till.types import (
    AwareDateTime,
    CalculationOut,
    Channel,
    PaymentIn,
    Points,
    SaleIn,
    SaleLineIn,
)
from loyalty_core.till.sales import calculation_out
from loyalty_core.tables import Card, Program, Store

Code = Annotated[str, Meta(min_length=1, max_length=64)]


class DescribedMember(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tier: Code | None = None
    segments: list[Code] = []
    birth_date: dt.date | None = None
    favourite_categories: list[Code] = []
    purchases_count: Annotated[int, Meta(ge=0)] = 0  # confirmed purchases before this one
    purchases_in_period: dict[str, Annotated[int, Meta(ge=0)]] = {}  # counters named in the settings
    balance: Points = 0  # active points
    registered: bool = True
    last_purchase_at: AwareDateTime | None = None
    joined_at: AwareDateTime | None = None


class SimulationIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    lines: Annotated[list[SaleLineIn], Meta(min_length=1, max_length=1000)]
    program: Code | None = None  # default: the member's program, else the first one
    card: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
    membership_id: Annotated[int, Meta(ge=1)] | None = None
    member: DescribedMember | None = None
    store: Code | None = None  # a store's code: its time zone, region, format; default: none in particular
    occurred_at: AwareDateTime | None = None  # default: now (happy hours are checked at this moment)
    channel: Channel = "store"
    coupons: Annotated[list[Code], Meta(max_length=20)] = []
    redeem_points: Points = 0
    payments: Annotated[list[PaymentIn], Meta(max_length=20)] = []
    rules: dict[str, Any] | None = None  # a whole draft document
    group: dict[str, Any] | None = None  # one draft group, tried in place of the live one


class SimulationOut(msgspec.Struct, kw_only=True):
    result: CalculationOut  # exactly what the till's calculate would answer
    applied: list[AppliedRule]  # with a sentence per line
    trace: list[TraceEntry]  # every rule considered: fired or why not
    issued_coupons: list[str]  # coupon series a rule would issue
    member: MemberInfo | None  # the facts the engine saw
    rules_version: int | None  # the live version used; None for a draft
    draft: bool


async def _program_id(sim: SimulationIn, card: CardContext | None) -> tuple[int, int, str]:
    if card is not None:
        if sim.program is not None and sim.program != await _program_code(card.program_id):
            raise ValidationFailed(f"the member belongs to another program than {sim.program!r}")
        return card.program_id, card.rules_version, card.program_timezone
    query = Program.select(Program.id, Program.rules_version, Program.timezone)
    row = await (query.where(Program.code == sim.program) if sim.program else query.order_by(Program.id)).first()
    if row is None:
        raise NotFound(f"program {sim.program!r} does not exist" if sim.program else "no loyalty program is configured")
    return row["id"], row["rules_version"], row["timezone"]


async def _card_of_membership(membership_id: int, now: dt.datetime) -> CardContext:
    row = await (
        Card.select(Card.number)
        .where((Card.membership == membership_id) & (Card.status == "active"))
        .order_by(Card.id, ascending=False)
        .first()
    )
    if row is None:
        raise NotFound(f"membership {membership_id} has no active card: describe the member instead")
    return await resolve_scan(row["number"], now)


async def _program_code(program_id: int) -> str:
    row = await Program.select(Program.code).where(Program.id == program_id).first()
    return row["code"]  # type: ignore[index, no-any-return]


async def _rules(sim: SimulationIn, program_id: int, version: int) -> tuple[Any, Any, bool]:
    """(document, compiled program, is a draft)."""
    if sim.rules is None and sim.group is None:
        return await programs.rules_document(program_id, version), await programs.compiled_program(program_id, version), False
    if sim.rules is not None:
        document = rules_admin.checked(sim.rules)
    else:
        _, live = await rules_admin.live_raw_document(await _program_code(program_id))
        draft = dict(sim.group or {})
        code = draft.get("code")
        groups = [g for g in live.get("groups", []) if g.get("code") != code]
        document = rules_admin.checked({**live, "groups": [*groups, draft]})
    document = msgspec.structs.replace(document, version=0)
    return document, compile_program(document), True


async def _store(code: str | None, timezone: str) -> StoreInfo:
    if code is None:
        return StoreInfo(code="simulation", timezone=timezone)
    row = await Store.select(Store.id).where(Store.code == code).first()
    if row is None:
        raise NotFound(f"store {code!r} does not exist")
    return await store_info(row["id"])


def _described(member: DescribedMember) -> MemberInfo:
    return MemberInfo(
        membership_id="simulated", registered=member.registered, tier_code=member.tier, segments=list(member.segments),
        birth_date=member.birth_date, favourite_categories=list(member.favourite_categories),
        purchases_count=member.purchases_count, purchases_in_period=dict(member.purchases_in_period),
        last_purchase_at=member.last_purchase_at, joined_at=member.joined_at,
    )


async def simulate(sim: SimulationIn, now: dt.datetime) -> SimulationOut:
    if sum(x is not None for x in (sim.card, sim.membership_id, sim.member)) > 1:
        raise ValidationFailed("name the member once: card, membership_id or member")
    if sim.rules is not None and sim.group is not None:
        raise ValidationFailed("try either a whole rules document or one group, not both")
    when = sim.occurred_at or now
    card = None
    if sim.card is not None:
        card = await resolve_scan(sim.card, now)
    elif sim.membership_id is not None:
        card = await _card_of_membership(sim.membership_id, now)
    program_id, version, timezone = await _program_id(sim, card)
    document, compiled, draft = await _rules(sim, program_id, version)
    sale = SaleIn(receipt_id="simulation", business_date=when.date(), occurred_at=when, lines=sim.lines,
                  channel=sim.channel, coupons=sim.coupons, redeem_points=sim.redeem_points, payments=sim.payments)
    member, active, pending, today = None, 0, 0, 0
    if card is not None:
        member = await member_info(card, document, when)
        if card.account_id is not None:
            balance = await ops.balance(card.account_id, now, card.program_timezone)
            active, pending = balance.active, balance.pending
        if document.settings.max_accrual_per_day is not None:
            today = await accrued_today(card.membership_id, when, card.program_timezone)
    elif sim.member is not None:
        member, active = _described(sim.member), sim.member.balance
    if member is not None and member.registered and sim.redeem_points > active:
        raise InsufficientPoints(f"The member has {active} active points, {sim.redeem_points} were asked", available=active)
    basket = Basket(
        lines=await basket_lines(sale),
        payments=[Payment(type=p.type, amount=p.amount) for p in sim.payments],
        coupons=await coupon_inputs(sim.coupons, card.membership_id if card else None, now),
        redeem_points=sim.redeem_points,
    )
    context = PricingContext(now=when, store=await _store(sim.store, timezone), channel=sim.channel, member=member,
                             balance_active=active, accrued_today=today, lang=compiled.settings.language)
    try:
        priced = price(basket, context, compiled)
    except RedeemLimitExceeded as exc:
        raise RedeemLimit(
            f"At most {exc.max_redeem_points} points can pay for this receipt", max_redeem_points=exc.max_redeem_points
        ) from exc
    after = None
    if member is not None:
        after = BalanceOut(active=active - priced.totals.redeemed_points, pending=pending + priced.totals.accrued_points)
    return SimulationOut(
        result=calculation_out(priced, after, card), applied=priced.applied, trace=priced.trace,
        issued_coupons=priced.issued_coupons, member=member, rules_version=None if draft else version, draft=draft,
    )
