"""Coupon series for the marketer: personal unique codes (generated in bulk or issued to one member)
and shared promo codes (one code many shoppers type), with usage limits and validity.

A rule unlocks on a series (`target.coupon_series`) or a shared code (`target.coupon_codes`); the
till checks validity and uses, and a sale that applied a coupon uses it up.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import asyncpg
import msgspec
from msgspec import Meta

from loyalty_core import db
from loyalty_core.errors import Conflict, NotFound, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.coupons import codes as coupons
from loyalty_core.messaging import outbox
from loyalty_core.members.identity import resolve_program
from loyalty_core.members.profile import decode_cursor, encode_cursor, page_limit
from loyalty_core.till.types import AwareDateTime
from loyalty_core.tables import Coupon, CouponSeries

SeriesCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
PromoCode = Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Uses = Annotated[int, Meta(ge=0, le=1_000_000)]  # 0 = unlimited


class SeriesIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: SeriesCode
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    personal: bool = True  # unique codes, one per shopper; False: one shared promo code
    promo_code: PromoCode | None = None  # the shared code (shared series only)
    max_uses_per_code: Uses = 1
    max_uses_per_member: Uses = 1
    valid_from: AwareDateTime | None = None
    valid_to: AwareDateTime | None = None
    program: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class SeriesOut(msgspec.Struct, kw_only=True):
    code: str
    name: str
    program: str
    personal: bool
    max_uses_per_code: int
    max_uses_per_member: int
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    codes: int  # how many codes exist
    used: int  # how many are used up
    promo_code: str | None = None


class GenerateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    count: Annotated[int, Meta(ge=1, le=100_000)]
    prefix: Annotated[str, Meta(max_length=12, pattern=r"^[A-Za-z0-9]*$")] = ""


class GeneratedCodes(msgspec.Struct, kw_only=True):
    series: str
    codes: list[str]


class IssueIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    membership_id: Annotated[int, Meta(ge=1)]


class CodeOut(msgspec.Struct, kw_only=True):
    id: int
    code: str
    status: str
    uses: int
    membership_id: int | None
    issued_at: dt.datetime
    expires_at: dt.datetime | None


class CodesPage(msgspec.Struct, kw_only=True):
    items: list[CodeOut]
    next_cursor: str | None


class _Series(SeriesOut, kw_only=True):
    """A series as `_SERIES` reads it: what is shown, and its own and its program's ids."""

    id: int
    program_id: int


# --- the statements ------------------------------------------------------------------------------------------

_SERIES = (
    "SELECT s.id, s.code, s.name, p.code AS program, p.id AS program_id, s.personal, s.max_uses_per_code, "
    "s.max_uses_per_member, s.valid_from, s.valid_to, "
    "(SELECT count(*) FROM coupon c WHERE c.series = s.id) AS codes, "
    "(SELECT count(*) FROM coupon c WHERE c.series = s.id AND c.status = 'used') AS used, "
    "(SELECT min(c.code) FROM coupon c WHERE c.series = s.id AND NOT s.personal) AS promo_code "
    "FROM coupon_series s JOIN program p ON p.id = s.program "
)
SERIES_BY_CODE = _SERIES + "WHERE s.code = $1"
SERIES_OF_PROGRAM = _SERIES + "WHERE p.code = $1 ORDER BY s.id DESC LIMIT 500"
EVERY_SERIES = _SERIES + "ORDER BY s.id DESC LIMIT 500"
_CODE = "SELECT id, code, status, uses, membership AS membership_id, issued_at, expires_at FROM coupon "
# $2 and $3 the status (or NULL), $4 and $5 the cursor (or NULL), $6 one more than the page
CODES_PAGE = (
    _CODE + "WHERE series = $1 AND ($2::varchar IS NULL OR status = $3) AND ($4::bigint IS NULL OR id < $5) "
    "ORDER BY id DESC LIMIT $6"
)
CODE = _CODE + "WHERE code = $1"
MEMBER_TO_ISSUE = (
    "SELECT m.id, m.program, m.customer, (SELECT c.id FROM card c WHERE c.membership = m.id "
    "AND c.status = 'active' ORDER BY c.id DESC LIMIT 1) AS card_id FROM membership m WHERE m.id = $1"
)


