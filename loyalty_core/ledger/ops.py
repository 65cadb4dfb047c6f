"""Ledger operations on the database. Every function here runs inside a transaction the caller opened,
after `lock_account` took the account's row lock: that lock is what makes balances exact under
concurrency (two tills spending one card serialise on it).

Entries are immutable and signed; each movement writes one entry per lot and bucket it touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core import db
from loyalty_core.errors import InsufficientPoints, NotFound, ValidationFailed
from loyalty_core.ledger.maths import LotView, take_from_lots
from loyalty_core.piccolo_conf import DB
from loyalty_core.tables import Account, PointLot

_ENTRY_COLUMNS = "(account, lot, kind, bucket, amount, sale, sale_return, reason, created_at)"


class AccountState(msgspec.Struct):
    id: int
    active: int
    pending: int
    debt: int = 0  # points spent that a return could not take back (see `claw_back`)


class Entry(msgspec.Struct, frozen=True):
    lot: int | None
    kind: str
    bucket: str
    amount: int


async def _insert_entries(
    account_id: int,
    entries: Sequence[Entry],
    now: datetime,
    *,
    reason: str = "",
    sale_id: int | None = None,
    return_id: int | None = None,
) -> None:
    if not entries:
        return
    await Account.raw(
        f"INSERT INTO ledger_entry {_ENTRY_COLUMNS} "
        "SELECT {}, e.lot, e.kind, e.bucket, e.amount, {}, {}, {}, {} "
        "FROM unnest({}::integer[], {}::varchar[], {}::varchar[], {}::bigint[]) AS e(lot, kind, bucket, amount)",
        account_id,
        sale_id,
        return_id,
        reason,
        now,
        [e.lot for e in entries],
        [e.kind for e in entries],
        [e.bucket for e in entries],
        [e.amount for e in entries],
    )


async def _move_account(account_id: int, active_delta: int, pending_delta: int, now: datetime) -> None:
    if active_delta == 0 and pending_delta == 0:
        return
    await Account.raw(
        "UPDATE account SET active = active + {}, pending = pending + {}, updated_at = {} WHERE id = {}",
        active_delta,
        pending_delta,
        now,
        account_id,
    )


async def ensure_account(membership_id: int) -> int:
    rows = await Account.raw(
        "INSERT INTO account (membership, currency, active, pending, updated_at) "
        "VALUES ({}, 'points', 0, 0, now()) ON CONFLICT (membership, currency) DO NOTHING RETURNING id",
        membership_id,
    )
    if rows:
        return rows[0]["id"]
    rows = await Account.raw("SELECT id FROM account WHERE membership = {} AND currency = 'points'", membership_id)
    return rows[0]["id"]


async def lock_account(account_id: int, now: datetime) -> AccountState:
    """Take the account's row lock, then apply what fell due (activations, expirations) before anything else."""
    rows = await Account.raw("SELECT id, active, pending, debt FROM account WHERE id = {} FOR UPDATE", account_id)
    if not rows:
        raise NotFound(f"account {account_id} does not exist")
    state = AccountState(**rows[0])
    await apply_due(state, now)
    return state


