"""Favourite categories, coupons and the referral code of a member."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core import db
from loyalty_core.errors import Conflict, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.members.identity import Code, ProgramRef, program_document
from loyalty_core.members.profile import Member
from loyalty_core.replicas import reading
from loyalty_core.tables import Category, FavouriteCategory, Membership

# --- the statements ------------------------------------------------------------------------------------------

CHOSEN_FAVOURITES = (
    "SELECT c.code, c.name, c.names, f.period_start FROM favourite_category f JOIN category c ON c.id = f.category "
    "WHERE f.membership = $1 AND f.active ORDER BY c.code"
)
MEMBER_COUPONS = (
    "SELECT c.code, s.code AS series, s.name, c.status, c.uses, c.issued_at, "
    "COALESCE(c.expires_at, s.valid_to) AS expires_at FROM coupon c JOIN coupon_series s ON s.id = c.series "
    "WHERE c.membership = $1 ORDER BY c.id DESC"
)
REFERRAL = (
    "SELECT m.referral_code AS code, (SELECT count(*) FROM membership r WHERE r.referred_by = m.id) AS invited "
    "FROM membership m WHERE m.id = $1"
)
TIER_AND_SEGMENTS = (
    "SELECT t.code AS tier, COALESCE(m.segments, ARRAY[]::varchar[]) AS segments FROM membership m "
    "LEFT JOIN tier t ON t.id = m.tier WHERE m.id = $1"
)

DEFAULT_FAVOURITES = 3


class CategoryOut(msgspec.Struct, kw_only=True):
    code: str
    name: str
    names: dict[str, str] = {}  # per language ({"ru": ..., "en": ...}) when the catalog gives them; else `name`


def catalog_names(value: object) -> dict[str, str]:
    """A JSONB column as read (asyncpg hands jsonb over as text)."""
    if isinstance(value, str):
        value = msgspec.json.decode(value or "{}")
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


class Favourites(msgspec.Struct, kw_only=True):
    count: int  # how many the program lets a member choose
    chosen: list[CategoryOut]
    selectable: list[CategoryOut]
    period_start: dt.date | None  # the month the current choice was made for
    next_change_on: dt.date  # the first day a new choice is accepted


class FavouritesIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    categories: Annotated[list[Code], msgspec.Meta(max_length=50)]


def _month_start(now: dt.datetime, timezone: str) -> dt.date:
    return now.astimezone(ZoneInfo(timezone)).date().replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


async def _allowed_count(member: Member) -> int:
    document = await program_document(ProgramRef(member.program_id, member.program_code, member.timezone, member.rules_version))
    value = document.get("settings", {}).get("favourite_categories_count")
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_FAVOURITES


@reading
async def favourites(member: Member, now: dt.datetime) -> Favourites:
    selectable = await Category.select(Category.code, Category.name, Category.names).where(
        Category.selectable_as_favourite.eq(True)).order_by(Category.code)
    chosen = await db.fetch(CHOSEN_FAVOURITES, member.membership_id)
    period = chosen[0]["period_start"] if chosen else None
    month = _month_start(now, member.timezone)
    return Favourites(
        count=await _allowed_count(member),
        chosen=[CategoryOut(code=c["code"], name=c["name"], names=catalog_names(c["names"])) for c in chosen],
        selectable=[CategoryOut(code=c["code"], name=c["name"], names=catalog_names(c["names"])) for c in selectable],
        period_start=period,
        next_change_on=_next_month(month) if period is not None and period >= month else month,
    )


async def choose_favourites(member: Member, choice: FavouritesIn, now: dt.datetime) -> Favourites:
    """Replace the member's choice; once per calendar month (program time zone). Old choices stay as history."""
    codes = list(dict.fromkeys(c.strip() for c in choice.categories))
    count = await _allowed_count(member)
    if not codes or len(codes) > count:
        raise ValidationFailed(f"choose between 1 and {count} categories")
    rows = await Category.select(Category.id, Category.code).where(
        Category.code.is_in(codes) & Category.selectable_as_favourite.eq(True)
    )
    if len(rows) != len(codes):
        unknown = sorted(set(codes) - {r["code"] for r in rows})
        raise ValidationFailed(f"not selectable as favourite: {', '.join(unknown)}")
    month = _month_start(now, member.timezone)
    async with DB.transaction():
        await Membership.select(Membership.id).where(Membership.id == member.membership_id).lock_rows()
        current = await FavouriteCategory.select(FavouriteCategory.period_start).where(
            (FavouriteCategory.membership == member.membership_id) & FavouriteCategory.active.eq(True)
        ).first()
        if current is not None and current["period_start"] >= month:
            raise Conflict(f"Favourite categories can be changed once a month; next change from {_next_month(month)}")
        await FavouriteCategory.update({FavouriteCategory.active: False}).where(
            (FavouriteCategory.membership == member.membership_id) & FavouriteCategory.active.eq(True)
        )
        await FavouriteCategory.insert(
            *[FavouriteCategory(membership=member.membership_id, category=r["id"], period_start=month, chosen_at=now,
                                active=True) for r in rows]
        )
    return await favourites(member, now)


