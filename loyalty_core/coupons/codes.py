"""Coupon series and codes: personal unique codes and shared promo codes."""

from __future__ import annotations

import secrets

from loyalty_core import db
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.tables import CouponSeries

ISSUE_PERSONAL = (
    "INSERT INTO coupon (series, code, membership, uses, status, issued_at) VALUES ($1, $2, $3, 0, 'active', now())"
)
# a code drawn twice (or already taken) is skipped: the caller draws again for what is missing
INSERT_CODES = (
    "INSERT INTO coupon (series, code, uses, status, issued_at) SELECT $1, c, 0, 'active', now() "
    "FROM unnest($2::varchar[]) AS c ON CONFLICT (code) DO NOTHING RETURNING code"
)

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the till


def new_code(prefix: str = "", length: int = 8) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


async def issue_personal_coupon(series_code: str, membership_id: int) -> str | None:
    series = await CouponSeries.select(CouponSeries.id, CouponSeries.personal).where(CouponSeries.code == series_code).first()
    if series is None:
        return None  # a rule naming a series that was removed issues nothing rather than failing a sale
    code = new_code()
    await db.fetch(ISSUE_PERSONAL, series["id"], code, membership_id)
    return code


async def generate_codes(series_code: str, count: int, prefix: str = "") -> list[str]:
    if not 1 <= count <= 100_000:
        raise ValidationFailed("count must be between 1 and 100 000")
    series = await CouponSeries.select(CouponSeries.id).where(CouponSeries.code == series_code).first()
    if series is None:
        raise NotFound(f"coupon series {series_code!r} does not exist")
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_code(prefix.upper()))
    rows = await db.fetch(INSERT_CODES, series["id"], sorted(codes))
    return [r["code"] for r in rows]