# One statement: the due lots, their state change, their entries (activate: -pending +active; expire:
# -active) and the account's net change. Its reads see the snapshot after the lock was taken.
_APPLY_DUE = f"""
WITH due AS (
  SELECT id, state, remaining, (expires_at IS NOT NULL AND expires_at <= $2) AS expires FROM point_lot
  WHERE account = $1 AND ((state = 'pending' AND activates_at <= $2) OR (state = 'active' AND expires_at <= $2))),
lots AS (
  UPDATE point_lot p SET state = CASE WHEN d.expires THEN 'expired' ELSE 'active' END,
         remaining = CASE WHEN d.expires THEN 0 ELSE p.remaining END
  FROM due d WHERE p.id = d.id),
entries AS (
  INSERT INTO ledger_entry {_ENTRY_COLUMNS}
  SELECT $1, e.lot, e.kind, e.bucket, e.amount, NULL, NULL, 'due', $2
  FROM due d CROSS JOIN LATERAL (VALUES (1, d.id, 'activate', 'pending', -d.remaining, d.state = 'pending'),
                                        (2, d.id, 'activate', 'active', d.remaining, d.state = 'pending'),
                                        (3, d.id, 'expire', 'active', -d.remaining, d.expires))
       AS e(n, lot, kind, bucket, amount, applies)
  WHERE e.applies AND d.remaining <> 0 ORDER BY d.id, e.n),
sums AS (
  SELECT COALESCE(SUM(remaining) FILTER (WHERE state = 'pending'), 0)::bigint AS activated,
         COALESCE(SUM(remaining) FILTER (WHERE expires), 0)::bigint AS expired FROM due),
balance AS (
  UPDATE account a SET active = a.active + s.activated - s.expired, pending = a.pending - s.activated, updated_at = $2
  FROM sums s WHERE a.id = $1 AND (s.activated <> 0 OR s.expired <> 0))
SELECT activated, expired FROM sums
"""


async def apply_due(state: AccountState, now: datetime) -> tuple[int, int]:
    """Activate pending lots whose time came and expire active lots past their date. Needs the lock.

    Returns (points activated, points expired); `state` is updated in place.
    """
    activated, expired = await db.connection().fetchrow(_APPLY_DUE, state.id, now)
    state.active += activated - expired
    state.pending -= activated
    return activated, expired


async def accrue(
    state: AccountState,
    points: int,
    now: datetime,
    *,
    kind: str,
    source: str,
    activates_at: datetime,
    expires_at: datetime | None,
    reason: str = "",
    sale_id: int | None = None,
) -> int:
    """A new lot: active at once or pending until `activates_at`. Returns the lot id."""
    if points <= 0:
        raise ValidationFailed("points to accrue must be positive")
    bucket = "active" if activates_at <= now else "pending"
    active_delta, pending_delta = (points, 0) if bucket == "active" else (0, points)
    rows = await PointLot.raw(
        "WITH lot AS (INSERT INTO point_lot (account, amount, remaining, state, activates_at, expires_at, source, sale, created_at) "
        "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING id), "
        f"entry AS (INSERT INTO ledger_entry {_ENTRY_COLUMNS} SELECT {{}}, lot.id, {{}}, {{}}, {{}}, {{}}, NULL, {{}}, {{}} FROM lot), "
        "balance AS (UPDATE account SET active = active + {}, pending = pending + {}, updated_at = {} WHERE id = {}) "
        "SELECT id AS lot FROM lot",
        state.id, points, points, bucket, activates_at, expires_at, source, sale_id, now,
        state.id, kind, bucket, points, sale_id, reason, now,
        active_delta, pending_delta, now, state.id,
    )
    state.active += active_delta
    state.pending += pending_delta
    lot = rows[0]["lot"]
    if state.debt:
        await pay_debt(state, [(lot, points, bucket)], now, reason=reason, sale_id=sale_id)
    return lot


async def _active_lots(account_id: int) -> list[LotView]:
    rows = await db.fetch(
        "SELECT id, remaining, expires_at FROM point_lot WHERE account = $1 AND state = 'active' AND remaining > 0",
        account_id,
    )
    return [LotView(id=r["id"], remaining=r["remaining"], expires_at=r["expires_at"]) for r in rows]


