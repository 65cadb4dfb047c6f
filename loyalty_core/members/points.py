"""What a member sees of their points: balance, bonus history, purchases with explanations, tier progress."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import db
from loyalty_core.errors import SaleNotFound
from loyalty_core.ledger import ops
from loyalty_core.members.profile import (
    Member,
    decode_cursor,
    encode_cursor,
    page_limit,
)
from loyalty_core.replicas import reading
from loyalty_core.tables import Tier

# --- the statements ------------------------------------------------------------------------------------------

# $2 and $3 the cursor (the last id shown, or NULL), $4 one more than the page
HISTORY_PAGE = (
    "SELECT e.id, e.kind, e.bucket, e.amount, e.reason, e.sale AS sale_id, s.receipt_id, e.created_at "
    "FROM ledger_entry e LEFT JOIN sale s ON s.id = e.sale "
    "WHERE e.account = $1 AND ($2::bigint IS NULL OR e.id < $3) ORDER BY e.id DESC LIMIT $4"
)
_SALES = (
    "SELECT s.id, st.name AS store, s.receipt_id, s.occurred_at, s.status, s.amount, s.discount, s.redeemed_points, "
    "s.to_pay, s.accrued_points, s.response FROM sale s JOIN store st ON st.id = s.store "
    "WHERE s.membership = $1 AND ($2::bigint IS NULL OR s.id OP $3) ORDER BY s.id DESC LIMIT $4"
)
PURCHASES_BEFORE = _SALES.replace("OP", "<")
PURCHASE_EXACTLY = _SALES.replace("OP", "=")
PURCHASE_LINES = (
    "SELECT l.sale, l.line_no, l.sku, p.name, l.quantity_milli, l.price, l.amount, l.discount, l.redeemed_points, "
    "l.to_pay, l.accrued_points, l.returned_quantity_milli FROM sale_line l LEFT JOIN product p ON p.sku = l.sku "
    "WHERE l.sale = ANY($1::integer[]) ORDER BY l.sale, l.line_no"
)
TIER_SPEND = "SELECT m.tier_spend, m.tier AS tier_id FROM membership m WHERE m.id = $1"


@reading
async def balance(member: Member, now: dt.datetime) -> ops.BalanceOut:
    if member.account_id is None:
        return ops.BalanceOut(active=0, pending=0, pending_lots=[], expiring=[], debt=0)
    return await ops.balance(member.account_id, now, member.timezone)


# --- bonus history ---------------------------------------------------------------------------


class HistoryItem(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    bucket: str
    amount: int
    reason: str
    sale_id: int | None
    receipt_id: str | None
    created_at: dt.datetime


class HistoryPage(msgspec.Struct, kw_only=True):
    items: list[HistoryItem]
    next_cursor: str | None


@reading
async def history(member: Member, cursor: str | None, limit: int, now: dt.datetime | None = None) -> HistoryPage:
    """Ledger entries, newest first; a sale-linked entry names the receipt. What fell due is applied
    first, so the entries add up to the balance shown at the same moment."""
    before, limit = decode_cursor(cursor), page_limit(limit)
    if member.account_id is None:
        return HistoryPage(items=[], next_cursor=None)
    if before is None:
        await ops.settle_if_due(member.account_id, now or dt.datetime.now(dt.UTC))
    rows = await db.fetch_as(HistoryItem, HISTORY_PAGE, member.account_id, before, before, limit + 1)
    items = rows[:limit]
    return HistoryPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


# --- purchases --------------------------------------------------------------------------------


class PurchaseLine(msgspec.Struct, kw_only=True):
    line_no: int
    sku: str
    name: str | None
    quantity_milli: int
    price: int
    amount: int
    discount: int
    redeemed_points: int
    to_pay: int
    accrued_points: int
    returned_quantity_milli: int


class AppliedRule(msgspec.Struct, kw_only=True):
    rule: str
    name: str
    explanation: str
    lines: list[int] = []
    points: int = 0
    discount: int = 0


class Purchase(msgspec.Struct, kw_only=True):
    id: int
    store: str
    receipt_id: str
    occurred_at: dt.datetime
    status: str
    amount: int
    discount: int
    redeemed_points: int
    to_pay: int
    accrued_points: int
    lines: list[PurchaseLine]
    applied: list[AppliedRule]


class PurchasePage(msgspec.Struct, kw_only=True):
    items: list[Purchase]
    next_cursor: str | None


def _applied(response: object) -> list[AppliedRule]:
    """The rule explanations the till got back when the sale was confirmed."""
    if isinstance(response, str | bytes):
        response = msgspec.json.decode(response)
    applied = response.get("applied", []) if isinstance(response, dict) else []
    return [msgspec.convert(a, AppliedRule, strict=False) for a in applied if isinstance(a, dict) and "rule" in a]


_PURCHASES = {"before": PURCHASES_BEFORE, "exactly": PURCHASE_EXACTLY}


async def _purchases(member: Member, where_id: int | None, op: str, limit: int) -> list[Purchase]:
    rows = await db.fetch(_PURCHASES[op], member.membership_id, where_id, where_id, limit)
    if not rows:
        return []
    lines = await db.fetch(PURCHASE_LINES, [r["id"] for r in rows])
    by_sale: dict[int, list[PurchaseLine]] = {}
    for record in lines:
        line = dict(record)
        by_sale.setdefault(line.pop("sale"), []).append(PurchaseLine(**line))
    return [
        Purchase(**{k: v for k, v in r.items() if k != "response"}, lines=by_sale.get(r["id"], []), applied=_applied(r["response"]))
        for r in rows
    ]


@reading
async def purchases(member: Member, cursor: str | None, limit: int) -> PurchasePage:
    before, limit = decode_cursor(cursor), page_limit(limit)
    items = await _purchases(member, before, "before", limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return PurchasePage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None)


@reading
async def purchase(member: Member, sale_id: int) -> Purchase:
    items = await _purchases(member, sale_id, "exactly", 1)
    if not items:
        raise SaleNotFound(f"Sale {sale_id} is not one of your purchases")
    return items[0]


# --- tier ------------------------------------------------------------------------------------


class TierOut(msgspec.Struct, kw_only=True):
    code: str
    name: str
    rank: int
    threshold_spend: int


class TierProgress(msgspec.Struct, kw_only=True):
    current: TierOut | None
    next: TierOut | None
    spend: int  # qualifying spend so far, minor units
    remaining_to_next: int | None  # minor units still to spend for the next tier


@reading
async def tier_progress(member: Member) -> TierProgress:
    row = await db.fetchrow(TIER_SPEND, member.membership_id)
    assert row is not None  # the member was found by their membership
    spend, tier_id = row["tier_spend"], row["tier_id"]
    tiers = await (
        Tier.select(Tier.id, Tier.code, Tier.name, Tier.rank, Tier.threshold_spend)
        .where(Tier.program == member.program_id)
        .order_by(Tier.rank)
    )
    current = next((t for t in tiers if t["id"] == tier_id), tiers[0] if tiers else None)
    higher = [t for t in tiers if current is None or t["rank"] > current["rank"]]
    upcoming = higher[0] if higher else None

    def out(t: dict | None) -> TierOut | None:
        return None if t is None else TierOut(code=t["code"], name=t["name"], rank=t["rank"], threshold_spend=t["threshold_spend"])

    return TierProgress(
        current=out(current), next=out(upcoming), spend=spend,
        remaining_to_next=max(upcoming["threshold_spend"] - spend, 0) if upcoming else None,
    )
