"""Members with the facts a segment or an event reads, written as the till and the ledger would leave them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from loyalty_core import db
from tests.factories import Member, Shop, make_member

UTC = dt.timezone.utc


async def member_with(shop: Shop, *, last_purchase: dt.datetime | None = None, purchases: int = 0, spend: int = 0,
                      tier: str | None = None, channel: str = "", birth_date: dt.date | None = None,
                      joined: dt.datetime | None = None, **kw: Any) -> Member:
    member = await make_member(shop, **kw)
    await db.fetch(
        "UPDATE membership SET last_purchase_at = $2, first_purchase_at = COALESCE(first_purchase_at, $2), "
        "purchases_count = $3, tier_spend = $4, registration_channel = $5, joined_at = COALESCE($6, joined_at), "
        "tier = COALESCE((SELECT id FROM tier WHERE program = $7 AND code = $8), tier) WHERE id = $1",
        member.membership_id, last_purchase, purchases, spend, channel, joined, shop.program_id, tier)
    if birth_date is not None:
        await db.fetch("UPDATE customer SET birth_date = $2, birth_date_set_at = NULL WHERE id = $1",
                       member.customer_id, birth_date)
    return member


async def segments_of(membership_id: int | None) -> list[str]:
    row = await db.fetchrow("SELECT segments FROM membership WHERE id = $1", membership_id)
    assert row is not None
    return list(row["segments"])


async def in_segment(shop: Shop, code: str) -> set[int]:
    rows = await db.fetch("SELECT id FROM membership WHERE program = $1 AND segments @> ARRAY[$2::varchar]",
                          shop.program_id, code)
    return {r["id"] for r in rows}
