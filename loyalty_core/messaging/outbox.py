"""The transactional outbox: notification rows written in the same transaction as the change that causes them.

The worker (backend.push) claims them with SKIP LOCKED and delivers: app pushes, wallet-pass updates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from loyalty_core import db

# --- the statements ------------------------------------------------------------------------------------------

ENQUEUE = (
    "INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error, created_at) "
    "VALUES ($1, $2, $3, $4, 'pending', 0, now(), '', now())"
)
# whole seconds, strictly increasing per card (see pass_changed)
STAMP_PASS = (
    "UPDATE card SET pass_updated_at = GREATEST(date_trunc('second', $1::timestamptz), "
    "date_trunc('second', pass_updated_at) + interval '1 second') WHERE id = $2"
)
# each code's use counted with its limit in the WHERE; $2 the membership (or NULL), $3 the sale
USE_COUPONS = (
    "WITH used AS (UPDATE coupon c SET uses = c.uses + 1, status = CASE WHEN s.max_uses_per_code > 0 AND "
    "c.uses + 1 >= s.max_uses_per_code THEN 'used' ELSE c.status END FROM coupon_series s "
    "WHERE s.id = c.series AND c.code = ANY($1::varchar[]) AND c.status = 'active' "
    "AND (s.max_uses_per_code = 0 OR c.uses < s.max_uses_per_code) RETURNING c.id, c.code) "
    "INSERT INTO coupon_use (coupon, membership, sale, used_at) SELECT used.id, $2, $3, now() FROM used "
    "RETURNING coupon"
)
RELEASE_COUPONS = (
    "WITH gone AS (DELETE FROM coupon_use WHERE sale = $1 RETURNING coupon) "
    "UPDATE coupon c SET uses = GREATEST(c.uses - g.n, 0), status = CASE WHEN c.status = 'used' THEN 'active' "
    "ELSE c.status END FROM (SELECT coupon, count(*) AS n FROM gone GROUP BY coupon) g WHERE c.id = g.coupon"
)


async def enqueue(kind: str, payload: dict[str, Any], *, customer_id: int | None = None, card_id: int | None = None) -> None:
    await db.fetch(ENQUEUE, customer_id, card_id, kind, msgspec.json.encode(payload).decode())


async def pass_changed(card_id: int, now: dt.datetime) -> None:
    """What a wallet pass shows changed: mark it updated and queue the pass push in this transaction."""
    # Whole seconds, strictly increasing per card: HTTP Last-Modified/If-Modified-Since have one-second
    # resolution, so two changes within one second must still get different stamps (wallet_passes/web.py).
    await db.fetch(STAMP_PASS, now, card_id)
    await enqueue("pass_update", {"card_id": card_id}, card_id=card_id)


async def use_coupons(priced: Any, card: Any, sale_id: int) -> None:
    """Applied coupons are used up by this sale; coupons a rule issues are given to the member.

    The use is counted with its limit in the WHERE: a single-use code confirmed at two tills at
    once goes through at one of them; the other's sale is refused as a whole (CouponInvalid).
    """
    applied = [c.code for c in priced.coupons if c.status == "applied"]
    if applied:
        rows = await db.fetch(USE_COUPONS, applied, card.membership_id if card is not None else None, sale_id)
        if len(rows) != len(set(applied)):
            from loyalty_core.errors import CouponInvalid

            raise CouponInvalid("A coupon was used up by another sale meanwhile: calculate the receipt again",
                                coupons=applied)
    if priced.issued_coupons and card is not None and card.membership_id is not None:
        from loyalty_core.coupons.codes import issue_personal_coupon

        for series_code in priced.issued_coupons:
            code = await issue_personal_coupon(series_code, card.membership_id)
            if code and card.customer_id is not None:
                await enqueue("coupon_issued", {"code": code, "series": series_code, "sale_id": sale_id},
                              customer_id=card.customer_id, card_id=card.card_id)


async def release_coupons(sale_id: int) -> None:
    """A cancelled sale gives its coupons back."""
    await db.fetch(RELEASE_COUPONS, sale_id)
