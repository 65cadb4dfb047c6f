"""From a till's sale body and the database to the engine's input: basket lines with catalog facts,
coupons looked up, the member's counters. Reads only; the engine does the arithmetic.

The catalog facts of products are kept in the worker's cache (`loyalty_core.cache`): a basket reads only the SKUs
the worker has not seen (one statement, with the version of the facts). A confirm asks its one read statement for
the member's period counters and the day's accrual (`lookups` -> `identify.resolve_scan`); they are read here
only when that statement could not answer (the card's program is not the one the till prices by).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core import cache, db
from loyalty_core.engine import (
    Basket,
    BasketLine,
    CouponInput,
    MemberInfo,
    Payment,
    PricingContext,
    StoreInfo,
)
from loyalty_core.errors import ValidationFailed
from loyalty_core.till.identify import LOOKED_UP, CardContext
from loyalty_core.till.types import SaleIn, quantity_milli
from loyalty_core.tables import Coupon, Store


class ProductFacts(msgspec.Struct, frozen=True, array_like=True):
    excluded: bool
    path: list[str]
    brand: str | None
    own_brand: bool


# One row whatever is found, so the version comes back even for SKUs the catalog does not know (kept as unknown).
_CATALOG_FACTS = f"""
SELECT {cache.VERSION_COLUMN} AS facts_version, (
  SELECT json_agg(json_build_array(p.sku, p.excluded, COALESCE(c.path, ARRAY[]::varchar[]), b.code,
                                   COALESCE(b.own_brand, false)))
  FROM product p LEFT JOIN category c ON c.id = p.category LEFT JOIN brand b ON b.id = p.brand
  -- the SKUs as one JSON parameter: asyncpg type-checks each element of an array parameter in Python
  WHERE p.sku = ANY(ARRAY(SELECT json_array_elements_text($1::json))))::text AS facts
