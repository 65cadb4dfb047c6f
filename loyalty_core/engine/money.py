"""Exact integer arithmetic for money and points: splitting a total over receipt lines, formatting.

Fiscal receipts need a per-line amount for every discount and every redemption, and the
per-line numbers must add up to the receipt total to the kopeck. Largest remainder does that.
"""

from __future__ import annotations

from collections.abc import Sequence

BP = 10_000  # basis points in 100 %


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` over `weights` proportionally; parts sum to `total` exactly.

    Each part gets floor(total * w / W); the units left over go one each to the parts with
    the largest remainders, ties to the earlier part (line order), so the result is
    deterministic. Zero weights get nothing. With all weights zero nothing can be split
    and every part is 0 (the caller decides what that means).
    """
    weight_sum = sum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    if len(weights) == 1:
        return [total]
    parts: list[int] = []
    remainders: list[int] = []
    for weight in weights:  # one divmod per part: the products are big integers
        part, remainder = divmod(total * weight, weight_sum)
        parts.append(part)
        remainders.append(remainder)
    left = total - sum(parts)
    if left:
        # The remainders sum to left * weight_sum and each is below weight_sum, so more than
        # `left` of them are positive: a zero weight never receives a leftover unit. The sort
        # is stable with reverse=True, so equal remainders keep line order.
        for index in sorted(range(len(remainders)), key=remainders.__getitem__, reverse=True)[:left]:
            parts[index] += 1
    return parts


def split_capped(total: int, weights: Sequence[int], caps: Sequence[int]) -> list[int]:
    """Largest remainder, then move any excess over a cap to lines that still have room.

    Used where a part must never exceed its line (a discount larger than the line would
    make the line negative). Requires total <= sum(caps).
    """
    parts = split_largest_remainder(total, weights)
    excess = 0
    for index, cap in enumerate(caps):
        if parts[index] > cap:
            excess += parts[index] - cap
            parts[index] = cap
    index = 0
    while excess and index < len(caps):
        room = caps[index] - parts[index]
        if room > 0:
            moved = min(room, excess)
            parts[index] += moved
            excess -= moved
        index += 1
    return parts


def percent_of(amount: int, bp: int) -> int:
    """Floor of amount * bp / 10000: a discount never rounds up against the shop's books."""
    return amount * bp // BP


def format_money(minor: int, currency: str = "RUB") -> str:
    """1 250.00 RUB: space as thousands separator, two decimals (kopecks)."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units:,}.{cents:02d} {currency}".replace(",", " ")


def format_bp(bp: int) -> str:
    """750 -> '7.5%', 300 -> '3%'."""
    whole, rest = divmod(bp, 100)
    if rest == 0:
        return f"{whole}%"
    return f"{whole}.{rest:02d}".rstrip("0") + "%"


def format_factor(factor_bp: int) -> str:
    """100000 -> 'x10', 15000 -> 'x1.5'."""
    whole, rest = divmod(factor_bp, BP)
    if rest == 0:
        return f"x{whole}"
    return f"x{whole}.{rest:04d}".rstrip("0")
