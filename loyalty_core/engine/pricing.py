"""price(): a basket, who/where/when, a compiled program -> per-line discounts, points, trace.

Stages run in this order: discounts -> redemption limits (and the redemption itself) ->
accrual. Points accrue on what is paid with money (to_pay), never on what was paid with points.
"""

from __future__ import annotations

from loyalty_core.engine.accrual import (
    AccrualLines,
    LineNums,
    allocate,
    compute_points,
    denominator,
    percent_nums,
)
from loyalty_core.engine.basket import Basket, PricingContext
from loyalty_core.engine.compiled import CompiledProgram, CompiledRule, LineInfo
from loyalty_core.engine.errors import RedeemLimitExceeded
from loyalty_core.engine.explain import RateSentence, points_explainer, redeem_limit, tier_explainer
from loyalty_core.engine.facts import basket_facts, line_infos
from loyalty_core.engine.language import words_for
from loyalty_core.engine.money import BP, split_capped, split_largest_remainder
from loyalty_core.engine.result import (
    AppliedRule,
    CouponResult,
    LineEffect,
    PricedBasket,
    PricedLine,
    Totals,
)
from loyalty_core.engine.run import Run
from loyalty_core.engine.stages import Limits, discount_stage, limits_stage


def max_redeem_points(
    ctx: PricingContext, program: CompiledProgram, remaining: list[int], limits: Limits
) -> int:
    member = ctx.member
    if member is None or (not member.registered and not program.settings.anonymous_can_redeem):
        return 0
    max_amount = sum([amount * share for amount, share in zip(remaining, limits.share_bp)]) // BP
    return max(0, min(max_amount // program.settings.point_value_minor, ctx.balance_active))


def redeem(
    points: int, point_value: int, remaining: list[int], limits: Limits
) -> tuple[list[int], list[int]]:
    """(money, points) per line: the money spread in proportion to each line's payable share."""
    if not points:  # most receipts: nothing to split
        return [0] * len(remaining), [0] * len(remaining)
    weights = [amount * share for amount, share in zip(remaining, limits.share_bp)]
    money = split_capped(points * point_value, weights, remaining)
    return money, split_largest_remainder(points, money)


NO_POINTS = ("no_points",)


class _Accrued:
    """One source of points (the tier or a rule) with exact per-line numerators in receipt order."""

    __slots__ = ("code", "group", "idx", "kind", "name", "nums", "rule", "total")

    def __init__(
        self, group: str, code: str, name: str, kind: str, nums: LineNums, rule: CompiledRule | None
    ) -> None:
        self.group, self.code, self.name, self.kind, self.rule = group, code, name, kind, rule
        self.idx, self.nums = nums
        self.total = sum(self.nums)


def _accrual_rules(
    run: Run, program: CompiledProgram, picked: AccrualLines, base: list[int]
) -> list[_Accrued]:
    d = denominator(program.settings.point_value_minor)
    found: list[_Accrued] = []
    for group in program.stages["accrual"]:
        firing = run.firing_rules(group, "accrual")
        chosen: list[_Accrued] = []
        for rule in firing:
            nums = compute_points(rule.effect, rule.lines, picked, base, d)
            if not nums[0]:
                run.note("accrual", group.code, rule.code, False, NO_POINTS)
                continue
            candidate = _Accrued(group.code, rule.code, rule.name, rule.kind, nums, rule)
            if group.mode == "stack" or not chosen:
                chosen.append(candidate)
            elif group.mode == "best" and candidate.total > chosen[0].total:
                run.note("accrual", group.code, chosen[0].code, False, ("displaced_gives_more", rule.code))
                chosen = [candidate]
            else:
                run.note(
                    "accrual", group.code, rule.code, False, ("displaced_by", chosen[0].code, group.mode)
                )
        found.extend(chosen)
    return found


def _explain_points(
    run: Run, source: _Accrued, got: list[int], to_pay: list[int], tier_bp: int, memo: dict
) -> AppliedRule:
    """memo: per receipt, what sources on the same lines (same idx list) or with the same split
    (same got list) can share: line numbers, paid sums, per-line details without sentences."""
    lines = run.lines
    if source.rule is None:
        sentence = tier_explainer(source.name, tier_bp, run.words)
    else:
        sentence = points_explainer(source.name, source.rule.effect, run.words)

    indexes = source.idx
    on_lines = memo.get(("lines", id(indexes)))
    if on_lines is None:
        amounts = [to_pay[i] for i in indexes]
        line_nos = [lines[i].line_no for i in indexes]
        on_lines = memo[("lines", id(indexes))] = (line_nos, amounts, sum(amounts))
    line_nos, amounts, paid = on_lines
    rate = isinstance(sentence, RateSentence)
    if run.line_explanations and rate:
        tails = memo.get(("tails", id(got)))
        if tails is None:
            tails = memo[("tails", id(got))] = sentence.tails(amounts, got)
        head = sentence.head
        details = [
            LineEffect(line_no=n, points=p, explanation=head + t) for n, p, t in zip(line_nos, got, tails)
        ]
    elif run.line_explanations:
        details = [
            LineEffect(line_no=n, points=p, explanation=sentence(to_pay[i], lines[i].units, p))
            for n, p, i in zip(line_nos, got, indexes)
        ]
    else:
        shared = memo.get(("split", id(got)))
        if shared is None:
            shared = memo[("split", id(got))] = [
                LineEffect(line_no=n, points=p) for n, p in zip(line_nos, got)
            ]
        details = list(shared)  # LineEffects are frozen; each rule still gets its own list
    total = sum(got)
    units = 0 if rate else sum([lines[i].units for i in indexes])  # a rate sentence reads no pieces
    run.note("accrual", source.group, source.code, True, ("accrued", total))
    return AppliedRule(
        rule=source.code,
        name=source.name,
        effect=source.kind,
        lines=list(line_nos),
        explanation=sentence(paid, units, total),
        points=total,
        details=details,
    )


def accrual_stage(
    run: Run, ctx: PricingContext, program: CompiledProgram, to_pay: list[int], limits: Limits
) -> list[int]:
    accrued = [0] * len(run.lines)
    if ctx.member is None:
        run.note("accrual", "", "", False, ("no_card_no_points",))
        return accrued
    tier = program.tiers.get(ctx.member.tier_code or "") or program.default_tier
    picked = AccrualLines(run.lines_for, limits.accrues, to_pay)
    base = [0] * len(run.lines)
    sources = []
    if tier is not None and picked.paid(None):
        tier_nums = percent_nums(tier.accrual_bp, picked.paid(None), to_pay)
        for i, num in zip(*tier_nums):
            base[i] = num
        sources.append(_Accrued("tier", "tier", tier.name, "tier", tier_nums, None))
    sources += _accrual_rules(run, program, picked, base)
    d = denominator(program.settings.point_value_minor)
    totals = [s.total for s in sources]
    total = sum(totals) // d
    if limits.per_receipt is not None and total > limits.per_receipt:
        run.note("accrual", "", "limit", True, ("cap_receipt", limits.per_receipt))
        total = limits.per_receipt
    if limits.per_day is not None:
        room = max(0, limits.per_day - ctx.accrued_today)
        if total > room:
            run.note("accrual", "", "limit", True, ("cap_day", room))
            total = room
    shares = allocate(
        total, [s.nums for s in sources], totals, [picked.shape((s.idx, s.nums)) for s in sources]
    )
    memo: dict = {}
    for source, got in zip(sources, shares):
        if got is not None:
            for i, points in zip(source.idx, got):
                accrued[i] += points
            if source.rule is not None:
                run.use_coupons(source.rule)
            run.applied.append(
                _explain_points(run, source, got, to_pay, tier.accrual_bp if tier else 0, memo)
            )
    return accrued


def _coupon_results(basket: Basket, run: Run) -> list[CouponResult]:
    results = []
    for coupon in basket.coupons:
        if not coupon.valid:
            reason = coupon.reason or run.words.reason(("invalid_coupon",))
            results.append(CouponResult(code=coupon.code, status="rejected", reason=reason))
        elif coupon.code in run.used_coupons:
            results.append(CouponResult(code=coupon.code, status="applied"))
        else:
            reason = run.words.reason(("no_promotion",))
            results.append(CouponResult(code=coupon.code, status="rejected", reason=reason))
    return results


def price(
    basket: Basket,
    ctx: PricingContext,
    program: CompiledProgram,
    *,
    lang: str | None = None,
    line_explanations: bool = True,
) -> PricedBasket:
    """Price one basket. Raises RedeemLimitExceeded if more points are asked than allowed.

    Explanations, trace reasons and coupon reasons are written in `lang` if given, else in
    ctx.lang ("ru" or "en"; "ru-RU" counts as "ru"; a language the engine does not speak as "en").

    line_explanations=False leaves the per-line sentences empty (the numbers stay): a till's
    calculate may skip them for speed; simulate and confirm keep them for the stored trace.
    """
    if basket.redeem_points < 0:
        raise ValueError("redeem_points must not be negative")
    lines: list[LineInfo] = line_infos(basket, program)
    facts = basket_facts(basket, ctx, program, lines)
    valid_coupons = [c for c in basket.coupons if c.valid]
    words = words_for(lang or ctx.lang, program.settings.currency)
    run = Run(lines, facts, words, valid_coupons, line_explanations)
    excluded = tuple([line.line_no for line in lines if line.excluded])
    if excluded:
        run.note("discount", "", "excluded-goods", False, ("excluded_lines", excluded))
    remaining = discount_stage(run, program)
    limits = limits_stage(run, program)
    most = max_redeem_points(ctx, program, remaining, limits)
    if basket.redeem_points > most:
        raise RedeemLimitExceeded(most, redeem_limit(most, words))
    redeemed_money, redeemed_points = redeem(
        basket.redeem_points, program.settings.point_value_minor, remaining, limits
    )
    to_pay = [r - m for r, m in zip(remaining, redeemed_money)]
    accrued = accrual_stage(run, ctx, program, to_pay, limits)
    # every per-line list is in receipt order (line.index), so they zip with the lines
    priced = [
        PricedLine(
            line_no=line.line_no,
            amount=line.amount,
            discount=line.amount - left,
            redeemed_points=points,
            redeemed_amount=money,
            to_pay=paid,
            accrued_points=got,
        )
        for line, left, points, money, paid, got in zip(
            lines, remaining, redeemed_points, redeemed_money, to_pay, accrued
        )
    ]
    amount = sum([line.amount for line in lines])
    totals = Totals(
        amount=amount,
        discount=amount - sum(remaining),
        redeemed_points=sum(redeemed_points),
        redeemed_amount=sum(redeemed_money),
        to_pay=sum(to_pay),
        accrued_points=sum(accrued),
    )
    return PricedBasket(
        lines=priced,
        totals=totals,
        max_redeem_points=most,
        applied=run.applied,
        coupons=_coupon_results(basket, run),
        issued_coupons=run.issued,
        trace=run.trace,
        rules_version=program.version,
        language=words.lang,
    )