"""
_decode_facts = msgspec.json.Decoder(list[tuple[str, bool, list[str], str | None, bool]]).decode


async def catalog_facts(skus: list[str]) -> dict[str, ProductFacts | None]:
    """The catalog's facts of each SKU (None: not in the catalog), from the worker's cache or one statement."""
    found: dict[str, ProductFacts | None] = {}
    missing = []
    for sku in skus:
        facts = cache.facts.get("product", sku)
        if facts is cache.MISSING:
            missing.append(sku)
        else:
            found[sku] = facts
    if not missing:
        return found
    generation = cache.facts.generation
    row = await db.fetchrow(_CATALOG_FACTS, msgspec.json.encode(missing).decode())
    read: dict[str, ProductFacts | None] = dict.fromkeys(missing)
    for sku, excluded, path, brand, own_brand in _decode_facts(row["facts"]) if row["facts"] else []:  # type: ignore[index]
        read[sku] = ProductFacts(excluded=excluded, path=path, brand=brand, own_brand=own_brand)
    for sku, facts in read.items():
        cache.facts.put("product", sku, facts, cache.product_tags(sku), row["facts_version"], generation)  # type: ignore[index]
    return found | read


async def basket_lines(sale: SaleIn) -> list[BasketLine]:
    seen: set[int] = set()
    for line in sale.lines:
        if line.line_no in seen:
            raise ValidationFailed(f"line_no {line.line_no} appears twice")
        seen.add(line.line_no)
    catalog = await catalog_facts(sorted({line.sku for line in sale.lines}))
    lines = []
    for line in sale.lines:
        facts = catalog.get(line.sku)  # a product unknown to the catalog still earns the base rate
        lines.append(
            BasketLine(
                line_no=line.line_no,
                sku=line.sku,
                quantity_milli=quantity_milli(line.quantity),
                price=line.price,
                amount=line.amount,
                category_codes=list(facts.path) if facts else [],
                brand=facts.brand if facts else None,
                own_brand=facts.own_brand if facts else False,
                excluded=facts.excluded if facts else False,
            )
        )
    return lines


async def coupon_inputs(codes: list[str], membership_id: int | None, now: dt.datetime) -> list[CouponInput]:
    if not codes:
        return []
    rows = await Coupon.raw(
        "SELECT c.code, c.membership, c.uses, c.status, c.expires_at, s.code AS series, s.personal, "
        "s.max_uses_per_code, s.max_uses_per_member, s.valid_from, s.valid_to, "
        "(SELECT count(*) FROM coupon_use u JOIN coupon c2 ON c2.id = u.coupon "
        " WHERE c2.series = s.id AND u.membership = {}) AS member_uses "
        "FROM coupon c JOIN coupon_series s ON s.id = c.series WHERE c.code = ANY({}::varchar[])",
        membership_id, [code.strip().upper() for code in codes],
    )
    found = {r["code"]: r for r in rows}
    result = []
    for code in codes:
        row = found.get(code.strip().upper())
        reason = None
        if row is None:
            reason = "unknown code"
        elif row["status"] != "active":
            reason = f"coupon is {row['status']}"
        elif row["personal"] and row["membership"] is not None and row["membership"] != membership_id:
            reason = "this coupon belongs to another member"
        elif row["max_uses_per_code"] and row["uses"] >= row["max_uses_per_code"]:
            reason = "coupon already used"
        elif membership_id is not None and row["max_uses_per_member"] and row["member_uses"] >= row["max_uses_per_member"]:
            reason = "coupon already used by this member"
        elif row["valid_from"] and now < row["valid_from"]:
            reason = "coupon is not valid yet"
        elif (row["valid_to"] and now > row["valid_to"]) or (row["expires_at"] and now > row["expires_at"]):
            reason = "coupon has expired"
        result.append(
            CouponInput(
                code=code.strip().upper(),
                series=row["series"] if row else None,
                valid=reason is None,
                reason=reason,
                personal=bool(row["personal"]) if row else False,
            )
        )
    return result


async def store_info(store_id: int) -> StoreInfo:
    row = await Store.select(Store.code, Store.region, Store.format, Store.timezone, Store.attributes).where(
        Store.id == store_id
    ).first()
    attributes = row["attributes"] if isinstance(row["attributes"], dict) else {}
    if isinstance(row["attributes"], str):
        import json

        attributes = json.loads(row["attributes"] or "{}")
    return StoreInfo(
        code=row["code"], region=row["region"] or None, format=row["format"] or None,
        timezone=row["timezone"], attributes={k: str(v) for k, v in attributes.items()},
    )


async def member_info(card: CardContext, program: object, now: dt.datetime,
                      looked_up: LookedUp | None = None) -> MemberInfo | None:
    if card.membership_id is None:
        return MemberInfo(membership_id="anonymous-card-" + card.number, registered=False, purchases_count=0)
    if looked_up is None:
        counters = await period_counters(card.membership_id, program, now, card.program_timezone)
    else:
        counters = looked_up.counters
    return MemberInfo(
        membership_id=str(card.membership_id),
        registered=card.registered,
        tier_code=card.tier_code,
        segments=list(card.segments or []),
        birth_date=card.birth_date,
        birth_date_known_since=card.birth_date_known_since,
        favourite_categories=list(card.favourite_categories),
        purchases_count=card.purchases_count,
        purchases_in_period=counters,
        last_purchase_at=card.last_purchase_at,
        joined_at=card.joined_at,
        referred_by=str(card.referred_by) if card.referred_by else None,
    )


def period_start(period: str, days: int | None, now: dt.datetime, timezone: str) -> dt.datetime:
    local = now.astimezone(ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight
    if period == "week":
        return midnight - dt.timedelta(days=local.weekday())
    if period == "month":
        return midnight.replace(day=1)
    if period == "year":
        return midnight.replace(month=1, day=1)
    return now - dt.timedelta(days=days or 30)


# --- the engine's look-ups: the member's period counters and the day's accrual -------------------------------


class Window(msgspec.Struct, frozen=True):
    name: str
    since: dt.datetime


class Lookups(msgspec.Struct, frozen=True):
    """What the engine needs counted for a member under one program's rules at one moment (`identify.LOOKED_UP`)."""

    windows: list[Window]
    day: dt.datetime | None  # the start of the day, when the program caps the points a day


