"""The back office's coupon use-cases: the operator API's create and generate (loyalty_core.coupons.series), each
with its audit event in the same transaction; the series' codes for a CSV export; and its redemptions (which code,
when, at which store, on which receipt), read from coupon_use."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import db
from loyalty_core.coupons import series as coupon_series
from loyalty_core.coupons.series import GeneratedCodes, GenerateIn, SeriesIn, SeriesOut
from loyalty_core.office import audit
from loyalty_core.piccolo_conf import DB

EXPORT_LIMIT = 1_000_000  # codes in one CSV; a series holds at most a few generations of 100 000
REDEMPTIONS_SHOWN = 200


class CodeRow(msgspec.Struct, kw_only=True):
    code: str
    status: str
    uses: int
    membership_id: int | None
    issued_at: dt.datetime
    expires_at: dt.datetime | None


class Redemption(msgspec.Struct, kw_only=True):
    code: str
    used_at: dt.datetime
    store_code: str | None
    store_name: str | None
    receipt_id: str | None
    membership_id: int | None


CODES_OF_SERIES = (
    "SELECT c.code, c.status, c.uses, c.membership AS membership_id, c.issued_at, c.expires_at FROM coupon c "
    "JOIN coupon_series s ON s.id = c.series WHERE s.code = $1 ORDER BY c.id LIMIT $2"
)
REDEMPTIONS = (
    "SELECT c.code, u.used_at, st.code AS store_code, st.name AS store_name, sa.receipt_id, "
    "u.membership AS membership_id FROM coupon_use u JOIN coupon c ON c.id = u.coupon "
    "JOIN coupon_series s ON s.id = c.series LEFT JOIN sale sa ON sa.id = u.sale LEFT JOIN store st ON st.id = sa.store "
    "WHERE s.code = $1 ORDER BY u.used_at DESC, u.id DESC LIMIT $2"
)


def _facts(found: SeriesOut) -> dict[str, object]:
    return {"name": found.name, "program": found.program, "personal": found.personal,
            "promo_code": found.promo_code, "max_uses_per_code": found.max_uses_per_code,
            "max_uses_per_member": found.max_uses_per_member, "valid_from": found.valid_from,
            "valid_to": found.valid_to}


async def create_series(spec: SeriesIn, actor: str, now: dt.datetime, origin: str = "") -> SeriesOut:
    async with DB.transaction():
        made = await coupon_series.create_series(spec)
        await audit.record(actor, "coupon_series.create", f"coupon_series:{made.code}", {}, _facts(made), "", now,
                           origin)
    return made


async def generate(series_code: str, request: GenerateIn, actor: str, now: dt.datetime,
                   origin: str = "") -> GeneratedCodes:
    async with DB.transaction():
        before = await coupon_series.series(series_code)
        made = await coupon_series.generate(series_code, request)
        await audit.record(actor, "coupon_series.generate", f"coupon_series:{series_code}", {"codes": before.codes},
                           {"codes": before.codes + len(made.codes), "generated": len(made.codes),
                            "prefix": request.prefix}, "", now, origin)
    return made


async def codes_for_export(series_code: str) -> list[CodeRow]:
    await coupon_series.series(series_code)  # NotFound for an unknown series
    return await db.fetch_as(CodeRow, CODES_OF_SERIES, series_code, EXPORT_LIMIT)


async def redemptions(series_code: str, limit: int = REDEMPTIONS_SHOWN) -> list[Redemption]:
    return await db.fetch_as(Redemption, REDEMPTIONS, series_code, limit)
