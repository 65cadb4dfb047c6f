"""Accrual effects as exact rationals: every amount is a numerator over one common denominator.

points = to_pay * bp / (10000 * point_value); a multiplier adds another factor of 10000, so
all effects share the denominator D = 10000 * 10000 * point_value and stay integers. The
receipt total is floored once (DESIGN: accrual floors per receipt, not per line), then split
over rules and lines by largest remainder so the per-line numbers add up exactly.
"""

from __future__ import annotations

from loyalty_core.engine.compiled import CompiledRule, LineInfo
from loyalty_core.engine.effects import (
    CheapestItemBonus,
    FixedPoints,
    Multiplier,
    PercentPoints,
    PointsPerAmount,
    PointsPerItem,
)
from loyalty_core.engine.money import BP, split_largest_remainder

LineNums = dict[int, int]  # line index -> numerator over D


def denominator(point_value_minor: int) -> int:
    return BP * BP * point_value_minor


def percent_nums(bp: int, lines: list[LineInfo], to_pay: list[int]) -> LineNums:
    return {line.index: to_pay[line.index] * bp * BP for line in lines if to_pay[line.index] > 0}


def _whole_points(points: int, lines: list[LineInfo], to_pay: list[int], d: int) -> LineNums:
    """Whole points spread over lines by what they are paid with money (for returns)."""
    weights = [to_pay[line.index] for line in lines]
    if not any(weights):
        weights = [line.amount for line in lines]
    parts = split_largest_remainder(points, weights)
    return {line.index: part * d for line, part in zip(lines, parts) if part}


def cap_nums(nums: LineNums, cap: int) -> LineNums:
    """Scale numerators down to `cap` in total (largest remainder keeps it exact)."""
    if sum(nums.values()) <= cap:
        return nums
    keys = list(nums)
    parts = split_largest_remainder(cap, [nums[k] for k in keys])
    return {k: p for k, p in zip(keys, parts) if p}


def compute_points(
    rule: CompiledRule, lines: list[LineInfo], to_pay: list[int], base: LineNums, d: int
) -> LineNums:
    effect = rule.effect
    if isinstance(effect, PercentPoints):
        nums = percent_nums(effect.bp, lines, to_pay)
    elif isinstance(effect, PointsPerItem):
        nums = {line.index: effect.points * line.units * d for line in lines}
    elif isinstance(effect, PointsPerAmount):
        paid = sum(to_pay[line.index] for line in lines)
        nums = _whole_points(paid // effect.per_amount * effect.points, lines, to_pay, d)
    elif isinstance(effect, Multiplier):
        extra = effect.factor_bp - BP
        nums = {line.index: base[line.index] // BP * extra for line in lines if base.get(line.index)}
    elif isinstance(effect, CheapestItemBonus):
        paid = [line for line in lines if to_pay[line.index] > 0]
        if not paid:
            return {}
        cheapest = min(paid, key=lambda line: (line.price, line.index))
        nums = percent_nums(effect.bp, [cheapest], to_pay)
    elif isinstance(effect, FixedPoints):
        nums = _whole_points(effect.points, lines, to_pay, d)
    else:
        return {}
    max_points = getattr(effect, "max_points", None)
    if max_points is not None:
        nums = cap_nums(nums, max_points * d)
    return {k: v for k, v in nums.items() if v > 0}


def allocate(total: int, rule_nums: list[LineNums], rule_totals: list[int]) -> list[dict[int, int]]:
    """Split `total` whole points over rules (by their exact share), then each over its lines.

    Each rule's numerators are keyed in receipt order (its lines come from Run.lines_for), so
    ties between lines go to the earlier line.
    """
    rule_parts = split_largest_remainder(total, rule_totals)
    result = []
    for part, nums in zip(rule_parts, rule_nums):
        if not part:
            result.append({})
        elif len(nums) == 1:
            result.append(dict.fromkeys(nums, part))
        else:
            line_parts = split_largest_remainder(part, list(nums.values()))
            result.append({k: p for k, p in zip(nums, line_parts) if p})
    return result