async def _take(state: AccountState, taken: list[tuple[int, int]], kind: str, now: datetime, *, reason: str = "",
                sale_id: int | None = None, return_id: int | None = None, debit_account: bool = False) -> bool:
    """Take points from active lots and write one entry per lot, in one statement.

    With `debit_account`, the account's active balance is reduced by the total in the same statement,
    guarded in the WHERE (a second line of defence behind the row lock); returns whether it held.
    """
    total = sum(take for _, take in taken)
    rows = await PointLot.raw(
        "WITH t AS (SELECT * FROM unnest({}::integer[], {}::bigint[]) AS t(id, take)), "
        "lots AS (UPDATE point_lot p SET remaining = p.remaining - t.take, "
        "state = CASE WHEN p.remaining - t.take = 0 AND p.state = 'active' THEN 'spent' ELSE p.state END "
        "FROM t WHERE p.id = t.id), "
        f"entries AS (INSERT INTO ledger_entry {_ENTRY_COLUMNS} "
        "SELECT {}, t.id, {}, 'active', -t.take, {}, {}, {}, {} FROM t) "
        "UPDATE account SET active = active - {}, updated_at = {} WHERE id = {} AND active >= {} AND {} RETURNING active",
        [lot for lot, _ in taken], [take for _, take in taken],
        state.id, kind, sale_id, return_id, reason, now,
        total, now, state.id, total, debit_account,
    )
    return bool(rows)


async def plan_spend(state: AccountState, points: int) -> list[tuple[int, int]]:
    """The (lot, points) a redemption takes, earliest expiry first; nothing written. Needs the lock.

    Raises InsufficientPoints when the active balance does not cover it.
    """
    if points <= 0:
        return []
    if points > state.active:
        raise InsufficientPoints(f"The card has {state.active} active points, {points} were asked", available=state.active)
    return take_from_lots(await _active_lots(state.id), points)


async def spend(
    state: AccountState, points: int, now: datetime, *, kind: str = "redeem", reason: str = "", sale_id: int | None = None
) -> list[tuple[int, int]]:
    """Take points from active lots, earliest expiry first. Raises InsufficientPoints (nothing written)."""
    taken = await plan_spend(state, points)
    if not taken:
        return []
    if not await _take(state, taken, kind, now, reason=reason, sale_id=sale_id, debit_account=True):
        raise InsufficientPoints("The card's balance changed; not enough points", available=state.active)
    state.active -= points
    return taken


class ClawBack(msgspec.Struct):
    taken: int = 0  # out of lots (the sale's own first, then other active lots)
    debt: int = 0  # already spent, nothing left to take: recorded as the account's debt (or written off)
    expired: int = 0  # burnt before the return: nothing to take back, nothing owed


