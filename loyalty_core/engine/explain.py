"""Sentences a cashier or a shopper understands: "Gold tier: 7% on 1 250.00 RUB = 87 points".

The same function makes the receipt-level sentence (totals) and the per-line one (the line's
share), so both read alike. English only for now; `lang` is accepted for the day we add more.
"""

from __future__ import annotations

from functools import lru_cache

from loyalty_core.engine import money
from loyalty_core.engine.effects import (
    AmountDiscount,
    Bogo,
    CheapestItemBonus,
    Effect,
    FixedPoints,
    LadderDiscount,
    MForN,
    Multiplier,
    NthItemFree,
    PercentDiscount,
    PercentPoints,
    PointsPerAmount,
    PointsPerItem,
    SetPrice,
    ThresholdDiscount,
)

# A receipt formats the same line amounts and rates for many rules: memoise the formatting.
format_money = lru_cache(maxsize=4096)(money.format_money)
format_bp = lru_cache(maxsize=1024)(money.format_bp)
format_factor = lru_cache(maxsize=256)(money.format_factor)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def discount_sentence(
    name: str, effect: Effect, base: int, discount: int, currency: str, lang: str = "en"
) -> str:
    """base: what the lines cost before this discount; discount: what it took off."""
    off = f"-{format_money(discount, currency)}"
    on = format_money(base, currency)
    if isinstance(effect, PercentDiscount):
        return f"{name}: {format_bp(effect.bp)} off {on} = {off}"
    if isinstance(effect, ThresholdDiscount):
        return f"{name}: receipt discount on {on} = {off}"
    if isinstance(effect, AmountDiscount):
        return f"{name}: {format_money(effect.amount, currency)} off the receipt, on {on} = {off}"
    if isinstance(effect, LadderDiscount):
        steps = ", ".join(format_bp(bp) for bp in effect.steps_bp)
        return f"{name}: discount by item position ({steps}) on {on} = {off}"
    if isinstance(effect, NthItemFree):
        return f"{name}: every {_ordinal(effect.n)} item free, {off}"
    if isinstance(effect, MForN):
        return f"{name}: {effect.m} for the price of {effect.n}, {off}"
    if isinstance(effect, Bogo):
        gift = "free" if effect.get_bp >= 10_000 else f"{format_bp(effect.get_bp)} off"
        return f"{name}: buy {effect.buy_quantity}, get {effect.get_quantity} {gift}, {off}"
    if isinstance(effect, SetPrice):
        return f"{name}: set for {format_money(effect.price, currency)}, {off}"
    return f"{name}: {off}"


def tier_sentence(tier_name: str, bp: int, paid: int, points: int, currency: str, lang: str = "en") -> str:
    return f"{tier_name} tier: {format_bp(bp)} on {format_money(paid, currency)} = {_points(points)}"


def points_sentence(
    name: str, effect: Effect, paid: int, units: int, points: int, currency: str, lang: str = "en"
) -> str:
    """paid: what the lines are paid with money; units: pieces on them."""
    got = _points(points)
    if isinstance(effect, PercentPoints):
        return f"{name}: {format_bp(effect.bp)} on {format_money(paid, currency)} = {got}"
    if isinstance(effect, PointsPerItem):
        return f"{name}: {_points(effect.points)} x {units} pcs = {got}"
    if isinstance(effect, PointsPerAmount):
        each = format_money(effect.per_amount, currency)
        return f"{name}: {_points(effect.points)} for each {each} of {format_money(paid, currency)} = {got}"
    if isinstance(effect, Multiplier):
        return f"{name}: tier points {format_factor(effect.factor_bp)} = +{got}"
    if isinstance(effect, CheapestItemBonus):
        return f"{name}: cheapest item +{format_bp(effect.bp)} on {format_money(paid, currency)} = {got}"
    if isinstance(effect, FixedPoints):
        return f"{name}: bonus {got}"
    return f"{name}: {got}"
