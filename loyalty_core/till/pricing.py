"""From a till's sale body and the database to the engine's input: basket lines with catalog facts,
coupons looked up, the member's counters. Reads only; the engine does the arithmetic."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core import db
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
from loyalty_core.till.identify import CardContext
from loyalty_core.till.types import SaleIn, quantity_milli
from loyalty_core.tables import Coupon, Store


_CATALOG_FACTS = (
    "SELECT p.sku, p.excluded, COALESCE(c.path, ARRAY[]::varchar[]) AS path, b.code AS brand, "
    "COALESCE(b.own_brand, false) AS own_brand FROM product p "
    "LEFT JOIN category c ON c.id = p.category LEFT JOIN brand b ON b.id = p.brand "
    # the SKUs as one JSON parameter: asyncpg type-checks each element of an array parameter in Python
    "WHERE p.sku = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
)


async def basket_lines(sale: SaleIn) -> list[BasketLine]:
    seen: set[int] = set()
    for line in sale.lines:
        if line.line_no in seen:
            raise ValidationFailed(f"line_no {line.line_no} appears twice")
        seen.add(line.line_no)
    skus = sorted({line.sku for line in sale.lines})
    rows = await db.fetch(_CATALOG_FACTS, msgspec.json.encode(skus).decode())
    catalog = {r["sku"]: r for r in rows}
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
                category_codes=list(facts["path"]) if facts else [],
                brand=facts["brand"] if facts else None,
                own_brand=bool(facts["own_brand"]) if facts else False,
                excluded=bool(facts["excluded"]) if facts else False,
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


async def member_info(card: CardContext, program: object, now: dt.datetime) -> MemberInfo | None:
    if card.membership_id is None:
        return MemberInfo(membership_id="anonymous-card-" + card.number, registered=False, purchases_count=0)
    counters = await period_counters(card.membership_id, program, now, card.program_timezone)
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


async def period_counters(membership_id: int, program: object, now: dt.datetime, timezone: str) -> dict[str, int]:
    counters = getattr(getattr(program, "settings", None), "counters", None) or []
    result: dict[str, int] = {}
    for counter in counters:
        since = period_start(counter.period, counter.days, now, timezone)
        # a purchase taken back whole is no purchase: buying and returning a loaf four times must not make the
        # next receipt "the 5th purchase this month" (cancelled sales never counted)
        rows = await Store.raw(
            "SELECT count(*) AS n FROM sale s WHERE s.membership = {} AND s.status = 'confirmed' AND s.occurred_at >= {} "
            "AND EXISTS (SELECT 1 FROM sale_line l WHERE l.sale = s.id AND l.returned_quantity_milli < l.quantity_milli)",
            membership_id, since,
        )
        result[counter.name] = rows[0]["n"]
    return result


async def accrued_today(membership_id: int | None, now: dt.datetime, timezone: str) -> int:
    if membership_id is None:
        return 0
    rows = await Store.raw(
        "SELECT COALESCE(SUM(accrued_points), 0) AS n FROM sale WHERE membership = {} AND status = 'confirmed' "
        "AND occurred_at >= {}",
        membership_id, period_start("day", None, now, timezone),
    )
    return int(rows[0]["n"])


async def build_pricing_input(
    sale: SaleIn, card: CardContext | None, store: StoreInfo | int, program: object, balance_active: int, now: dt.datetime
) -> tuple[Basket, PricingContext]:
    member = await member_info(card, program, sale.occurred_at) if card else None
    settings = getattr(program, "settings", None)
    needs_daily = getattr(settings, "max_accrual_per_day", None) is not None
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
        accrued_today=(
            await accrued_today(card.membership_id, sale.occurred_at, card.program_timezone) if card and needs_daily else 0
        ),
    )
    return basket, context
