"""The discount and limits stages of pricing a basket.

Discount groups run in priority order, each on what the previous groups left. Inside a group:
stack applies every firing rule (cascade: each on what the previous left; otherwise all on
the group's starting amounts, clipped so a line never goes below zero); first applies the
highest-priority rule that gives anything; best applies the one that takes most off.
"""

from __future__ import annotations

import msgspec

from loyalty_core.engine.compiled import CompiledGroup, CompiledProgram, CompiledRule
from loyalty_core.engine.discounts import LineAmounts, compute_discount
from loyalty_core.engine.effects import AccrualCap, NoAccrual, NoRedeem, RedeemShare
from loyalty_core.engine.explain import discount_explainer
from loyalty_core.engine.result import AppliedRule, LineEffect
from loyalty_core.engine.run import Run

STAGE = "discount"
NOTHING = ("nothing_to_discount",)


def _record_discount(
    run: Run, group: CompiledGroup, rule: CompiledRule, got: LineAmounts, base: dict[int, int]
) -> None:
    run.use_coupons(rule)
    total = sum(got.values())
    considered = sum([base[i] for i in got])
    explain = discount_explainer(rule.name, rule.effect, run.words)
    lines = run.lines
    if run.line_explanations:
        details = [
            LineEffect(line_no=lines[i].line_no, discount=d, explanation=explain(base[i], d))
            for i, d in sorted(got.items())
        ]
    else:
        details = [LineEffect(line_no=lines[i].line_no, discount=d) for i, d in sorted(got.items())]
    run.applied.append(
        AppliedRule(
            rule=rule.code,
            name=rule.name,
            effect=rule.kind,
            lines=[d.line_no for d in details],
            explanation=explain(considered, total),
            discount=total,
            details=details,
        )
    )
    run.note(STAGE, group.code, rule.code, True, ("took", total, len(got)))


def _compute(run: Run, rule: CompiledRule, base: list[int]) -> LineAmounts:
    lines = run.lines_for(rule.lines)
    matcher = run.matcher(rule) if rule.sub_filters else None  # only BOGO and sets look further
    return compute_discount(rule, lines, base, run.facts, matcher)


def _apply(got: LineAmounts, remaining: list[int]) -> LineAmounts:
    clipped = {i: min(d, remaining[i]) for i, d in got.items()}
    for i, d in clipped.items():
        remaining[i] -= d
    return {i: d for i, d in clipped.items() if d}


def _run_group(run: Run, group: CompiledGroup, remaining: list[int]) -> None:
    firing = run.firing_rules(group, STAGE)
    if group.mode == "stack":
        start = list(remaining)
        for rule in firing:
            computed = _compute(run, rule, remaining if group.cascade else start)
            before = {i: remaining[i] for i in computed}  # what the touched lines cost before it
            got = _apply(computed, remaining)
            if got:
                _record_discount(run, group, rule, got, before)
            else:
                run.note(STAGE, group.code, rule.code, False, NOTHING)
        return
    # first / best: candidates computed on the same amounts, one of them applied.
    chosen: tuple[CompiledRule, LineAmounts] | None = None
    for rule in firing:
        got = _compute(run, rule, remaining)
        total = sum(got.values())
        if not total:
            run.note(STAGE, group.code, rule.code, False, NOTHING)
        elif chosen is None or (group.mode == "best" and total > sum(chosen[1].values())):
            if chosen is not None:
                run.note(STAGE, group.code, chosen[0].code, False, ("displaced_gives_more", rule.code))
            chosen = (rule, got)
        else:
            run.note(STAGE, group.code, rule.code, False, ("displaced_by", chosen[0].code, group.mode))
    if chosen is not None:
        before = {i: remaining[i] for i in chosen[1]}
        _record_discount(run, group, chosen[0], _apply(chosen[1], remaining), before)


def discount_stage(run: Run, program: CompiledProgram) -> list[int]:
    """What each line costs after all discounts."""
    remaining = [line.amount for line in run.lines]
    for group in program.stages["discount"]:
        _run_group(run, group, remaining)
        # a later group's condition on basket.to_pay sees what the earlier groups left
        run.facts["basket.to_pay"] = sum([remaining[line.index] for line in run.lines if not line.excluded])
    return remaining


class Limits(msgspec.Struct, kw_only=True):
    share_bp: list[int]  # per line: share payable with points
    accrues: list[bool]  # per line: earns points
    per_receipt: int | None
    per_day: int | None


def _min_cap(a: int | None, b: int | None, loosest: bool) -> int | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b) if loosest else min(a, b)


def limits_stage(run: Run, program: CompiledProgram) -> Limits:
    """Redemption share and accrual limits. The highest-priority rule that sets a line's share
    wins (best: the largest share); no_redeem always wins; caps: the tightest (best: loosest)."""
    settings = program.settings
    limits = Limits(
        share_bp=[0 if line.excluded else settings.max_redeem_share_bp for line in run.lines],
        accrues=[not line.excluded for line in run.lines],
        per_receipt=settings.max_accrual_per_receipt,
        per_day=settings.max_accrual_per_day,
    )
    locked: set[int] = set()
    for group in program.stages["limits"]:
        firing = run.firing_rules(group, "limits")
        best = group.mode == "best"
        for rule in firing[:1] if group.mode == "first" else firing:
            effect = rule.effect
            touched = run.lines_for(rule.lines)
            for line in touched:
                i = line.index
                if isinstance(effect, NoRedeem):
                    limits.share_bp[i] = 0
                    locked.add(i)
                elif isinstance(effect, NoAccrual):
                    limits.accrues[i] = False
                elif isinstance(effect, RedeemShare) and i not in locked:
                    if best:
                        limits.share_bp[i] = max(limits.share_bp[i], effect.max_share_bp)
                    else:
                        limits.share_bp[i] = effect.max_share_bp
                        locked.add(i)
            if isinstance(effect, AccrualCap):
                limits.per_receipt = _min_cap(limits.per_receipt, effect.per_receipt, best)
                limits.per_day = _min_cap(limits.per_day, effect.per_day, best)
            run.use_coupons(rule)
            share = effect.max_share_bp if isinstance(effect, RedeemShare) else None
            run.note("limits", group.code, rule.code, True, ("limit", rule.kind, len(touched), share))
        for rule in firing[1:] if group.mode == "first" else []:
            run.note("limits", group.code, rule.code, False, ("displaced_by", firing[0].code, "first"))
    return limits