# --- coupons and referral -----------------------------------------------------------------


class CouponOut(msgspec.Struct, kw_only=True):
    code: str
    series: str
    name: str
    status: str
    uses: int
    issued_at: dt.datetime
    expires_at: dt.datetime | None


@reading
async def coupons(member: Member) -> list[CouponOut]:
    return await db.fetch_as(CouponOut, MEMBER_COUPONS, member.membership_id)


class Referral(msgspec.Struct, kw_only=True):
    code: str | None
    invited: int  # members who joined with this code


@reading
async def referral(member: Member) -> Referral:
    found = await db.fetchrow_as(Referral, REFERRAL, member.membership_id)
    assert found is not None  # the member was found by their membership
    return found


# --- offers ---------------------------------------------------------------------------------


class Offer(msgspec.Struct, kw_only=True):
    rule: str
    name: str
    group: str
    stage: str  # discount | accrual
    valid_from: dt.date | None
    valid_to: dt.date | None
    weekdays: list[int]  # 1 = Monday; empty = every day
    needs_coupon: bool


@reading
async def offers(member: Member, now: dt.datetime) -> list[Offer]:
    """The live rules that can apply to this member (tier and segments match, not expired), for the app's offers screen.

    Conditions on the basket are left to the till; store and channel targeting are not filtered here.
    """
    from loyalty_core.rules.programs import rules_document

    document = await rules_document(member.program_id, member.rules_version)
    row = await db.fetchrow(TIER_AND_SEGMENTS, member.membership_id)
    assert row is not None  # the member was found by their membership
    tier, segments = row["tier"], set(row["segments"])
    today = now.astimezone(ZoneInfo(member.timezone)).date()

    def reaches(target: object) -> bool:
        if target is None:
            return True
        return ((not target.tiers or tier in target.tiers)  # type: ignore[attr-defined]
                and (not target.segments or bool(segments & set(target.segments)))  # type: ignore[attr-defined]
                and not segments & set(target.exclude_segments))  # type: ignore[attr-defined]

    found: list[Offer] = []
    for group in document.groups:  # type: ignore[attr-defined]
        if not group.active or group.stage not in ("discount", "accrual") or not reaches(group.target):
            continue
        for rule in group.rules:
            schedule = rule.schedule
            if not rule.active or not reaches(rule.target):
                continue
            if schedule is not None and ((schedule.valid_to and schedule.valid_to < today)
                                         or (schedule.valid_from and schedule.valid_from > today)):
                continue
            target = rule.target or group.target
            found.append(Offer(
                rule=rule.code, name=rule.name, group=group.code, stage=group.stage,
                valid_from=schedule.valid_from if schedule else None, valid_to=schedule.valid_to if schedule else None,
                weekdays=list(schedule.weekdays) if schedule else [],
                needs_coupon=bool(target and (target.coupon_series or target.coupon_codes)),
            ))
    return found
