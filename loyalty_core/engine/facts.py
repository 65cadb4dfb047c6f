"""Facts about one basket, built once per call: what conditions, targeting and filters read."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from loyalty_core.engine.basket import Basket, MemberInfo, PricingContext
from loyalty_core.engine.compiled import CompiledProgram, LineInfo
from loyalty_core.engine.conditions import Facts


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def units_of(quantity_milli: int) -> int:
    """Pieces on a line; a weighed line (1.5 kg) counts as one item."""
    if quantity_milli >= 1000 and quantity_milli % 1000 == 0:
        return quantity_milli // 1000
    return 1


def line_infos(basket: Basket, program: CompiledProgram) -> list[LineInfo]:
    infos = []
    excluded_skus, excluded_categories = program.excluded_skus, program.excluded_categories
    for index, line in enumerate(basket.lines):
        categories = frozenset(line.category_codes)
        excluded = (
            line.excluded
            or line.sku in excluded_skus
            or not excluded_categories.isdisjoint(categories)
        )
        infos.append(
            LineInfo(
                index=index,
                line_no=line.line_no,
                sku=line.sku,
                price=line.price,
                amount=line.amount,
                quantity_milli=line.quantity_milli,
                units=units_of(line.quantity_milli),
                categories=categories,
                brand=line.brand,
                own_brand=line.own_brand,
                excluded=excluded,
            )
        )
    return infos


def days_to_birthday(birth_date: dt.date, today: dt.date) -> int:
    """Distance in days to the nearest birthday (this, last or next year); 29 Feb -> 28 Feb."""
    best = 366
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            day = birth_date.replace(year=year)
        except ValueError:
            day = dt.date(year, 2, 28)
        best = min(best, abs((day - today).days))
    return best


def _age(birth_date: dt.date, today: dt.date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def _member_facts(facts: Facts, member: MemberInfo, ctx: PricingContext, today: dt.date) -> None:
    facts["member.registered"] = 1 if member.registered else 0
    facts["member.purchases_count"] = member.purchases_count
    facts["member.balance"] = ctx.balance_active
    facts["member.accrued_today"] = ctx.accrued_today
    facts["member.segments"] = frozenset(member.segments)
    facts["member.favourites"] = frozenset(member.favourite_categories)
    if member.last_purchase_at is not None:
        facts["member.days_since_last_purchase"] = (ctx.now - member.last_purchase_at).days
    if member.joined_at is not None:
        facts["member.days_since_joined"] = (ctx.now - member.joined_at).days
    if member.birth_date is not None:
        facts["member.days_to_birthday"] = days_to_birthday(member.birth_date, today)
        facts["member.age"] = _age(member.birth_date, today)
        if member.birth_date_known_since is not None:
            facts["member.birth_date_known_days"] = (ctx.now - member.birth_date_known_since).days
    for name, value in member.purchases_in_period.items():
        facts[f"member.counter.{name}"] = value
    for name, value in member.attributes.items():
        facts[f"member.attr.{name}"] = value


def basket_facts(
    basket: Basket, ctx: PricingContext, program: CompiledProgram, lines: list[LineInfo]
) -> Facts:
    if ctx.now.tzinfo is None:
        raise ValueError("PricingContext.now must be timezone-aware")
    local = ctx.now.astimezone(_zone(ctx.store.timezone))
    today = local.date()
    amount = sum([line.amount for line in lines if not line.excluded])
    valid = [c for c in basket.coupons if c.valid]
    facts: Facts = {
        "basket.amount": amount,
        "basket.to_pay": amount,
        "basket.lines": len(basket.lines),
        "basket.items": sum([line.units for line in lines]),
        "basket.redeem_points": basket.redeem_points,
        "basket.coupons": len(valid),
        "basket.payment_types": frozenset([p.type for p in basket.payments if p.amount > 0]),
        "basket.coupon_series": frozenset([c.series for c in valid if c.series]),
        "basket.coupon_codes": frozenset([c.code for c in valid]),
        "member.favourites": frozenset(),
        "store.code": ctx.store.code,
        "store.region": ctx.store.region,
        "store.format": ctx.store.format,
        "channel": ctx.channel,
        "time.date": today,
        "time.hour": local.hour,
        "time.minute": local.minute,
        "time.weekday": local.isoweekday(),
        "time.day": local.day,
        "time.month": local.month,
    }
    for name, value in ctx.store.attributes.items():
        facts[f"store.attr.{name}"] = value
    member = ctx.member
    if member is not None:
        _member_facts(facts, member, ctx, today)
        facts["program.birth_date_known_days"] = program.settings.birth_date_known_days
        tier = program.tiers.get(member.tier_code or "") or program.default_tier
        if tier is not None:
            facts["member.tier"] = tier.code
    return facts
