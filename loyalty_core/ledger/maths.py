"""Ledger maths: pure functions over plain data (no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec


class LotView(msgspec.Struct, frozen=True):
    id: int
    remaining: int
    expires_at: datetime | None


def take_from_lots(lots: Sequence[LotView], points: int) -> list[tuple[int, int]]:
    """Which lots a redemption or write-off takes from: earliest expiry first, never-expiring last.

    Returns (lot id, points taken); raises ValueError if the lots cannot cover `points`.
    """
    if points < 0:
        raise ValueError("points must not be negative")
    ordered = sorted(
        (lot for lot in lots if lot.remaining > 0),
        key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.max, lot.id),
    )
    taken: list[tuple[int, int]] = []
    left = points
    for lot in ordered:
        if left == 0:
            break
        take = min(left, lot.remaining)
        taken.append((lot.id, take))
        left -= take
    if left:
        raise ValueError(f"lots cover {points - left} of {points} points")
    return taken


def proportional_share(value: int, returned_before_milli: int, part_milli: int, whole_milli: int) -> int:
    """The share of `value` that belongs to `part_milli` more of `whole_milli`, after earlier returns.

    floor(value * (before + part) / whole) - floor(value * before / whole): a sequence of partial
    returns adds up to exactly `value` once the whole quantity is back, and never more, so the
    shopper ends where a single full return would put them.
    """
    if whole_milli <= 0:
        raise ValueError("whole quantity must be positive")
    if part_milli < 0 or returned_before_milli < 0 or returned_before_milli + part_milli > whole_milli:
        raise ValueError("returned quantity exceeds the sold quantity")
    return value * (returned_before_milli + part_milli) // whole_milli - value * returned_before_milli // whole_milli
