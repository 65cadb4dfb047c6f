"""Discount effects: given the eligible lines and what each still costs, the discount per line.

Every function returns {line index: discount} with each discount <= what the line still
costs, and computes the receipt total first (floored, never in the shopper's disfavour by
more than a kopeck) and spreads it over lines by largest remainder, so a fiscal receipt gets
exact per-line amounts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from loyalty_core.engine.compiled import CompiledRule, LineInfo
from loyalty_core.engine.conditions import Facts
from loyalty_core.engine.effects import (
    AmountDiscount,
    Bogo,
    LadderDiscount,
    MForN,
    NthItemFree,
    PercentDiscount,
    SetPrice,
    ThresholdDiscount,
)
from loyalty_core.engine.money import BP, split_capped
from loyalty_core.engine.targeting import LineFilter

LineAmounts = dict[int, int]  # line index -> money
Matcher = Callable[[LineFilter], list[LineInfo]]


def _spread(total: int, lines: list[LineInfo], weights: list[int], base: list[int]) -> LineAmounts:
    caps = [base[line.index] for line in lines]
    total = min(total, sum(caps))
    parts = split_capped(total, weights, caps)
    return {line.index: part for line, part in zip(lines, parts) if part}


def percent_off(bp: int, lines: list[LineInfo], base: list[int], cap: int | None = None) -> LineAmounts:
    weights = [base[line.index] for line in lines]
    total = sum(weights) * bp // BP
    if cap is not None:
        total = min(total, cap)
    return _spread(total, lines, weights, base)


def _unit_bps(
    per_unit_bp: dict[int, list[int]], lines_by_index: dict[int, LineInfo], base: list[int]
) -> LineAmounts:
    """Discount where some pieces of a line get some bp off the piece's current value.

    A piece of line i is worth base[i] / units[i]; weights are scaled by the lcm of the
    unit counts so they stay integers and the receipt total is floored once.
    """
    if not per_unit_bp:
        return {}
    lines = [lines_by_index[i] for i in sorted(per_unit_bp)]
    scale = math.lcm(*(line.units for line in lines))
    weights = [base[line.index] * sum(per_unit_bp[line.index]) * (scale // line.units) for line in lines]
    total = sum(weights) // (BP * scale)
    return _spread(total, lines, weights, base)


def _piece_values(lines: list[LineInfo], base: list[int]) -> dict[int, int]:
    """A piece's value (line amount / pieces) per line, all scaled by one common multiple of the
    piece counts: exact integers that order and tie exactly as the fractions would."""
    if not lines:
        return {}
    scale = math.lcm(*(line.units for line in lines))
    return {line.index: base[line.index] * (scale // line.units) for line in lines}


def _pieces(lines: list[LineInfo], base: list[int]) -> list[tuple[int, int, int]]:
    """Every piece as (-value, line order, line index): sorting puts the dearest first."""
    pieces = []
    values = _piece_values(lines, base)
    for line in lines:
        value = values[line.index]
        pieces.extend((-value, line.index, line.index) for _ in range(line.units))
    pieces.sort()
    return pieces


def ladder(effect: LadderDiscount, lines: list[LineInfo], base: list[int]) -> LineAmounts:
    per_unit: dict[int, list[int]] = {}
    position = 0
    for line in lines:  # receipt order: the 2nd item scanned gets the 2nd step
        for _ in range(line.units):
            step = effect.steps_bp[min(position, len(effect.steps_bp) - 1)]
            per_unit.setdefault(line.index, []).append(step)
            position += 1
    return _unit_bps(per_unit, {line.index: line for line in lines}, base)


def m_for_n(m: int, n: int, lines: list[LineInfo], base: list[int]) -> LineAmounts:
    pieces = _pieces(lines, base)
    per_unit: dict[int, list[int]] = {}
    for start in range(0, len(pieces) - m + 1, m):
        for _, _, index in pieces[start + n : start + m]:  # the cheapest m-n of each group of m
            per_unit.setdefault(index, []).append(BP)
    return _unit_bps(per_unit, {line.index: line for line in lines}, base)


def bogo(effect: Bogo, eligible: list[LineInfo], base: list[int], match: Matcher) -> LineAmounts:
    allowed = {line.index for line in eligible}
    buy_ids = {line.index for line in match(effect.buy) if line.index in allowed}
    get_ids = {line.index for line in match(effect.get) if line.index in allowed}
    pool = _pieces([line for line in eligible if line.index in buy_ids | get_ids], base)
    per_unit: dict[int, list[int]] = {}
    while True:
        buys = [k for k, piece in enumerate(pool) if piece[2] in buy_ids][: effect.buy_quantity]
        if len(buys) < effect.buy_quantity:
            break
        rest = [k for k in range(len(pool) - 1, -1, -1) if k not in buys and pool[k][2] in get_ids]
        gets = rest[: effect.get_quantity]  # the cheapest pieces are the gift
        if len(gets) < effect.get_quantity:
            break
        for k in gets:
            per_unit.setdefault(pool[k][2], []).append(effect.get_bp)
        pool = [piece for k, piece in enumerate(pool) if k not in buys and k not in gets]
    return _unit_bps(per_unit, {line.index: line for line in eligible}, base)


def set_price(effect: SetPrice, eligible: list[LineInfo], base: list[int], match: Matcher) -> LineAmounts:
    allowed = {line.index for line in eligible}
    left = {line.index: line.units for line in eligible}
    taken: dict[int, int] = {}
    candidates = [[line for line in match(c.lines) if line.index in allowed] for c in effect.components]
    values = _piece_values(eligible, base)
    sets = 0
    while True:
        picked: dict[int, int] = {}
        for component, lines in zip(effect.components, candidates):
            need = component.quantity
            for line in sorted(lines, key=lambda li: -values[li.index]):
                free = left[line.index] - picked.get(line.index, 0)
                use = min(free, need)
                if use > 0:
                    picked[line.index] = picked.get(line.index, 0) + use
                    need -= use
                if need == 0:
                    break
            if need:
                picked = {}
                break
        if not picked:
            break
        sets += 1
        for index, count in picked.items():
            left[index] -= count
            taken[index] = taken.get(index, 0) + count
    if not sets:
        return {}
    lines = [line for line in eligible if line.index in taken]
    scale = math.lcm(*(line.units for line in lines))
    weights = [base[line.index] * taken[line.index] * (scale // line.units) for line in lines]
    total = sum(weights) // scale - sets * effect.price
    return _spread(total, lines, weights, base) if total > 0 else {}


def compute_discount(
    rule: CompiledRule, lines: list[LineInfo], base: list[int], facts: Facts, match: Matcher | None
) -> LineAmounts:
    effect = rule.effect
    if isinstance(effect, PercentDiscount):
        return percent_off(effect.bp, lines, base, effect.max_discount)
    if isinstance(effect, AmountDiscount):
        return _spread(effect.amount, lines, [base[line.index] for line in lines], base)
    if isinstance(effect, ThresholdDiscount):
        reached = sum([base[line.index] for line in lines])
        steps = [step for step in effect.steps if reached >= step.min_amount]
        if not steps:
            return {}
        return percent_off(max(steps, key=lambda s: s.min_amount).bp, lines, base)
    if isinstance(effect, LadderDiscount):
        return ladder(effect, lines, base)
    if isinstance(effect, NthItemFree):
        return m_for_n(effect.n, effect.n - 1, lines, base)
    if isinstance(effect, MForN):
        return m_for_n(effect.m, effect.n, lines, base)
    if isinstance(effect, Bogo):
        return bogo(effect, lines, base, match)
    if isinstance(effect, SetPrice):
        return set_price(effect, lines, base, match)
    return {}
