"""Ledger operations on the database: read the account (`load_views`, `lock_account`), let the pure
builders of `posting.Plan` decide, and hand the Posting to the one writer (`writer.write`). Every function
runs inside a transaction the caller opened; under `lock_account`'s row lock a write's version guard always
holds, and an optimistic caller (the till's confirm) reads without the lock and lets the guard tell it.

Entries are immutable and signed; each movement writes one entry per lot and bucket it touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core import db
from loyalty_core.errors import NotFound
from loyalty_core.ledger import writer
from loyalty_core.ledger.posting import ClawBack, Lot, Plan, RefundSource, SaleFacts, View
from loyalty_core.piccolo_conf import DB

# an account as read for a plan (sums, version, lots in play, unpaid debts); the old name stays for callers
AccountState = View

__all__ = ["AccountState", "ClawBack", "View", "accrue", "apply_due", "balance", "ensure_account", "load_sale_facts",
           "load_views", "lock_account", "lock_accounts", "settle_if_due", "spend", "transfer"]


async def ensure_account(membership_id: int) -> int:
    rows = await db.fetch(
        "INSERT INTO account (membership, currency, active, pending, updated_at) "
        "VALUES ($1, 'points', 0, 0, now()) ON CONFLICT (membership, currency) DO NOTHING RETURNING id",
        membership_id,
    )
    if rows:
        return rows[0]["id"]
    rows = await db.fetch("SELECT id FROM account WHERE membership = $1 AND currency = 'points'", membership_id)
    return rows[0]["id"]


class _ViewRow(msgspec.Struct):
    id: int
    active: int
    pending: int
    debt: int
    version: int
    lots: list[Lot]
    debts: list[dict]
    customer: int | None = None
    card: int | None = None


def _view_json(sale_param: str | None, holder: bool = False) -> str:
    """The account `a` as a plan reads it, as one JSON value: sums, version, its lots in play (pending and active,
    and with `sale_param` a returned sale's own lots in any state) and, when it owes, its unpaid debts by owing
    lot, oldest first."""
    own = f" OR (l.sale = {sale_param} AND l.source IN ('sale', 'transfer'))" if sale_param else ""
    holder_sql = (
        "'customer', (SELECT m.customer FROM membership m WHERE m.id = a.membership), "
        "'card', (SELECT c.id FROM card c WHERE c.membership = a.membership AND c.status = 'active' "
        "ORDER BY c.id DESC LIMIT 1),\n  " if holder else ""
    )
    return f"""json_build_object({holder_sql}
  'id', a.id, 'active', a.active, 'pending', a.pending, 'debt', a.debt, 'version', a.version,
  'lots', (SELECT COALESCE(json_agg(json_build_object('id', l.id, 'state', l.state, 'remaining', l.remaining,
                   'activates_at', l.activates_at, 'expires_at', l.expires_at, 'sale', l.sale, 'source', l.source)
                   ORDER BY l.id), '[]') FROM point_lot l
           WHERE l.account = a.id AND (l.state IN ('pending', 'active'){own})),
  'debts', CASE WHEN a.debt > 0 THEN (
      SELECT COALESCE(json_agg(json_build_object('lot', d.lot, 'owed', d.owed) ORDER BY d.first), '[]') FROM (
        SELECT lot, SUM(amount)::bigint AS owed, MIN(id) AS first FROM ledger_entry
        WHERE account = a.id AND bucket = 'debt' GROUP BY lot HAVING SUM(amount) > 0) d)
    ELSE '[]'::json END)"""


# One statement: the accounts as plans read them, in id order.
_VIEWS = {holder: f"SELECT {_view_json('$2', holder)}::text AS view FROM account a WHERE a.id = ANY($1::integer[]) "
                  "ORDER BY a.id" for holder in (False, True)}
# The same as a column of another read over an account `a` (the till's card look-up: one statement for both).
VIEW_COLUMN = f"CASE WHEN a.id IS NULL THEN NULL ELSE {_view_json(None)}::text END AS account_view"
_LOCKS = {"": "", "lock": " FOR UPDATE OF a", "skip": " FOR UPDATE OF a SKIP LOCKED"}
_decode_view = msgspec.json.Decoder(_ViewRow).decode


def _view(row: _ViewRow) -> View:
    from loyalty_core.ledger.posting import Debt

    return View(id=row.id, active=row.active, pending=row.pending, debt=row.debt, version=row.version,
                lots={lot.id: lot for lot in row.lots}, debts=[Debt(d["lot"], d["owed"]) for d in row.debts],
                customer=row.customer, card=row.card)


def decode_view(text: str) -> View:
    return _view(_decode_view(text))


async def load_views(account_ids: Sequence[int], *, lock: str = "", sale_id: int | None = None,
                     holder: bool = False) -> list[View]:
    """The accounts as a plan needs them, in id order; `lock`: "" (none), "lock" (FOR UPDATE) or "skip"; with
    `holder`, who holds each (customer, active card) for messages."""
    rows = await db.fetch(_VIEWS[holder] + _LOCKS[lock], list(account_ids), sale_id)
    return [_view(_decode_view(r["view"])) for r in rows]


async def lock_account(account_id: int, now: datetime, *, sale_id: int | None = None) -> View:
    """Take the account's row lock and read it, then apply what fell due (activations, expirations) before
    anything else (written at once when something did)."""
    views = await load_views([account_id], lock="lock", sale_id=sale_id)
    if not views:
        raise NotFound(f"account {account_id} does not exist")
    await apply_due(views[0], now)
    return views[0]


async def apply_due(view: View, now: datetime) -> tuple[int, int]:
    """Activate pending lots whose time came and expire active lots past their date; needs the lock (or a
    version that holds). Returns (points activated, points expired); `view` follows."""
    plan = Plan(view, now)
    activated, expired = plan.settle(now)
    if plan.posting().moves_points():
        await writer.write(plan.posting(), view=view)
    return activated, expired


async def accrue(
    state: View, points: int, now: datetime, *, kind: str, source: str, activates_at: datetime,
    expires_at: datetime | None, reason: str = "", sale_id: int | None = None,
) -> int:
    """A new lot: active at once or pending until `activates_at`, the debt paid from it first. Returns its id."""
    plan = Plan(state, now)
    ref = plan.accrue(points, now, kind=kind, source=source, activates_at=activates_at, expires_at=expires_at,
                      reason=reason, sale=sale_id)
    written = await writer.write(plan.posting(), view=state)
    return written.new_lots[ref]


async def spend(
    state: View, points: int, now: datetime, *, kind: str = "redeem", reason: str = "", sale_id: int | None = None
) -> list[tuple[int, int]]:
    """Take points from active lots, earliest expiry first. Raises InsufficientPoints (nothing written)."""
    plan = Plan(state, now)
    taken = plan.spend(points, kind=kind, reason=reason, sale=sale_id)
    if taken:
        await writer.write(plan.posting(), view=state)
    return taken


# What a return needs about its sale, read under the account's lock: of the sale's own lots what the shopper
# spent (net of refunds, incl. other returns' takes) and what earlier returns already settled elsewhere; and
# the lots the sale spent from with what it can still give back, latest expiry first.
_SALE_FACTS = """
WITH own AS (SELECT id FROM point_lot WHERE account = $1 AND sale = $2 AND source IN ('sale', 'transfer')),
sums AS (
  SELECT COALESCE(-SUM(amount) FILTER (WHERE lot IN (SELECT id FROM own) AND bucket IN ('active', 'pending')
           AND (kind IN ('redeem', 'return_refund', 'debt_paid') OR (kind = 'transfer' AND amount < 0)
                OR (kind = 'return_clawback' AND sale IS DISTINCT FROM $2))), 0)::bigint AS spent,
         COALESCE(-SUM(amount) FILTER (WHERE sale = $2 AND kind = 'return_clawback' AND bucket = 'active'
           AND lot NOT IN (SELECT id FROM own)), 0)::bigint
         + COALESCE(SUM(amount) FILTER (WHERE sale = $2 AND bucket = 'debt' AND kind IN ('debt', 'debt_write_off')
           AND amount > 0), 0)::bigint AS settled
  FROM ledger_entry WHERE account = $1),
sources AS (
  SELECT e.lot AS id, (-SUM(e.amount))::bigint AS spent, p.state, p.activates_at, p.expires_at,
         EXISTS (SELECT 1 FROM ledger_entry x WHERE x.lot = e.lot AND x.kind IN ('return_clawback', 'debt')) AS orphan
  FROM ledger_entry e JOIN point_lot p ON p.id = e.lot
  WHERE e.account = $1 AND e.sale = $2 AND e.kind IN ('redeem', 'return_refund') AND e.bucket = 'active'
  GROUP BY e.lot, p.state, p.activates_at, p.expires_at HAVING -SUM(e.amount) > 0)
SELECT sums.spent, sums.settled,
       (SELECT COALESCE(json_agg(sources ORDER BY sources.expires_at DESC NULLS FIRST, sources.id DESC), '[]')
        FROM sources)::text AS sources
FROM sums
"""


async def load_sale_facts(account_id: int, sale_id: int) -> SaleFacts:
    row = await db.connection().fetchrow(_SALE_FACTS, account_id, sale_id)
    return SaleFacts(sale=sale_id, spent=row["spent"], settled=row["settled"],
                     refund_sources=msgspec.json.decode(row["sources"], type=list[RefundSource]))


async def transfer(source: View, target: View, now: datetime, reason: str) -> int:
    """Move every live lot (pending and active) and the debt to another account, keeping dates. Both locked."""
    out = Plan(source, now)
    lots, debts = out.transfer_out(reason)
    into = Plan(target, now)
    into.transfer_in(lots, sum(d.owed for d in debts), reason)
    await writer.write(out.posting(), view=source)
    await writer.write(into.posting(), view=target)
    return sum(lot.remaining for lot in lots)


async def lock_accounts(account_ids: Sequence[int], now: datetime) -> dict[int, View]:
    """Lock several accounts in id order, so two transfers can never deadlock."""
    return {account_id: await lock_account(account_id, now) for account_id in sorted(set(account_ids))}


class DatedPoints(msgspec.Struct, frozen=True):
    points: int
    on: date


class BalanceOut(msgspec.Struct, frozen=True, kw_only=True):
    """An account's points as every surface shows them (the till, the shopper, the call centre, an adjustment's
    answer): the one balance struct. A surface that does not show a part leaves it UNSET and it is not on the
    wire (the till's `balance_after` is `{active, pending}` as POS_API.md says); `balance()` fills every part."""

    active: int
    pending: int
    pending_lots: list[DatedPoints] | msgspec.UnsetType = msgspec.UNSET  # when pending points become spendable
    expiring: list[DatedPoints] | msgspec.UnsetType = msgspec.UNSET  # when active points burn (within a horizon)
    debt: int | msgspec.UnsetType = msgspec.UNSET  # spent points a return could not take back: paid first


# the live lots, and the account's debt as one more row when there is one (same round trip)
_LIVE_LOTS = (
    "SELECT remaining, state, activates_at, expires_at FROM point_lot "
    "WHERE account = $1 AND state IN ('pending', 'active') AND remaining > 0 "
    "UNION ALL SELECT debt, 'debt', NULL, NULL FROM account WHERE id = $1 AND debt > 0"
)


async def settle_if_due(account_id: int, now: datetime) -> bool:
    """Apply what fell due on one account before it is shown (history, balances); True if anything was."""
    rows = await db.fetch(
        "SELECT 1 FROM point_lot WHERE account = $1 AND ((state = 'pending' AND activates_at <= $2) "
        "OR (state = 'active' AND expires_at <= $2)) LIMIT 1",
        account_id, now,
    )
    if not rows:
        return False
    async with DB.transaction():
        await lock_account(account_id, now)
    return True


def _due(lot: dict, now: datetime) -> bool:
    return (lot["state"] == "pending" and lot["activates_at"] <= now) or (
        lot["state"] == "active" and lot["expires_at"] is not None and lot["expires_at"] <= now)


async def balance(account_id: int, now: datetime, timezone: str = "Europe/Moscow", horizon_days: int = 400) -> BalanceOut:
    """What the shopper sees as of `now`. When something fell due that the settle job has not applied yet,
    it is applied first under the account lock (and the lots read again), so every surface (till, shopper
    API, website, wallet pass, history sums, operator view) shows the same figure at every moment."""
    tz = ZoneInfo(timezone)
    lots = await db.fetch(_LIVE_LOTS, account_id)
    if any(_due(lot, now) for lot in lots):
        async with DB.transaction():
            await lock_account(account_id, now)
            lots = await db.fetch(_LIVE_LOTS, account_id)
    active = pending = debt = 0
    pending_by_day: dict[date, int] = {}
    expiring_by_day: dict[date, int] = {}
    horizon = now + timedelta(days=horizon_days)
    for lot in lots:
        if lot["state"] == "debt":
            debt = lot["remaining"]
            continue
        if lot["expires_at"] is not None and lot["expires_at"] <= now:
            continue
        if lot["state"] == "pending" and lot["activates_at"] > now:
            pending += lot["remaining"]
            day = lot["activates_at"].astimezone(tz).date()
            pending_by_day[day] = pending_by_day.get(day, 0) + lot["remaining"]
            continue
        active += lot["remaining"]
        if lot["expires_at"] is not None and lot["expires_at"] <= horizon:
            day = lot["expires_at"].astimezone(tz).date()
            expiring_by_day[day] = expiring_by_day.get(day, 0) + lot["remaining"]
    return BalanceOut(
        active=active,
        pending=pending,
        pending_lots=[DatedPoints(p, d) for d, p in sorted(pending_by_day.items())],
        expiring=[DatedPoints(p, d) for d, p in sorted(expiring_by_day.items())],
        debt=debt,
    )
