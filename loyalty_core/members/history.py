"""A member's whole history for the call centre: who they are, their cards (blocked, replaced), every
ledger movement with its reason and receipt, every sale with its lines, returns and the rules that
applied, and tier changes. Ledger and sales are cursor-paginated, newest first. Reads only.

Tier changes are read from the outbox messages that announced them (the only record a change leaves).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from loyalty_core import db
from loyalty_core.errors import NotFound
from loyalty_core.ledger import ops
from loyalty_core.ledger.ops import BalanceOut
from loyalty_core.members.profile import decode_cursor, encode_cursor, page_limit
from loyalty_core.replicas import reading

# --- the statements ------------------------------------------------------------------------------------------

MEMBER = (
    "SELECT m.id AS membership_id, p.code AS program, m.status, m.joined_at, t.code AS tier, t.name AS tier_name, "
    "m.tier_spend, COALESCE(m.segments, ARRAY[]::varchar[]) AS segments, m.purchases_count, m.last_purchase_at, "
    "c.id AS c_id, c.name AS c_name, c.phone AS c_phone, c.email AS c_email, c.birth_date AS c_birth_date, "
    "c.status AS c_status, a.id AS account_id FROM membership m JOIN program p ON p.id = m.program "
    "LEFT JOIN tier t ON t.id = m.tier LEFT JOIN customer c ON c.id = m.customer "
    "LEFT JOIN account a ON a.membership = m.id AND a.currency = 'points' WHERE m.id = $1"
)
CARDS = (
    "SELECT c.number, c.kind, c.status, c.series, c.blocked_reason, r.number AS replaced_by, c.created_at "
    "FROM card c LEFT JOIN card r ON r.id = c.replaced_by WHERE c.membership = $1 ORDER BY c.id"
)
TIER_CHANGES = (
    "SELECT n.created_at AS at, n.payload FROM notification n JOIN card c ON c.id = n.card "
    "WHERE c.membership = $1 AND n.kind = 'tier_changed' ORDER BY n.id DESC LIMIT 100"
)
ACCOUNTS = "SELECT id FROM account WHERE membership = $1"
# $2 and $3 the cursor (the last id shown, or NULL), $4 one more than the page
LEDGER_PAGE = (
    "SELECT e.id, e.created_at AS at, e.kind, e.bucket, e.amount, e.reason, l.source AS lot_source, "
    "l.expires_at AS lot_expires_at, e.sale AS sale_id, s.receipt_id, r.return_id FROM ledger_entry e "
    "JOIN account a ON a.id = e.account LEFT JOIN point_lot l ON l.id = e.lot LEFT JOIN sale s ON s.id = e.sale "
    "LEFT JOIN sale_return r ON r.id = e.sale_return "
    "WHERE a.membership = $1 AND ($2::bigint IS NULL OR e.id < $3) ORDER BY e.id DESC LIMIT $4"
)
SALES_PAGE = (
    "SELECT s.id, st.code AS store, t.code AS till, s.receipt_id, s.business_date, s.occurred_at, s.card_number, "
    "s.channel, s.status, s.amount, s.discount, s.redeemed_points, s.to_pay, s.accrued_points, s.rules_version, "
    "s.trace FROM sale s JOIN store st ON st.id = s.store JOIN till t ON t.id = s.till "
    "WHERE s.membership = $1 AND ($2::bigint IS NULL OR s.id < $3) ORDER BY s.id DESC LIMIT $4"
)
SALE_LINES = (
    "SELECT sale, line_no, sku, quantity_milli::float8 / 1000 AS quantity, price, amount, discount, redeemed_points, "
    "to_pay, accrued_points, returned_quantity_milli::float8 / 1000 AS returned_quantity FROM sale_line "
    "WHERE sale = ANY($1::bigint[]) ORDER BY sale, line_no"
)
SALE_RETURNS = (
    "SELECT sale, return_id, created_at AS at, clawed_back_points, refunded_points, refunded_amount "
    "FROM sale_return WHERE sale = ANY($1::bigint[]) ORDER BY id"
)


class CustomerOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    phone: str | None
    email: str | None
    birth_date: dt.date | None
    status: str


class MemberOut(msgspec.Struct, kw_only=True):
    membership_id: int
    program: str
    status: str
    joined_at: dt.datetime
    tier: str | None
    tier_name: str | None
    tier_spend: int
    segments: list[str]
    purchases_count: int
    last_purchase_at: dt.datetime | None
    customer: CustomerOut | None


class CardOut(msgspec.Struct, kw_only=True):
    number: str
    kind: str
    status: str
    series: str
    blocked_reason: str | None
    replaced_by: str | None
    created_at: dt.datetime


class TierChangeOut(msgspec.Struct, kw_only=True):
    at: dt.datetime
    tier: str | None
    name: str | None
    up: bool | None


class LedgerEntryOut(msgspec.Struct, kw_only=True):
    id: int
    at: dt.datetime
    kind: str  # accrue activate redeem return_clawback return_refund expire adjust import transfer
    bucket: str
    amount: int
    reason: str
    lot_source: str | None
    lot_expires_at: dt.datetime | None
    sale_id: int | None
    receipt_id: str | None
    return_id: str | None


class LedgerPage(msgspec.Struct, kw_only=True):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class SaleLineOut(msgspec.Struct, kw_only=True):
    line_no: int
    sku: str
    quantity: float
    price: int
    amount: int
    discount: int
    redeemed_points: int
    to_pay: int
    accrued_points: int
    returned_quantity: float


class ReturnOut(msgspec.Struct, kw_only=True):
    return_id: str
    at: dt.datetime
    clawed_back_points: int
    refunded_points: int
    refunded_amount: int


class AppliedOut(msgspec.Struct, kw_only=True):
    rule: str
    name: str
    explanation: str
    points: int = 0
    discount: int = 0


class SaleOut(msgspec.Struct, kw_only=True):
    id: int
    store: str
    till: str
    receipt_id: str
    business_date: dt.date
    occurred_at: dt.datetime
    card_number: str | None
    channel: str
    status: str
    amount: int
    discount: int
    redeemed_points: int
    to_pay: int
    accrued_points: int
    rules_version: int
    lines: list[SaleLineOut]
    returns: list[ReturnOut]
    applied: list[AppliedOut]


class SalesPage(msgspec.Struct, kw_only=True):
    items: list[SaleOut]
    next_cursor: str | None


class MemberHistory(msgspec.Struct, kw_only=True):
    member: MemberOut
    balance: BalanceOut
    cards: list[CardOut]
    tier_changes: list[TierChangeOut]
    ledger: LedgerPage
    sales: SalesPage


async def _member(membership_id: int) -> tuple[MemberOut, int | None]:
    record = await db.fetchrow(MEMBER, membership_id)
    if record is None:
        raise NotFound(f"membership {membership_id} does not exist")
    row = dict(record)
    customer_fields = {k[2:]: row.pop(k) for k in list(row) if k.startswith("c_")}
    account_id = row.pop("account_id")
    customer = CustomerOut(**customer_fields) if customer_fields["id"] is not None else None
    return MemberOut(customer=customer, **row), account_id


async def _cards(membership_id: int) -> list[CardOut]:
    return await db.fetch_as(CardOut, CARDS, membership_id)


async def _tier_changes(membership_id: int) -> list[TierChangeOut]:
    rows = await db.fetch(TIER_CHANGES, membership_id)
    changes = []
    for row in rows:
        payload: Any = row["payload"]
        payload = msgspec.json.decode(payload) if isinstance(payload, str | bytes) else payload or {}
        changes.append(TierChangeOut(at=row["at"], tier=payload.get("tier"), name=payload.get("name"), up=payload.get("up")))
    return changes


@reading
async def ledger_page(membership_id: int, cursor: str | None, limit: int, now: dt.datetime | None = None) -> LedgerPage:
    before, limit = decode_cursor(cursor), page_limit(limit)
    if before is None:
        # what fell due is applied first: the entries add up to the balance shown at the same moment
        for account in await db.fetch(ACCOUNTS, membership_id):
            await ops.settle_if_due(account["id"], now or dt.datetime.now(dt.UTC))
    rows = await db.fetch_as(LedgerEntryOut, LEDGER_PAGE, membership_id, before, before, limit + 1)
    items = rows[:limit]
    return LedgerPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


def _applied(trace: Any) -> list[AppliedOut]:
    data = msgspec.json.decode(trace) if isinstance(trace, str | bytes) else trace
    applied = data.get("applied", []) if isinstance(data, dict) else []
    return [msgspec.convert(a, AppliedOut, strict=False) for a in applied]


@reading
async def sales_page(membership_id: int, cursor: str | None, limit: int) -> SalesPage:
    before, limit = decode_cursor(cursor), page_limit(limit)
    rows = [dict(r) for r in await db.fetch(SALES_PAGE, membership_id, before, before, limit + 1)]
    ids = [r["id"] for r in rows[:limit]]
    lines = await db.fetch(SALE_LINES, ids)
    returns = await db.fetch(SALE_RETURNS, ids)
    items = []
    for row in rows[:limit]:
        trace = row.pop("trace")
        items.append(SaleOut(
            **row, applied=_applied(trace),
            lines=[msgspec.convert({k: v for k, v in ln.items() if k != "sale"}, SaleLineOut, strict=False)
                   for ln in lines if ln["sale"] == row["id"]],
            returns=[ReturnOut(**{k: v for k, v in r.items() if k != "sale"}) for r in returns if r["sale"] == row["id"]],
        ))
    return SalesPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)


@reading
async def member_history(membership_id: int, now: dt.datetime, limit: int = 20) -> MemberHistory:
    member, account_id = await _member(membership_id)
    balance = (BalanceOut(active=0, pending=0, pending_lots=[], expiring=[], debt=0) if account_id is None
               else await ops.balance(account_id, now))
    return MemberHistory(
        member=member, balance=balance, cards=await _cards(membership_id),
        tier_changes=await _tier_changes(membership_id),
        ledger=await ledger_page(membership_id, None, limit), sales=await sales_page(membership_id, None, limit),
    )
