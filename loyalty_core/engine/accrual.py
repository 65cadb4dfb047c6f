"""Accrual effects as exact rationals: every amount is a numerator over one common denominator.

points = to_pay * bp / (10000 * point_value); a multiplier adds another factor of 10000, so
all effects share the denominator D = 10000 * 10000 * point_value and stay integers. The
receipt total is floored once (DESIGN: accrual floors per receipt, not per line), then split
over rules and lines by largest remainder so the per-line numbers add up exactly.

A source's numerators are two parallel lists (line indexes in receipt order, numerators): a
stressed basket has a thousand (rule, line) pairs, and lists are what this loop is fastest on.
"""

from __future__ import annotations

from collections.abc import Callable

from loyalty_core.engine.compiled import CompiledFilter, LineInfo
from loyalty_core.engine.effects import (
    CheapestItemBonus,
    Effect,
    FixedPoints,
    Multiplier,
    PercentPoints,
    PointsPerAmount,
    PointsPerItem,
)
from loyalty_core.engine.money import BP, split_largest_remainder

LineNums = tuple[list[int], list[int]]  # (line indexes in receipt order, numerators over D)


def denominator(point_value_minor: int) -> int:
    return BP * BP * point_value_minor


class AccrualLines:
    """Per basket, once the limits are known: the lines each filter picks that earn points, and
    the indexes of those paid with money. Cached per filter, since many rules share one."""

    def __init__(
        self,
        lines_for: Callable[[CompiledFilter | None], list[LineInfo]],
        accrues: list[bool],
        to_pay: list[int],
    ) -> None:
        self._lines_for, self._accrues, self.to_pay = lines_for, accrues, to_pay
        self._all_accrue = all(accrues)  # the usual case: the filter's own lists serve as they are
        self._lines: dict[int, list[LineInfo]] = {}
        self._paid: dict[int, list[int]] = {}
        # ids of the cached paid-lines lists: numerators on one of them, as it is, are
        # proportional to what its lines are paid with money (see shape())
        self._paid_ids: set[int] = set()

    def lines(self, lines: CompiledFilter | None) -> list[LineInfo]:
        key = -1 if lines is None else lines.key
        found = self._lines.get(key)
        if found is None:
            accrues = self._accrues
            found = self._lines_for(lines)
            if not self._all_accrue:
                found = [line for line in found if accrues[line.index]]
            self._lines[key] = found
        return found

    def paid(self, lines: CompiledFilter | None) -> list[int]:
        key = -1 if lines is None else lines.key
        found = self._paid.get(key)
        if found is None:
            to_pay = self.to_pay
            found = self._paid[key] = [line.index for line in self.lines(lines) if to_pay[line.index] > 0]
            self._paid_ids.add(id(found))
        return found

    def shape(self, nums: LineNums) -> int | None:
        """A key shared by sources whose numerators are proportional to to_pay on the same lines
        (the tier, percent points, multipliers of the tier): largest remainder splits any number
        of points over them the same way, so the split is done once per key and number."""
        idx = nums[0]
        return id(idx) if id(idx) in self._paid_ids else None


def percent_nums(bp: int, paid: list[int], to_pay: list[int]) -> LineNums:
    factor = bp * BP
    return paid, [to_pay[i] * factor for i in paid]


def _whole_points(points: int, lines: list[LineInfo], to_pay: list[int], d: int) -> LineNums:
    """Whole points spread over lines by what they are paid with money (for returns)."""
    weights = [to_pay[line.index] for line in lines]
    if not any(weights):
        weights = [line.amount for line in lines]
    parts = split_largest_remainder(points, weights)
    picked = [(line.index, part * d) for line, part in zip(lines, parts) if part]
    return [i for i, _ in picked], [num for _, num in picked]


def cap_nums(nums: LineNums, cap: int) -> LineNums:
    """Scale numerators down to `cap` in total (largest remainder keeps it exact)."""
    idx, values = nums
    if sum(values) <= cap:
        return nums
    parts = split_largest_remainder(cap, values)
    return [i for i, p in zip(idx, parts) if p], [p for p in parts if p]


def compute_points(
    effect: Effect, lines: CompiledFilter | None, picked: AccrualLines, base: list[int], d: int
) -> LineNums:
    """The rule's numerators on the lines it picks; only lines with something (> 0) are kept.

    base: the tier's numerator per line (0 where none), for multipliers."""
    to_pay = picked.to_pay
    if isinstance(effect, PercentPoints):
        nums = percent_nums(effect.bp, picked.paid(lines), to_pay)
    elif isinstance(effect, Multiplier):
        extra = effect.factor_bp - BP
        paid = picked.paid(lines)
        idx = paid if all([base[i] for i in paid]) else [i for i in paid if base[i]]
        nums = idx, [base[i] // BP * extra for i in idx]
    elif isinstance(effect, PointsPerItem):
        chosen = picked.lines(lines)
        per_item = effect.points * d
        nums = [line.index for line in chosen], [per_item * line.units for line in chosen]
    elif isinstance(effect, PointsPerAmount):
        chosen = picked.lines(lines)
        paid = sum([to_pay[line.index] for line in chosen])
        nums = _whole_points(paid // effect.per_amount * effect.points, chosen, to_pay, d)
    elif isinstance(effect, CheapestItemBonus):
        paid_lines = [line for line in picked.lines(lines) if to_pay[line.index] > 0]
        if not paid_lines:
            return [], []
        cheapest = min(paid_lines, key=lambda line: (line.price, line.index))
        nums = percent_nums(effect.bp, [cheapest.index], to_pay)
    elif isinstance(effect, FixedPoints):
        nums = _whole_points(effect.points, picked.lines(lines), to_pay, d)
    else:
        return [], []
    max_points = getattr(effect, "max_points", None)
    if max_points is not None:
        nums = cap_nums(nums, max_points * d)
    idx, values = nums
    if values and min(values) <= 0:
        kept = [(i, v) for i, v in zip(idx, values) if v > 0]
        return [i for i, _ in kept], [v for _, v in kept]
    return nums


def allocate(
    total: int, rule_nums: list[list[int]], rule_totals: list[int], shapes: list[int | None]
) -> list[list[int] | None]:
    """Split `total` whole points over rules (by their exact share), then each over its lines.

    Per rule: the points of each of its lines (aligned with its numerators), or None when the
    rule gets nothing. Numerators are in receipt order, so ties go to the earlier line. Rules of
    one shape (AccrualLines.shape) given the same points share one split (a list not to mutate).
    """
    rule_parts = split_largest_remainder(total, rule_totals)
    result: list[list[int] | None] = []
    done: dict[tuple[int, int], list[int]] = {}
    for part, nums, shape in zip(rule_parts, rule_nums, shapes):
        if not part:
            result.append(None)
        elif len(nums) == 1:
            result.append([part])
        elif shape is None:
            result.append(split_largest_remainder(part, nums))
        else:
            found = done.get((shape, part))
            if found is None:
                found = done[(shape, part)] = split_largest_remainder(part, nums)
            result.append(found)
    return result
