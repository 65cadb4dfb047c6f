"""Sentences a cashier or a shopper understands, in the run's language:
"Gold tier: 7% on 1 250.00 RUB = 87 points", "Уровень «Золотой»: 7% от 1 250,00 ₽ = 87 баллов".

Each rule gets an explainer once per receipt, with the parts that do not depend on a line
already written; the receipt-level sentence (totals) and the per-line ones (the line's share)
then come from the same function, so both read alike and a line costs one short f-string.
Rule and tier names are the operator's own, in whatever language they wrote them.
"""

from __future__ import annotations

from collections.abc import Callable

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
from loyalty_core.engine.language import Words

DiscountExplainer = Callable[[int, int], str]  # (what the lines cost before, what it took off)
PointsExplainer = Callable[[int, int, int], str]  # (paid with money, pieces, points)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _discount_head(name: str, effect: Effect, w: Words) -> tuple[str | None, bool]:
    """The sentence up to the amounts (None: an effect with no words of its own), and whether
    it goes on with "<base> = -<off>" (else ", -<off>")."""
    ru = w.lang == "ru"
    if isinstance(effect, PercentDiscount):
        return (
            f"{name}: скидка {w.percent(effect.bp)} от " if ru else f"{name}: {w.percent(effect.bp)} off "
        ), True
    if isinstance(effect, ThresholdDiscount):
        return (f"{name}: скидка от суммы покупки " if ru else f"{name}: receipt discount on "), True
    if isinstance(effect, AmountDiscount):
        amount = w.money(effect.amount)
        return (
            f"{name}: скидка {amount} на чек, от " if ru else f"{name}: {amount} off the receipt, on "
        ), True
    if isinstance(effect, LadderDiscount):
        steps = ("; " if ru else ", ").join(w.percent(bp) for bp in effect.steps_bp)
        if ru:
            return f"{name}: скидка по порядку товара ({steps}) от ", True
        return f"{name}: discount by item position ({steps}) on ", True
    if isinstance(effect, NthItemFree):
        return (
            f"{name}: каждый {effect.n}-й товар бесплатно"
            if ru
            else f"{name}: every {_ordinal(effect.n)} item free"
        ), False
    if isinstance(effect, MForN):
        return (
            f"{name}: {effect.m} по цене {effect.n}"
            if ru
            else f"{name}: {effect.m} for the price of {effect.n}"
        ), False
    if isinstance(effect, Bogo):
        if ru:
            gift = "бесплатно" if effect.get_bp >= 10_000 else f"со скидкой {w.percent(effect.get_bp)}"
            return f"{name}: купи {effect.buy_quantity}, получи {effect.get_quantity} {gift}", False
        gift = "free" if effect.get_bp >= 10_000 else f"{w.percent(effect.get_bp)} off"
        return f"{name}: buy {effect.buy_quantity}, get {effect.get_quantity} {gift}", False
    if isinstance(effect, SetPrice):
        return (
            f"{name}: комплект за {w.money(effect.price)}"
            if ru
            else f"{name}: set for {w.money(effect.price)}"
        ), False
    return None, False


def discount_explainer(name: str, effect: Effect, w: Words) -> DiscountExplainer:
    head, with_base = _discount_head(name, effect, w)
    money = w.money
    if with_base:
        return lambda base, discount: f"{head}{money(base)} = -{money(discount)}"
    if head is None:
        return lambda base, discount: f"{name}: -{money(discount)}"
    return lambda base, discount: f"{head}, -{money(discount)}"


class RateSentence:
    """ "<head><paid> = <points>": the tier, percent points, points per amount, the cheapest item.
    The tail after the head depends only on the line's numbers, so rules that give a line the
    same points can share it (pricing does, per receipt)."""

    __slots__ = ("head", "money", "points")

    def __init__(self, head: str, w: Words) -> None:
        self.head, self.money, self.points = head, w.money, w.points

    def tails(self, paid: list[int], got: list[int]) -> list[str]:
        """What follows the head on each line (paid and got aligned)."""
        money, points = self.money, self.points
        return [f"{money(amount)} = {points(p)}" for amount, p in zip(paid, got)]

    def __call__(self, paid: int, units: int, got: int) -> str:
        return f"{self.head}{self.money(paid)} = {self.points(got)}"


def tier_explainer(tier_name: str, bp: int, w: Words) -> PointsExplainer:
    head = (
        f"Уровень «{tier_name}»: {w.percent(bp)} от "
        if w.lang == "ru"
        else f"{tier_name} tier: {w.percent(bp)} on "
    )
    return RateSentence(head, w)


def points_explainer(name: str, effect: Effect, w: Words) -> PointsExplainer:
    """paid: what the lines are paid with money; units: pieces on them."""
    ru, money, points = w.lang == "ru", w.money, w.points
    if isinstance(effect, (PercentPoints, CheapestItemBonus)):
        rate = w.percent(effect.bp)
        if isinstance(effect, PercentPoints):
            head = f"{name}: {rate} от " if ru else f"{name}: {rate} on "
        else:
            head = f"{name}: самый дешёвый товар +{rate} от " if ru else f"{name}: cheapest item +{rate} on "
        return RateSentence(head, w)
    if isinstance(effect, PointsPerItem):
        head = f"{name}: {points(effect.points)} × " if ru else f"{name}: {points(effect.points)} x "
        pcs = " шт. = " if ru else " pcs = "
        return lambda paid, units, got: f"{head}{units}{pcs}{points(got)}"
    if isinstance(effect, PointsPerAmount):
        each = money(effect.per_amount)
        head = (
            f"{name}: {points(effect.points)} за каждые {each} из "
            if ru
            else (f"{name}: {points(effect.points)} for each {each} of ")
        )
        return RateSentence(head, w)
    if isinstance(effect, Multiplier):
        head = (
            f"{name}: баллы уровня {w.factor(effect.factor_bp)} = +"
            if ru
            else (f"{name}: tier points {w.factor(effect.factor_bp)} = +")
        )
        return lambda paid, units, got: f"{head}{points(got)}"
    if isinstance(effect, FixedPoints):
        head = f"{name}: бонус " if ru else f"{name}: bonus "
        return lambda paid, units, got: f"{head}{points(got)}"
    return lambda paid, units, got: f"{name}: {points(got)}"


def coupon_issued(name: str, series: str, w: Words) -> str:
    if w.lang == "ru":
        return f"{name}: вы получаете купон ({series})"
    return f"{name}: you get a coupon ({series})"


def event_award(name: str, points: int, w: Words) -> str:
    # English has always printed "1 points" here; stored awards keep their wording.
    return f"{name}: {w.points(points)}" if w.lang == "ru" else f"{name}: {points} points"


def referral_award(name: str, points: int, w: Words) -> str:
    if w.lang == "ru":
        return f"{name}: {w.points(points)} за приглашённого друга"
    return f"{name}: {points} points for bringing a friend"


def redeem_limit(max_points: int, w: Words) -> str:
    if w.lang == "ru":
        return f"на этот чек можно списать максимум {w.points(max_points)}"
    return f"at most {max_points} points can be spent on this receipt"