async def claw_back(
    state: AccountState, sale_id: int, points: int, now: datetime, *, return_id: int | None, reason: str,
    write_off: bool = False,
) -> ClawBack:
    """Take back points a sale accrued: its pending lot first, then its active lot; what the shopper already
    spent of them is taken from other active lots, and what is still missing becomes a debt (paid first from
    the next refunds and accruals, `pay_debt`), or is written off with `write_off`. Points of the sale that
    expired unspent are owed by nobody. Never drives a balance below zero.
    """
    out = ClawBack()
    if points <= 0:
        return out
    lots = await PointLot.raw(
        "SELECT id, state, remaining, expires_at FROM point_lot WHERE account = {} AND sale = {} AND source = 'sale' "
        "ORDER BY (state = 'pending') DESC, id",
        state.id, sale_id,
    )
    own_ids = [lot["id"] for lot in lots]
    left = points
    pending_taken: list[tuple[int, int]] = []
    active_taken: list[tuple[int, int]] = []
    for lot in lots:
        if lot["state"] not in ("pending", "active") or lot["remaining"] <= 0:
            continue
        take = min(left, lot["remaining"])
        if take <= 0:
            break
        (pending_taken if lot["state"] == "pending" else active_taken).append((lot["id"], take))
        left -= take
    if left and own_ids:
        # what the shopper spent of this sale's points (net of refunds), less what earlier returns already settled
        rows = await db.fetch(
            "SELECT COALESCE(-SUM(amount) FILTER (WHERE lot = ANY($2::integer[]) AND bucket IN ('active', 'pending') "
            "AND (kind IN ('redeem', 'return_refund', 'debt_paid', 'transfer') "
            "OR (kind = 'return_clawback' AND sale IS DISTINCT FROM $3))), 0)::bigint AS spent, "
            "COALESCE(-SUM(amount) FILTER (WHERE sale = $3 AND kind = 'return_clawback' AND bucket = 'active' "
            "AND NOT lot = ANY($2::integer[])), 0)::bigint "
            "+ COALESCE(SUM(amount) FILTER (WHERE sale = $3 AND bucket = 'debt' AND kind IN ('debt', 'debt_write_off') "
            "AND amount > 0), 0)::bigint AS settled "
            "FROM ledger_entry WHERE account = $1",
            state.id, own_ids, sale_id,
        )
        owed = min(left, max(0, rows[0]["spent"] - rows[0]["settled"]))
        out.expired = left - owed
        left = owed
    elif left:
        out.expired, left = left, 0
    if left:
        own = set(own_ids)
        others = [lot for lot in await _active_lots(state.id) if lot.id not in own]
        available = sum(lot.remaining for lot in others)
        if available:
            active_taken += take_from_lots(others, min(left, available))
            left -= min(left, available)
    ctx = dict(reason=reason, sale_id=sale_id, return_id=return_id)
    if pending_taken:
        await PointLot.raw(
            "UPDATE point_lot p SET remaining = p.remaining - t.take FROM unnest({}::integer[], {}::bigint[]) AS t(id, take) WHERE p.id = t.id",
            [lot for lot, _ in pending_taken], [take for _, take in pending_taken],
        )
        await _insert_entries(state.id, [Entry(lot, "return_clawback", "pending", -t) for lot, t in pending_taken], now, **ctx)  # type: ignore[arg-type]
    if active_taken:
        await _take(state, active_taken, "return_clawback", now, reason=reason, sale_id=sale_id, return_id=return_id)
    from_pending = sum(t for _, t in pending_taken)
    from_active = sum(t for _, t in active_taken)
    await _move_account(state.id, -from_active, -from_pending, now)
    state.active -= from_active
    state.pending -= from_pending
    out.taken = from_pending + from_active
    if left:
        # the debt names the sale's lot: a later refund of points spent from that lot pays it first
        owing_lot = own_ids[0] if own_ids else None
        entries = [Entry(owing_lot, "debt", "debt", left)]
        if write_off:
            entries.append(Entry(owing_lot, "debt_write_off", "debt", -left))
        await _insert_entries(state.id, entries, now, **ctx)  # type: ignore[arg-type]
        if not write_off:
            await Account.raw("UPDATE account SET debt = debt + {}, updated_at = {} WHERE id = {}", left, now, state.id)
            state.debt += left
        out.debt = left
    return out


async def _outstanding_debts(account_id: int) -> list[tuple[int | None, int]]:
    """(owing lot, points) of the account's unpaid debt, oldest first."""
    rows = await db.fetch(
        "SELECT lot, SUM(amount)::bigint AS owed, MIN(id) AS first FROM ledger_entry WHERE account = $1 AND bucket = 'debt' "
        "GROUP BY lot HAVING SUM(amount) > 0 ORDER BY first",
        account_id,
    )
    return [(r["lot"], r["owed"]) for r in rows]


