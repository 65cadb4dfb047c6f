"""What the member's page shows beyond the history: push devices, wallet passes, personal coupons, and the way to
the next tier. Plain reads (cosmicpython's views): rows straight into Structs."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import db


class DeviceRow(msgspec.Struct, kw_only=True):
    platform: str
    created_at: dt.datetime
    dead_at: dt.datetime | None = None


class PassRow(msgspec.Struct, kw_only=True):
    card: str
    devices: int
    updated_at: dt.datetime | None = None


class CouponRow(msgspec.Struct, kw_only=True):
    code: str
    series: str
    status: str
    uses: int
    issued_at: dt.datetime
    expires_at: dt.datetime | None = None


class TierProgress(msgspec.Struct, kw_only=True):
    spend: int  # minor units over the window
    next_code: str | None = None
    next_name: str | None = None
    threshold: int | None = None
    missing: int = 0  # still to spend for the next tier
    percent: int = 100


class MemberExtras(msgspec.Struct, kw_only=True):
    devices: list[DeviceRow]
    passes: list[PassRow]
    coupons: list[CouponRow]
    tier: TierProgress


async def member_extras(membership_id: int, customer_id: int | None) -> MemberExtras:
    devices = await db.fetch_as(DeviceRow, "SELECT platform, created_at, dead_at FROM push_device WHERE customer = $1 "
                                "ORDER BY id", customer_id) if customer_id else []
    passes = await db.fetch_as(PassRow, "SELECT c.number AS card, count(r.id)::int AS devices, "
                               "c.pass_updated_at AS updated_at FROM card c JOIN pass_registration r ON r.card = c.id "
                               "WHERE c.membership = $1 GROUP BY c.id ORDER BY c.id", membership_id)
    coupons = await db.fetch_as(CouponRow, "SELECT k.code, s.code AS series, k.status, k.uses, k.issued_at, "
                                "k.expires_at FROM coupon k JOIN coupon_series s ON s.id = k.series "
                                "WHERE k.membership = $1 ORDER BY k.issued_at DESC, k.id DESC LIMIT 50", membership_id)
    row = await db.fetchrow(
        "SELECT m.tier_spend + CASE WHEN m.carried_until > now() THEN m.carried_spend ELSE 0 END AS spend, "
        "n.code, n.name, n.threshold_spend FROM membership m LEFT JOIN LATERAL (SELECT code, name, threshold_spend "
        "FROM tier t WHERE t.program = m.program AND t.threshold_spend > m.tier_spend "
        "+ CASE WHEN m.carried_until > now() THEN m.carried_spend ELSE 0 END ORDER BY t.threshold_spend LIMIT 1) n "
        "ON true WHERE m.id = $1", membership_id)
    tier = TierProgress(spend=0)
    if row is not None:
        spend = int(row["spend"])
        tier = TierProgress(spend=spend)
        if row["code"] is not None:
            threshold = int(row["threshold_spend"])
            tier = TierProgress(spend=spend, next_code=row["code"], next_name=row["name"], threshold=threshold,
                                missing=threshold - spend, percent=min(99, spend * 100 // threshold) if threshold else 0)
    return MemberExtras(devices=devices, passes=passes, coupons=coupons, tier=tier)