def _out(row: _Series) -> SeriesOut:
    return SeriesOut(**{f: getattr(row, f) for f in SeriesOut.__struct_fields__})


async def _series(code: str) -> _Series:
    found = await db.fetchrow_as(_Series, SERIES_BY_CODE, code)
    if found is None:
        raise NotFound(f"coupon series {code!r} does not exist")
    return found


async def series(code: str) -> SeriesOut:
    return _out(await _series(code))


async def all_series(program: str | None) -> list[SeriesOut]:
    rows = await (db.fetch_as(_Series, SERIES_OF_PROGRAM, program) if program else db.fetch_as(_Series, EVERY_SERIES))
    return [_out(r) for r in rows]


async def create_series(spec: SeriesIn) -> SeriesOut:
    if spec.valid_from and spec.valid_to and spec.valid_from >= spec.valid_to:
        raise ValidationFailed("valid_from: must be before valid_to")
    if spec.personal and spec.promo_code:
        raise ValidationFailed("promo_code: only a shared series (personal: false) has one")
    if not spec.personal and not spec.promo_code:
        raise ValidationFailed("promo_code: a shared series needs the code shoppers will type")
    program = await resolve_program(spec.program)
    try:
        async with DB.transaction():
            row = await CouponSeries.insert(CouponSeries(
                program=program.id, code=spec.code, name=spec.name, personal=spec.personal,
                max_uses_per_code=spec.max_uses_per_code, max_uses_per_member=spec.max_uses_per_member,
                valid_from=spec.valid_from, valid_to=spec.valid_to,
            )).returning(CouponSeries.id)
            if spec.promo_code:
                await Coupon.insert(Coupon(series=row[0]["id"], code=spec.promo_code.upper(), expires_at=spec.valid_to))
    except asyncpg.UniqueViolationError:
        raise Conflict(f"coupon series {spec.code!r} or code {spec.promo_code!r} already exists") from None
    return await series(spec.code)


async def generate(series_code: str, request: GenerateIn) -> GeneratedCodes:
    """`count` new unique personal codes; a clash with an existing code is drawn again."""
    found = await _series(series_code)
    if not found.personal:
        raise Conflict(f"coupon series {series_code!r} is a shared promo code: it has one code")
    codes: list[str] = []
    async with DB.transaction():
        while len(codes) < request.count:
            codes += await coupons.generate_codes(series_code, request.count - len(codes), request.prefix)
        if found.valid_to is not None:
            await Coupon.update({Coupon.expires_at: found.valid_to}).where(Coupon.code.is_in(codes))
    return GeneratedCodes(series=series_code, codes=codes)


async def codes(series_code: str, status: str | None, cursor: str | None, limit: int) -> CodesPage:
    found, before, limit = await _series(series_code), decode_cursor(cursor), page_limit(limit)
    rows = await db.fetch_as(CodeOut, CODES_PAGE, found.id, status, status, before, before, limit + 1)
    items = rows[:limit]
    return CodesPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


async def issue(series_code: str, request: IssueIn) -> CodeOut:
    """A personal code given to one member (a goodwill gesture, a campaign); the member is told."""
    found = await _series(series_code)
    if not found.personal:
        raise Conflict(f"coupon series {series_code!r} is a shared promo code: nothing to issue")
    async with DB.transaction():
        member = await db.fetchrow(MEMBER_TO_ISSUE, request.membership_id)
        if member is None or member["program"] != found.program_id:
            raise NotFound(f"membership {request.membership_id} is not in the series' program")
        code = await coupons.issue_personal_coupon(series_code, request.membership_id)
        await Coupon.update({Coupon.expires_at: found.valid_to}).where(Coupon.code == code)
        if member["customer"] is not None:
            await outbox.enqueue("coupon_issued", {"code": code, "series": series_code},
                                 customer_id=member["customer"], card_id=member["card_id"])
        issued = await db.fetchrow_as(CodeOut, CODE, code)
    assert issued is not None  # issued in this transaction
    return issued