async def pay_debt(
    state: AccountState, sources: Sequence[tuple[int, int, str]], now: datetime, *, reason: str = "",
    sale_id: int | None = None, return_id: int | None = None, move_lots: bool = True,
) -> dict[int, int]:
    """Pay the account's debt from points arriving in lots: `sources` are (lot, points, bucket) in the order
    they pay. A lot pays its own debt first (its points come back to where the debt began), then the oldest.

    With `move_lots` the lots' remaining and the account's buckets are reduced here; without, the caller
    only writes what is left (a refund restores the unpaid rest). Returns {lot: points paid from it}.
    """
    if state.debt <= 0 or not sources:
        return {}
    debts = dict(await _outstanding_debts(state.id))
    paid: dict[int, int] = {}
    entries: list[Entry] = []
    moved = {"active": 0, "pending": 0}
    for lot, points, bucket in sources:
        avail = points
        for owing in sorted(debts, key=lambda o: o != lot):
            if avail <= 0:
                break
            pay = min(avail, debts[owing])
            if pay <= 0:
                continue
            debts[owing] -= pay
            avail -= pay
            paid[lot] = paid.get(lot, 0) + pay
            moved[bucket] += pay
            entries += [Entry(lot, "debt_paid", bucket, -pay), Entry(owing, "debt_paid", "debt", -pay)]
    total = sum(paid.values())
    if not total:
        return {}
    await _insert_entries(state.id, entries, now, reason=reason, sale_id=sale_id, return_id=return_id)
    if move_lots:
        await PointLot.raw(
            "UPDATE point_lot p SET remaining = p.remaining - t.pay, "
            "state = CASE WHEN p.remaining - t.pay = 0 AND p.state = 'active' THEN 'spent' ELSE p.state END "
            "FROM unnest({}::integer[], {}::bigint[]) AS t(id, pay) WHERE p.id = t.id",
            list(paid), list(paid.values()),
        )
        await _move_account(state.id, -moved["active"], -moved["pending"], now)
        state.active -= moved["active"]
        state.pending -= moved["pending"]
    await Account.raw("UPDATE account SET debt = debt - {}, updated_at = {} WHERE id = {}", total, now, state.id)
    state.debt -= total
    return paid


async def refund(
    state: AccountState, sale_id: int, points: int, now: datetime, *, return_id: int | None, reason: str
) -> int:
    """Give back points a sale spent, into the lots they came from (latest expiry first).

    The account's debt is paid first from them (points going back to a lot that owes, then to lots of
    returned sales, then to lots that burnt meanwhile, then the rest). Points whose lot has expired
    meanwhile come back and burn at once (refund + expire entries), so a return never extends a lot's
    life. Returns the points that became active again.
    """
    if points <= 0:
        return 0
    rows = await PointLot.raw(
        "SELECT e.lot AS id, (-SUM(e.amount))::bigint AS spent, p.expires_at, p.state, "
        "EXISTS (SELECT 1 FROM ledger_entry x WHERE x.lot = e.lot AND x.kind IN ('return_clawback', 'debt')) AS orphan "
        "FROM ledger_entry e JOIN point_lot p ON p.id = e.lot "
        "WHERE e.account = {} AND e.sale = {} AND e.kind IN ('redeem', 'return_refund') AND e.bucket = 'active' "
        "GROUP BY e.lot, p.expires_at, p.state HAVING -SUM(e.amount) > 0 "
        "ORDER BY p.expires_at DESC NULLS FIRST, e.lot DESC",
        state.id, sale_id,
    )
    left = points
    gives: list[tuple[int, int, bool, bool]] = []  # lot, points, burns, orphan
    for row in rows:
        give = min(left, row["spent"])
        if give <= 0:
            break
        left -= give
        burns = row["state"] == "expired" or (row["expires_at"] is not None and row["expires_at"] <= now)
        gives.append((row["id"], give, burns, row["orphan"]))
    if left:
        raise ValidationFailed(f"sale {sale_id} spent {points - left} points that can be refunded, {points} were asked")
    ctx = dict(reason=reason, sale_id=sale_id, return_id=return_id)
    await _insert_entries(state.id, [Entry(lot, "return_refund", "active", give) for lot, give, _, _ in gives], now, **ctx)  # type: ignore[arg-type]
    paid: dict[int, int] = {}
    if state.debt:
        owing = {lot for lot, _ in await _outstanding_debts(state.id)}
        order = sorted(gives, key=lambda g: (g[0] not in owing, not g[3], not g[2]))
        paid = await pay_debt(state, [(lot, give, "active") for lot, give, _, _ in order], now, move_lots=False, **ctx)  # type: ignore[arg-type]
    restore: list[tuple[int, int]] = []
    burnt: list[Entry] = []
    for lot, give, burns, _ in gives:
        rest = give - paid.get(lot, 0)
        if rest <= 0:
            continue
        if burns:
            burnt.append(Entry(lot, "expire", "active", -rest))
        else:
            restore.append((lot, rest))
    await PointLot.raw(
        "UPDATE point_lot p SET remaining = p.remaining + t.give, state = 'active' "
        "FROM unnest({}::integer[], {}::bigint[]) AS t(id, give) WHERE p.id = t.id",
        [lot for lot, _ in restore], [give for _, give in restore],
    )
    await _insert_entries(state.id, burnt, now, **ctx)  # type: ignore[arg-type]
    restored = sum(g for _, g in restore)
    await _move_account(state.id, restored, 0, now)
    state.active += restored
    return restored