class LookedUp(msgspec.Struct, frozen=True):
    counters: dict[str, int]
    accrued_today: int | None = None


def lookups(program: object, now: dt.datetime, timezone: str) -> Lookups | None:
    """The look-ups `program`'s rules need at `now` (in the program's time zone); None: none."""
    settings = getattr(program, "settings", None)
    counters = getattr(settings, "counters", None) or []
    windows = [Window(c.name, period_start(c.period, c.days, now, timezone)) for c in counters]
    capped = getattr(settings, "max_accrual_per_day", None) is not None
    day = period_start("day", None, now, timezone) if capped else None
    return Lookups(windows, day) if windows or day else None


_decode_looked_up = msgspec.json.Decoder(LookedUp).decode
# the fallback when the confirm's read could not answer: the same expression, on its own
_LOOK_UP = f"SELECT {LOOKED_UP.format(n=2)} AS looked_up FROM membership m WHERE m.id = $1"


async def look_up(membership_id: int, asked: Lookups) -> LookedUp:
    row = await db.fetchrow(_LOOK_UP, membership_id, msgspec.json.encode(asked).decode())
    if row is None or row["looked_up"] is None:
        return LookedUp(counters={w.name: 0 for w in asked.windows}, accrued_today=0)
    return _decode_looked_up(row["looked_up"])


def answered(card: CardContext, asked: Lookups | None, program: tuple[int, int] | None, timezone: str | None) -> LookedUp | None:
    """What the confirm's read statement answered for `asked` (computed for `program` in `timezone`), if it applies
    to `card`: its program, rules version and time zone are the ones asked for. None: read them on their own."""
    if asked is None or program != (card.program_id, card.rules_version) or timezone != card.program_timezone:
        return None
    if card.looked_up is None:  # no membership when read: one made in this transaction has no sales yet
        return LookedUp(counters={w.name: 0 for w in asked.windows}, accrued_today=0)
    return _decode_looked_up(card.looked_up)


async def period_counters(membership_id: int, program: object, now: dt.datetime, timezone: str) -> dict[str, int]:
    asked = lookups(program, now, timezone)
    if asked is None or not asked.windows:
        return {}
    return (await look_up(membership_id, Lookups(asked.windows, None))).counters


async def accrued_today(membership_id: int | None, now: dt.datetime, timezone: str) -> int:
    if membership_id is None:
        return 0
    day = period_start("day", None, now, timezone)
    return (await look_up(membership_id, Lookups([], day))).accrued_today or 0


async def build_pricing_input(
    sale: SaleIn, card: CardContext | None, store: StoreInfo | int, program: object, balance_active: int,
    now: dt.datetime, looked_up: LookedUp | None = None,
) -> tuple[Basket, PricingContext]:
    """`looked_up`: the member's counters and the day's accrual when the caller's read brought them; else read."""
    settings = getattr(program, "settings", None)
    needs_daily = getattr(settings, "max_accrual_per_day", None) is not None
    if card is not None and card.membership_id is not None and looked_up is None:
        asked = lookups(program, sale.occurred_at, card.program_timezone)
        looked_up = await look_up(card.membership_id, asked) if asked else LookedUp(counters={}, accrued_today=0)
    member = await member_info(card, program, sale.occurred_at, looked_up) if card else None
    basket = Basket(
        lines=await basket_lines(sale),
        payments=[Payment(type=p.type, amount=p.amount) for p in sale.payments],
        coupons=await coupon_inputs(sale.coupons, card.membership_id if card else None, now),
        redeem_points=sale.redeem_points,
    )
    context = PricingContext(
        lang=getattr(settings, "language", "ru"),
        now=sale.occurred_at,
        store=store if isinstance(store, StoreInfo) else await store_info(store),
        channel=sale.channel,
        member=member,
        balance_active=balance_active,
        accrued_today=(looked_up.accrued_today or 0) if looked_up is not None and needs_daily else 0,
    )
    return basket, context
