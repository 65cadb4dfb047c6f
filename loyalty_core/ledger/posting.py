"""A posting: everything one ledger operation writes, decided by pure code (no I/O; the clock is an argument).

The ledger as read (`View`: the account's sums and version, its live lots, its unpaid debts) goes into a
`Plan`; each builder (settle, spend, accrue, pay_debt, claw_back, refund, transfer_out/in, forfeit) decides its
movements, applies them to the plan's view so the next builder sees the lots as they will be (a return's
clawback, then its refund; a confirm's due activations, its spend, its accrual), and adds them to the
posting. `Plan.posting()` is the `Posting` that `writer.write` puts in the database in one statement,
guarded by the version the view was read at. A new ledger operation is a new builder here, never SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from loyalty_core.errors import InsufficientPoints, ValidationFailed
from loyalty_core.ledger.maths import LotView, take_from_lots

# `sale` of an entry, a new lot or a message payload meaning "the sale the same statement writes" (a
# confirm's: its id is drawn by that statement)
THIS_SALE = -1
_EPOCH = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


class Lot(msgspec.Struct):
    """A lot as the plan knows it. A negative id is a lot this posting creates (-1 the first)."""

    id: int
    state: str  # pending | active | expired | spent
    remaining: int
    activates_at: datetime
    expires_at: datetime | None = None
    sale: int | None = None
    source: str = ""


class Debt(msgspec.Struct):
    lot: int | None  # the lot that owes (the returned sale's own lot), None for a debt that came in a merge
    owed: int


class View(msgspec.Struct):
    """The account as read: sums, version, the lots in play, the unpaid debts (oldest first)."""

    id: int
    active: int
    pending: int
    debt: int = 0
    version: int = 0
    lots: dict[int, Lot] = {}
    debts: list[Debt] = []
    customer: int | None = None  # the holder, when the read asked for it (messages: the settle job)
    card: int | None = None  # the membership's active card (its wallet pass shows the balance)


class LotChange(msgspec.Struct, array_like=True):
    lot: int
    delta: int  # added to `remaining`
    state: str | None = None  # the lot's new state when it changes


class NewLot(msgspec.Struct):
    ref: int  # -id in this posting
    amount: int
    remaining: int
    state: str
    activates_at: datetime
    expires_at: datetime | None
    source: str
    sale: int | None = None


class PostedEntry(msgspec.Struct, array_like=True):
    lot: int | None  # negative: a new lot of this posting
    kind: str
    bucket: str  # active | pending | debt
    amount: int
    sale: int | None = None
    sale_return: int | None = None
    reason: str = ""


class Message(msgspec.Struct):
    """An outbox row. A payload's `sale_id` equal to THIS_SALE is replaced by the sale's id."""

    kind: str
    payload: dict[str, Any]
    customer: int | None = None
    card: int | None = None


class MemberChange(msgspec.Struct):
    """The membership's tier over the window (window_start, as_of], recomputed after the write: `add_spend` is
    this statement's own sale's earning spend when it falls in the window (a statement does not see its own
    rows); `purchase_at` counts a purchase. A tier change queues `tier_changed` to `customer`."""

    membership: int
    program: int
    window_start: datetime
    as_of: datetime
    add_spend: int = 0
    purchase_at: datetime | None = None
    customer: int | None = None
    card: int | None = None


class Posting(msgspec.Struct):
    account: int | None  # None: nothing of the ledger, only the membership and the messages
    version: int  # the account's version the plan was read at: the write holds only if it is unchanged
    at: datetime
    active: int = 0  # deltas of the account's sums
    pending: int = 0
    debt: int = 0
    lots: list[LotChange] = []
    new_lots: list[NewLot] = []
    entries: list[PostedEntry] = []
    member: MemberChange | None = None
    pass_card: int | None = None  # the wallet pass shows the balance: stamp it and queue its update
    messages: list[Message] = []

    def moves_points(self) -> bool:
        return bool(self.entries or self.lots or self.new_lots or self.active or self.pending or self.debt)


class ClawBack(msgspec.Struct):
    taken: int = 0  # out of lots (the sale's own first, then other active lots)
    debt: int = 0  # already spent, nothing left to take: recorded as the account's debt (or written off)
    expired: int = 0  # burnt before the return: nothing to take back, nothing owed


class RefundSource(msgspec.Struct):
    """A lot a sale spent from, with what the sale still has to give back to it."""

    id: int
    spent: int
    state: str
    activates_at: datetime
    expires_at: datetime | None
    orphan: bool  # a return or a debt already touched the lot (its sale was returned)


class SaleFacts(msgspec.Struct):
    """What a return needs to know about its sale's points, read under the account's lock."""

    sale: int
    spent: int = 0  # of the sale's own lots, what the shopper spent (net of refunds), incl. other returns' takes
    settled: int = 0  # of that, what earlier returns of this sale already took from other lots or recorded as debt
    refund_sources: list[RefundSource] = []  # latest expiry first


def _live(lot: Lot) -> bool:
    return lot.state in ("pending", "active")


class Plan:
    """Builds one Posting over a View. Pure: every method only reads and changes this object."""

    def __init__(self, view: View, at: datetime) -> None:
        self.view = view
        self.at = at
        self._p = Posting(account=view.id, version=view.version, at=at)
        self._changes: dict[int, LotChange] = {}
        self._new: dict[int, NewLot] = {}
        self._returned_lots: set[int] = set()  # lots this plan clawed back from or recorded a debt on

    # --- the bookkeeping every builder shares --------------------------------------------------------

    def _entry(self, lot: int | None, kind: str, bucket: str, amount: int, *, sale: int | None = None,
               sale_return: int | None = None, reason: str = "") -> None:
        self._p.entries.append(PostedEntry(lot, kind, bucket, amount, sale, sale_return, reason))
        if kind in ("return_clawback", "debt") and lot is not None:
            self._returned_lots.add(lot)

    def _move(self, active: int = 0, pending: int = 0, debt: int = 0) -> None:
        self._p.active += active
        self._p.pending += pending
        self._p.debt += debt
        self.view.active += active
        self.view.pending += pending
        self.view.debt += debt

    def _lot(self, lot_id: int, delta: int, state: str | None = None, *, spent_when_empty: bool = False) -> None:
        lot = self.view.lots.get(lot_id)
        if lot is not None:
            lot.remaining += delta
            if state is not None:
                lot.state = state
            elif spent_when_empty and lot.remaining == 0 and lot.state == "active":
                state = lot.state = "spent"
            if lot.remaining < 0:
                raise ValueError(f"lot {lot_id} would go below zero")
        if lot_id < 0:  # a lot of this posting: written as it ends up
            new = self._new[lot_id]
            new.remaining += delta
            new.state = state or new.state
            return
        change = self._changes.get(lot_id)
        if change is None:
            change = self._changes[lot_id] = LotChange(lot_id, 0, None)
            self._p.lots.append(change)
        change.delta += delta
        change.state = state or change.state

    def active_lots(self) -> list[Lot]:
        return [lot for lot in self.view.lots.values() if lot.state == "active" and lot.remaining > 0]

    def message(self, kind: str, payload: dict[str, Any], *, customer: int | None = None, card: int | None = None) -> None:
        self._p.messages.append(Message(kind, payload, customer, card))

    def pass_update(self, card: int | None) -> None:
        if card is not None:
            self._p.pass_card = card

    def member(self, change: MemberChange) -> None:
        self._p.member = change

    def posting(self) -> Posting:
        return self._p

    # --- builders ------------------------------------------------------------------------------------

    def settle(self, now: datetime) -> tuple[int, int]:
        """Activate pending lots whose time came, expire active lots past their date (in lot order).

        Returns (points activated, points expired)."""
        activated = expired = 0
        due = sorted(
            (lot for lot in self.view.lots.values()
             if (lot.state == "pending" and lot.activates_at <= now)
             or (lot.state == "active" and lot.expires_at is not None and lot.expires_at <= now)),
            key=lambda lot: lot.id,
        )
        for lot in due:
            expires = lot.expires_at is not None and lot.expires_at <= now
            r = lot.remaining
            if lot.state == "pending" and r:
                self._entry(lot.id, "activate", "pending", -r, reason="due")
                self._entry(lot.id, "activate", "active", r, reason="due")
                activated += r
            if expires and r:
                self._entry(lot.id, "expire", "active", -r, reason="due")
                expired += r
            self._lot(lot.id, -r if expires else 0, "expired" if expires else "active")
        self._move(active=activated - expired, pending=-activated)
        return activated, expired

    def spend(self, points: int, *, kind: str = "redeem", reason: str = "", sale: int | None = None,
              sale_return: int | None = None) -> list[tuple[int, int]]:
        """Take points from active lots, earliest expiry first (never-expiring last). Raises InsufficientPoints."""
        if points <= 0:
            return []
        if points > self.view.active:
            raise InsufficientPoints(f"The card has {self.view.active} active points, {points} were asked",
                                     available=self.view.active)
        lots = [LotView(id=lot.id, remaining=lot.remaining, expires_at=lot.expires_at) for lot in self.active_lots()]
        taken = take_from_lots(lots, points)
        for lot_id, take in taken:
            self._entry(lot_id, kind, "active", -take, sale=sale, sale_return=sale_return, reason=reason)
            self._lot(lot_id, -take, spent_when_empty=True)
        self._move(active=-points)
        return taken

    def accrue(self, points: int, now: datetime, *, kind: str, source: str, activates_at: datetime,
               expires_at: datetime | None, reason: str = "", sale: int | None = None) -> int:
        """A new lot, active at once or pending until `activates_at`; the account's debt is paid from it
        first. A lot whose life already ended (a very old sale) is written and burnt at once. Returns its id
        in this posting (negative)."""
        if points <= 0:
            raise ValidationFailed("points to accrue must be positive")
        bucket = "active" if activates_at <= now else "pending"
        ref = -(len(self._new) + 1)
        new = NewLot(ref=-ref, amount=points, remaining=points, state=bucket, activates_at=activates_at,
                     expires_at=expires_at, source=source, sale=sale)
        self._new[ref] = new
        self._p.new_lots.append(new)
        self._entry(ref, kind, bucket, points, sale=sale, reason=reason)
        if bucket == "active" and expires_at is not None and expires_at <= now:
            self._entry(ref, "expire", "active", -points, reason="due")
            new.remaining, new.state = 0, "expired"
            return ref
        self.view.lots[ref] = Lot(id=ref, state=bucket, remaining=points, activates_at=activates_at,
                                  expires_at=expires_at, sale=sale, source=source)
        self._move(active=points if bucket == "active" else 0, pending=points if bucket == "pending" else 0)
        if self.view.debt > 0:
            self.pay_debt([(ref, points, bucket)], reason=reason, sale=sale)
        return ref

    def pay_debt(self, sources: Sequence[tuple[int, int, str]], *, move_lots: bool = True, reason: str = "",
                 sale: int | None = None, sale_return: int | None = None) -> dict[int, int]:
        """Pay the account's debt from points arriving in lots: `sources` are (lot, points, bucket) in the
        order they pay. A lot pays its own debt first (its points come back to where the debt began), then
        the oldest. With `move_lots` the lots and the account's buckets give up what they paid; without, the
        caller restores only the unpaid rest (a refund). Returns {lot: points paid from it}."""
        if self.view.debt <= 0 or not sources:
            return {}
        debts = {d.lot: d.owed for d in self.view.debts}
        paid: dict[int, int] = {}
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
                self._entry(lot, "debt_paid", bucket, -pay, sale=sale, sale_return=sale_return, reason=reason)
                self._entry(owing, "debt_paid", "debt", -pay, sale=sale, sale_return=sale_return, reason=reason)
        total = sum(paid.values())
        if not total:
            return {}
        if move_lots:
            for lot, pay in paid.items():
                self._lot(lot, -pay, spent_when_empty=True)
            self._move(active=-moved["active"], pending=-moved["pending"])
        self._move(debt=-total)
        self.view.debts = [Debt(lot, owed) for lot, owed in debts.items() if owed > 0]
        return paid

    def _owe(self, lot: int | None, points: int) -> None:
        for debt in self.view.debts:
            if debt.lot == lot:
                debt.owed += points
                return
        self.view.debts.append(Debt(lot, points))

    def claw_back(self, facts: SaleFacts, points: int, *, sale_return: int | None, reason: str,
                  write_off: bool = False) -> ClawBack:
        """Take back points a sale accrued: its pending lot first, then its active lot; what the shopper
        already spent of them is taken from other active lots, and what is still missing becomes a debt
        (paid first from the next refunds and accruals), or is written off with `write_off`. Points of the
        sale that expired unspent are owed by nobody. Never drives a balance below zero."""
        out = ClawBack()
        if points <= 0:
            return out
        own = sorted((lot for lot in self.view.lots.values() if lot.sale == facts.sale
                      and lot.source in ("sale", "transfer") and lot.id > 0), key=lambda lot: (lot.state != "pending", lot.id))
        own_ids = [lot.id for lot in own]
        left = points
        pending_taken: list[tuple[int, int]] = []
        active_taken: list[tuple[int, int]] = []
        for lot in own:
            if not _live(lot) or lot.remaining <= 0:
                continue
            take = min(left, lot.remaining)
            if take <= 0:
                break
            (pending_taken if lot.state == "pending" else active_taken).append((lot.id, take))
            left -= take
        if left and own_ids:
            owed = min(left, max(0, facts.spent - facts.settled))
            out.expired = left - owed
            left = owed
        elif left:
            out.expired, left = left, 0
        if left:
            others = [LotView(id=lot.id, remaining=lot.remaining, expires_at=lot.expires_at)
                      for lot in self.active_lots() if lot.id not in own_ids]
            available = sum(lot.remaining for lot in others)
            if available:
                active_taken += take_from_lots(others, min(left, available))
                left -= min(left, available)
        ctx: dict[str, Any] = dict(sale=facts.sale, sale_return=sale_return, reason=reason)
        for lot_id, take in pending_taken:
            self._entry(lot_id, "return_clawback", "pending", -take, **ctx)
            self._lot(lot_id, -take)
        for lot_id, take in active_taken:
            self._entry(lot_id, "return_clawback", "active", -take, **ctx)
            self._lot(lot_id, -take, spent_when_empty=True)
        from_pending = sum(t for _, t in pending_taken)
        from_active = sum(t for _, t in active_taken)
        self._move(active=-from_active, pending=-from_pending)
        out.taken = from_pending + from_active
        if left:
            # the debt names the sale's lot: a later refund of points spent from that lot pays it first
            owing_lot = own_ids[0] if own_ids else None
            self._entry(owing_lot, "debt", "debt", left, **ctx)
            if write_off:
                self._entry(owing_lot, "debt_write_off", "debt", -left, **ctx)
            else:
                self._move(debt=left)
                self._owe(owing_lot, left)
            out.debt = left
        return out

    def refund(self, facts: SaleFacts, points: int, now: datetime, *, sale_return: int | None, reason: str) -> int:
        """Give back points a sale spent, into the lots they came from (latest expiry first).

        The account's debt is paid first from them (points going back to a lot that owes, then to lots of
        returned sales, then to lots that burnt meanwhile, then the rest). Points whose lot has expired
        meanwhile come back and burn at once (refund + expire entries), so a return never extends a lot's
        life. Returns the points that became active again."""
        if points <= 0:
            return 0
        left = points
        gives: list[tuple[RefundSource, int, bool, bool]] = []  # source, points, burns, orphan
        for src in facts.refund_sources:
            give = min(left, src.spent)
            if give <= 0:
                break
            left -= give
            burns = src.state == "expired" or (src.expires_at is not None and src.expires_at <= now)
            gives.append((src, give, burns, src.orphan or src.id in self._returned_lots))
        if left:
            raise ValidationFailed(f"sale {facts.sale} spent {points - left} points that can be refunded, "
                                   f"{points} were asked")
        ctx: dict[str, Any] = dict(sale=facts.sale, sale_return=sale_return, reason=reason)
        for src, give, _, _ in gives:
            self._entry(src.id, "return_refund", "active", give, **ctx)
        paid: dict[int, int] = {}
        if self.view.debt > 0:
            owing = {d.lot for d in self.view.debts}
            order = sorted(gives, key=lambda g: (g[0].id not in owing, not g[3], not g[2]))
            paid = self.pay_debt([(src.id, give, "active") for src, give, _, _ in order], move_lots=False, **ctx)
        restored = 0
        for src, give, burns, _ in gives:
            rest = give - paid.get(src.id, 0)
            if rest <= 0:
                continue
            if burns:
                self._entry(src.id, "expire", "active", -rest, **ctx)
                continue
            if src.id not in self.view.lots:  # a spent lot comes back to life
                self.view.lots[src.id] = Lot(id=src.id, state="active", remaining=0, activates_at=src.activates_at,
                                             expires_at=src.expires_at)
            self._lot(src.id, rest, "active")
            restored += rest
        self._move(active=restored)
        return restored

    def transfer_out(self, reason: str) -> tuple[list[Lot], list[Debt]]:
        """Every live lot with points, and the debt, leave the account (a merge); the other side is
        `transfer_in` on the target's plan. Returns what left."""
        gone = sorted((lot for lot in self.view.lots.values() if _live(lot) and lot.remaining > 0 and lot.id > 0),
                      key=lambda lot: lot.id)
        moved = [msgspec.structs.replace(lot) for lot in gone]
        for lot in gone:
            bucket = "active" if lot.state == "active" else "pending"
            self._entry(lot.id, "transfer", bucket, -lot.remaining, reason=reason)
            self._lot(lot.id, -lot.remaining, "spent")
        self._move(active=-sum(lot.remaining for lot in moved if lot.state == "active"),
                   pending=-sum(lot.remaining for lot in moved if lot.state != "active"))
        debts = [msgspec.structs.replace(d) for d in self.view.debts] if self.view.debt > 0 else []
        if debts:
            for debt in debts:
                self._entry(debt.lot, "transfer", "debt", -debt.owed, reason=reason)
            self._move(debt=-self.view.debt)
            self.view.debts = []
        return moved, debts

    def forfeit(self, reason: str) -> tuple[int, int, int]:
        """Every live lot burns (an `expire` entry from its bucket) and the debt is written off: the member's
        points end with the member (an erasure on request). Returns (active, pending, debt) forfeited."""
        gone = sorted((lot for lot in self.view.lots.values() if _live(lot) and lot.remaining > 0 and lot.id > 0),
                      key=lambda lot: lot.id)
        active = sum(lot.remaining for lot in gone if lot.state == "active")
        pending = sum(lot.remaining for lot in gone if lot.state != "active")
        for lot in gone:
            self._entry(lot.id, "expire", "active" if lot.state == "active" else "pending", -lot.remaining,
                        reason=reason)
            self._lot(lot.id, -lot.remaining, "expired")
        debt = self.view.debt if self.view.debt > 0 else 0
        for owed in self.view.debts if debt else []:
            self._entry(owed.lot, "debt_write_off", "debt", -owed.owed, reason=reason)
        self._move(active=-active, pending=-pending, debt=-debt)
        self.view.debts = []
        return active, pending, debt

    def transfer_in(self, lots: Sequence[Lot], debt: int, reason: str) -> None:
        """The lots and debt another account's `transfer_out` gave, keeping their dates."""
        for lot in lots:
            ref = -(len(self._new) + 1)
            # a sale's own points keep naming their sale, so a return after a merge takes them back here
            sale = lot.sale if lot.source in ("sale", "transfer") else None
            new = NewLot(ref=-ref, amount=lot.remaining, remaining=lot.remaining, state=lot.state,
                         activates_at=lot.activates_at, expires_at=lot.expires_at, source="transfer", sale=sale)
            self._new[ref] = new
            self._p.new_lots.append(new)
            bucket = "active" if lot.state == "active" else "pending"
            self._entry(ref, "transfer", bucket, lot.remaining, reason=reason)
            self.view.lots[ref] = Lot(id=ref, state=lot.state, remaining=lot.remaining,
                                      activates_at=lot.activates_at, expires_at=lot.expires_at, sale=sale,
                                      source="transfer")
            self._move(active=lot.remaining if bucket == "active" else 0,
                       pending=lot.remaining if bucket == "pending" else 0)
        if debt > 0:
            # the debt goes with the points: the target pays it from its next refunds and accruals
            self._entry(None, "transfer", "debt", debt, reason=reason)
            self._move(debt=debt)
            self._owe(None, debt)