async def transfer(source: AccountState, target: AccountState, now: datetime, reason: str) -> int:
    """Move every live lot (pending and active) to another account, keeping dates. Both must be locked."""
    lots = await PointLot.raw(
        "SELECT id, state, remaining, activates_at, expires_at FROM point_lot "
        "WHERE account = {} AND state IN ('pending', 'active') AND remaining > 0 ORDER BY id",
        source.id,
    )
    moved_active = moved_pending = 0
    for lot in lots:
        r, bucket = lot["remaining"], ("active" if lot["state"] == "active" else "pending")
        new_lot = await PointLot.raw(
            "INSERT INTO point_lot (account, amount, remaining, state, activates_at, expires_at, source, created_at) "
            "VALUES ({}, {}, {}, {}, {}, {}, 'transfer', {}) RETURNING id",
            target.id, r, r, lot["state"], lot["activates_at"], lot["expires_at"], now,
        )
        await PointLot.raw("UPDATE point_lot SET remaining = 0, state = 'spent' WHERE id = {}", lot["id"])
        await _insert_entries(source.id, [Entry(lot["id"], "transfer", bucket, -r)], now, reason=reason)
        await _insert_entries(target.id, [Entry(new_lot[0]["id"], "transfer", bucket, r)], now, reason=reason)
        if bucket == "active":
            moved_active += r
        else:
            moved_pending += r
    await _move_account(source.id, -moved_active, -moved_pending, now)
    await _move_account(target.id, moved_active, moved_pending, now)
    source.active, source.pending = source.active - moved_active, source.pending - moved_pending
    target.active, target.pending = target.active + moved_active, target.pending + moved_pending
    if source.debt > 0:
        # the debt goes with the points: the target pays it from its next refunds and accruals
        owed = await _outstanding_debts(source.id)
        await _insert_entries(source.id, [Entry(lot, "transfer", "debt", -amount) for lot, amount in owed], now, reason=reason)
        await _insert_entries(target.id, [Entry(None, "transfer", "debt", source.debt)], now, reason=reason)
        await Account.raw("UPDATE account SET debt = debt - {} WHERE id = {}", source.debt, source.id)
        await Account.raw("UPDATE account SET debt = debt + {} WHERE id = {}", source.debt, target.id)
        target.debt, source.debt = target.debt + source.debt, 0
    return moved_active + moved_pending


async def lock_accounts(account_ids: Sequence[int], now: datetime) -> dict[int, AccountState]:
    """Lock several accounts in id order, so two transfers can never deadlock."""
    return {account_id: await lock_account(account_id, now) for account_id in sorted(set(account_ids))}


class DatedPoints(msgspec.Struct, frozen=True):
    points: int
    on: date


class Balance(msgspec.Struct, frozen=True):
    active: int
    pending: int
    pending_lots: list[DatedPoints]
    expiring: list[DatedPoints]
    debt: int = 0  # paid first from the next refunds and accruals


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


async def balance(account_id: int, now: datetime, timezone: str = "Europe/Moscow", horizon_days: int = 400) -> Balance:
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
    return Balance(
        active=active,
        pending=pending,
        pending_lots=[DatedPoints(p, d) for d, p in sorted(pending_by_day.items())],
        expiring=[DatedPoints(p, d) for d, p in sorted(expiring_by_day.items())],
        debt=debt,
    )
