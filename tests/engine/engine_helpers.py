"""Builders for engine tests: a shop, a shopper, a basket, a program - in as few words as possible."""

from __future__ import annotations

import datetime as dt

from loyalty_core.engine import (
    Basket,
    BasketLine,
    CompiledProgram,
    CouponInput,
    MemberInfo,
    Payment,
    PricedBasket,
    PricingContext,
    ProgramSettings,
    Rule,
    RuleGroup,
    StoreInfo,
    TierDef,
    compile_program,
    price,
    validate_program,
)
from loyalty_core.engine.program import ProgramRules

UTC = dt.UTC
# Monday 23 November 2026, 12:00 in Moscow (the default store's zone).
MONDAY_NOON = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

TIERS = [
    TierDef(code="plain", name="Plain", rank=0, threshold_spend_minor=0, accrual_bp=0),
    TierDef(code="basic", name="Basic", rank=1, threshold_spend_minor=0, accrual_bp=300),
    TierDef(code="silver", name="Silver", rank=2, threshold_spend_minor=3_000_000, accrual_bp=500),
    TierDef(code="gold", name="Gold", rank=3, threshold_spend_minor=10_000_000, accrual_bp=700),
]


def line(
    no: int, amount: int, *, qty: int = 1, sku: str | None = None, cats: tuple[str, ...] = (), **kw
) -> BasketLine:
    """A piece-goods line: qty pieces, `amount` in kopecks for the whole line."""
    return BasketLine(
        line_no=no,
        sku=sku or f"sku-{no}",
        quantity_milli=qty * 1000,
        price=amount // qty,
        amount=amount,
        category_codes=list(cats),
        **kw,
    )


def weighed(no: int, grams: int, price_per_kg: int, *, cats: tuple[str, ...] = (), **kw) -> BasketLine:
    return BasketLine(
        line_no=no,
        sku=f"sku-{no}",
        quantity_milli=grams,
        price=price_per_kg,
        amount=grams * price_per_kg // 1000,
        category_codes=list(cats),
        **kw,
    )


def basket(
    *lines: BasketLine,
    redeem: int = 0,
    coupons: list[CouponInput] | None = None,
    paid_with: str | None = None,
) -> Basket:
    payments = [Payment(type=paid_with, amount=sum(li.amount for li in lines))] if paid_with else []
    return Basket(lines=list(lines), redeem_points=redeem, coupons=coupons or [], payments=payments)


def member(tier: str = "plain", **kw) -> MemberInfo:
    return MemberInfo(membership_id=kw.pop("membership_id", "m-1"), tier_code=tier, **kw)


def context(
    shopper: MemberInfo | None = None,
    *,
    now: dt.datetime = MONDAY_NOON,
    balance: int = 0,
    store: StoreInfo | None = None,
    channel: str = "store",
    accrued_today: int = 0,
    lang: str = "en",
) -> PricingContext:
    return PricingContext(
        now=now,
        store=store or StoreInfo(code="S1", region="msk", format="supermarket", timezone="Europe/Moscow"),
        channel=channel,
        member=shopper,
        balance_active=balance,
        accrued_today=accrued_today,
        lang=lang,
    )


def group(
    stage: str, *rules: Rule, mode: str = "stack", cascade: bool = False, code: str | None = None, **kw
) -> RuleGroup:
    return RuleGroup(
        code=code or f"{stage}-{mode}",
        name=stage,
        stage=stage,
        mode=mode,
        cascade=cascade,
        rules=list(rules),
        **kw,
    )


def rule(code: str, effect, **kw) -> Rule:
    return Rule(code=code, name=kw.pop("name", code.replace("-", " ").capitalize()), effect=effect, **kw)


def program(*groups: RuleGroup, **settings) -> CompiledProgram:
    """Validated and compiled, as the till service would get it from its cache."""
    settings.setdefault("tiers", TIERS)
    settings.setdefault("excluded_categories", ["tobacco"])
    rules = ProgramRules(version=7, settings=ProgramSettings(**settings), groups=list(groups))
    return compile_program(validate_program(rules))


def per_line(result: PricedBasket, field: str) -> list[int]:
    return [getattr(li, field) for li in result.lines]


def applied(result: PricedBasket, code: str):
    found = [a for a in result.applied if a.rule == code]
    assert found, f"{code} not applied; trace: {result.trace}"
    return found[0]


def run(prog: CompiledProgram, b: Basket, ctx: PricingContext | None = None) -> PricedBasket:
    return price(b, ctx or context(member()), prog)
