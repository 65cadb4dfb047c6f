"""Returns and cancels: what each returned line received is reversed, proportionally, exactly once.

A cancel is the return of everything not yet returned, recorded under the reserved return id
`cancel`, after which the sale is `cancelled`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from loyalty_core import db
from loyalty_core.errors import (
    IdempotencyConflict,
    ReturnExceedsSale,
    SaleNotCancellable,
    SaleNotFound,
    ValidationFailed,
)
from loyalty_core.ledger.ops import BalanceOut
from loyalty_core.ledger import command, ops, writer
from loyalty_core.ledger.maths import proportional_share
from loyalty_core.ledger.posting import MemberChange, Plan, View
from loyalty_core.messaging import outbox
from loyalty_core.rules import programs
from loyalty_core.members.tiers import TIER_WINDOW
from loyalty_core.till.types import (
    CancelOut,
    PrintedReceiptIn,
    ReceiptReturnIn,
    ReturnIn,
    ReturnOut,
    quantity_milli,
)
from loyalty_core.till.sales import Till, request_hash

CANCEL_RETURN_ID = "cancel"

# --- the statements ------------------------------------------------------------------------------------------

EXISTING_RETURN = (
    "SELECT r.request_hash, r.response FROM sale_return r JOIN sale s ON s.id = r.sale "
    "WHERE r.sale = $1 AND s.store = $2 AND r.till = $3 AND r.return_id = $4"
)
LOCK_SALE = (
    "SELECT s.id, s.status, s.account, s.membership, s.store, s.business_date, s.receipt_id, s.to_pay, "
    "s.earning_spend, s.returned_earning_spend, st.timezone, m.program, m.customer, "
    "(SELECT c.id FROM card c WHERE c.number = s.card_number) AS card_id "
    "FROM sale s JOIN store st ON st.id = s.store LEFT JOIN membership m ON m.id = s.membership "
    # an imported legacy receipt (channel 'import') earned nothing here: no till takes it back
    "WHERE s.id = $1 AND s.store = $2 AND s.channel <> 'import' FOR UPDATE OF s"
)
# $1 the returning store; `AND t.code = $5` is added when the receipt names its till
FIND_PRINTED_SALE = (
    "SELECT s.id, s.store, t.code AS till, s.to_pay FROM sale s JOIN store o ON o.id = s.store JOIN till t ON t.id = s.till "
    "LEFT JOIN membership m ON m.id = s.membership JOIN store r ON r.id = $1 "
    "WHERE o.code = $2 AND s.business_date = $3 AND s.receipt_id = $4 AND s.channel <> 'import' "
    "AND (r.program IS NULL OR (COALESCE(o.program, r.program) = r.program "
    "AND COALESCE(m.program, r.program) = r.program))"
)
SALE_LINES = (
    "SELECT line_no, quantity_milli, returned_quantity_milli, to_pay, redeemed_points, redeemed_amount, "
    "accrued_points, amount FROM sale_line WHERE sale = $1 ORDER BY line_no"
)
INSERT_RETURN = (
    "INSERT INTO sale_return (sale, till, return_id, request_hash, clawed_back_points, refunded_points, "
    "refunded_amount, response, created_at) VALUES ($1, $2, $3, $4, 0, 0, 0, $5, $6) RETURNING id"
)
INSERT_RETURN_LINES = (
    "INSERT INTO return_line (sale_return, line_no, quantity_milli, clawed_back_points, refunded_points, "
    "refunded_amount, amount) SELECT $1, l, q, c, rp, rm, a FROM unnest($2::int[], $3::bigint[], $4::bigint[], "
    "$5::bigint[], $6::bigint[], $7::bigint[]) AS t(l, q, c, rp, rm, a)"
)
MARK_LINES_RETURNED = (
    "UPDATE sale_line sl SET returned_quantity_milli = sl.returned_quantity_milli + t.q "
    "FROM unnest($1::int[], $2::bigint[]) AS t(l, q) WHERE sl.sale = $3 AND sl.line_no = t.l"
)
SET_RETURN_TOTALS = (
    "UPDATE sale_return SET clawed_back_points = $1, refunded_points = $2, refunded_amount = $3 WHERE id = $4"
)
PROGRAM_RULES_VERSION = "SELECT rules_version FROM program WHERE id = $1"
REFUNDED_BEFORE = "SELECT COALESCE(SUM(refunded_amount), 0) AS r FROM sale_return WHERE sale = $1"
SET_RETURNED_SPEND = "UPDATE sale SET returned_earning_spend = $1 WHERE id = $2"
SET_RETURN_RESPONSE = "UPDATE sale_return SET response = $1 WHERE id = $2"
CANCEL_RESPONSE = "SELECT response FROM sale_return WHERE sale = $1 AND return_id = $2"
LINES_LEFT = (
    "SELECT line_no, quantity_milli - returned_quantity_milli AS left FROM sale_line WHERE sale = $1 "
    "AND quantity_milli > returned_quantity_milli ORDER BY line_no"
)
CANCEL_SALE = "UPDATE sale SET status = 'cancelled', cancelled_at = $1 WHERE id = $2"


class _LockedSale(msgspec.Struct, kw_only=True):
    """The sale being returned, locked (`LOCK_SALE`); `return_pk` is the return written for it."""

    id: int
    status: str
    account: int | None
    membership: int | None
    store: int
    business_date: dt.date
    receipt_id: str
    to_pay: int
    earning_spend: int
    returned_earning_spend: int
    timezone: str
    program: int | None
    customer: int | None
    card_id: int | None
    return_pk: int = 0


class _Reversal(msgspec.Struct):
    clawed_back_points: int = 0
    refunded_points: int = 0
    refunded_amount: int = 0
    unrecovered_points: int = 0
    balance_after: BalanceOut | None = None


class _Planned(msgspec.Struct):
    """A reversal decided: its answer and the plan of its points, written last (`_write_reversal`)."""

    result: _Reversal
    plan: Plan | None


async def _existing_return(sale_id: int, store_id: int, till_id: int, return_id: str) -> asyncpg.Record | None:
    """This till's earlier answer under `return_id` (a return_id is the returning till's own number)."""
    return await db.fetchrow(EXISTING_RETURN, sale_id, store_id, till_id, return_id)


async def _lock_sale(sale_id: int, store_id: int) -> _LockedSale:
    """The sale, locked, if it belongs to `store_id`; another store's sale does not exist for the caller."""
    sale = await db.fetchrow_as(_LockedSale, LOCK_SALE, sale_id, store_id)
    if sale is None:
        raise SaleNotFound(f"Sale {sale_id} does not exist")
    return sale


async def _find_printed_sale(receipt: PrintedReceiptIn, till: Till) -> tuple[int, int]:
    """(sale id, its store) of the receipt, if the returning store may take it back: a store bound to a program
    sees only that program's receipts (by the original store and by the shopper's membership)."""
    query = FIND_PRINTED_SALE
    args: list[object] = [till.store_id, receipt.store, receipt.business_date, receipt.receipt_id]
    if receipt.till is not None:
        query += " AND t.code = $5"
        args.append(receipt.till)
    rows = await db.fetch(query + " ORDER BY t.code", *args)
    if receipt.total is not None:
        rows = [r for r in rows if r["to_pay"] == receipt.total]
    if not rows:
        raise SaleNotFound(
            f"No receipt {receipt.receipt_id} of store {receipt.store} on {receipt.business_date.isoformat()}"
        )
    if len(rows) > 1:
        raise ValidationFailed(
            f"Receipt {receipt.receipt_id} of store {receipt.store} on {receipt.business_date.isoformat()} was printed "
            "by more than one till: send original.till as printed on the receipt",
            tills=[r["till"] for r in rows],
        )
    return rows[0]["id"], rows[0]["store"]


async def _reverse(
    sale: _LockedSale, quantities: dict[int, int], return_id: str, digest: str, now: dt.datetime, *, till_id: int
) -> _Planned:
    """Reverse `quantities` (line_no -> milli-units) of a locked sale; writes the return and its lines and
    plans the points (the plan is written by `_write_reversal`, after the sale's own rows changed)."""
    lines = {r["line_no"]: r for r in await db.fetch(SALE_LINES, sale.id)}
    result = _Reversal()
    per_line: list[tuple[int, int, int, int, int, int]] = []  # line_no, qty, claw, refund pts, refund money, amount
    for line_no, qty in quantities.items():
        line = lines.get(line_no)
        if line is None:
            raise ValidationFailed(f"Sale {sale.id} has no line {line_no}")
        left = line["quantity_milli"] - line["returned_quantity_milli"]
        if qty > left:
            raise ReturnExceedsSale(
                f"Line {line_no}: {qty / 1000:g} asked back, {left / 1000:g} left to return",
                line_no=line_no, returnable_quantity=left / 1000,
            )
        before, whole = line["returned_quantity_milli"], line["quantity_milli"]
        claw = proportional_share(line["accrued_points"], before, qty, whole)
        refund_points = proportional_share(line["redeemed_points"], before, qty, whole)
        refund_money = proportional_share(line["to_pay"], before, qty, whole)
        amount = proportional_share(line["amount"], before, qty, whole)
        per_line.append((line_no, qty, claw, refund_points, refund_money, amount))
        result.refunded_points += refund_points
        result.refunded_amount += refund_money
    claw_total = sum(p[2] for p in per_line)
    return_pk = await db.fetchval(INSERT_RETURN, sale.id, till_id, return_id, digest, "{}", now)
    assert isinstance(return_pk, int)
    plan = None
    if sale.account is not None:
        view = await ops.lock_account(sale.account, now, sale_id=sale.id)
        facts = await ops.load_sale_facts(view.id, sale.id)
        plan = Plan(view, now)
        reason = f"return {return_id} of receipt {sale.receipt_id}"
        clawed = plan.claw_back(facts, claw_total, sale_return=return_pk, reason=reason,
                                write_off=await _writes_off_debt(sale.program))
        result.clawed_back_points = clawed.taken
        result.unrecovered_points = claw_total - clawed.taken
        plan.refund(facts, result.refunded_points, now, sale_return=return_pk, reason=reason)
        result.balance_after = BalanceOut(active=view.active, pending=view.pending)
    if not per_line:
        sale.return_pk = return_pk
        return _Planned(result, plan)
    await db.fetch(INSERT_RETURN_LINES, return_pk, *[list(col) for col in zip(*per_line)])
    await db.fetch(MARK_LINES_RETURNED, [p[0] for p in per_line], [p[1] for p in per_line], sale.id)
    await _reduce_tier_spend(sale, result.refunded_amount)
    await db.fetch(SET_RETURN_TOTALS, result.clawed_back_points, result.refunded_points, result.refunded_amount,
                   return_pk)
    sale.return_pk = return_pk
    return _Planned(result, plan)


async def _writes_off_debt(program_id: int | None) -> bool:
    """The program's choice for spent points a return cannot take back: a debt (default) or written off."""
    if program_id is None:
        return False
    rules_version = await db.fetchval(PROGRAM_RULES_VERSION, program_id)
    settings = (await programs.rules_document(program_id, rules_version)).settings  # type: ignore[arg-type]  # type: ignore[attr-defined]
    return settings.return_debt == "write_off"


async def _reduce_tier_spend(sale: _LockedSale, refunded_money: int) -> None:
    if sale.to_pay <= 0:
        return
    refunded_before = await db.fetchval(REFUNDED_BEFORE, sale.id)
    total_refunded = refunded_before + refunded_money  # type: ignore[operator]
    returned_spend = sale.earning_spend * min(total_refunded, sale.to_pay) // sale.to_pay
    await db.fetch(SET_RETURNED_SPEND, returned_spend, sale.id)


async def _write_reversal(sale: _LockedSale, planned: _Planned, now: dt.datetime) -> None:
    """The reversal's points, the tier over the window (the sale's spend is already reduced) and the
    shopper's messages, in one statement of the ledger writer."""
    result = planned.result
    plan = planned.plan
    if sale.membership is None:  # a sale without a card: nothing of a member to change
        if plan is not None:
            await writer.write(plan.posting())
        return
    if plan is None:  # a sale with a membership but no account: no points, the tier and messages still
        plan = Plan(View(id=0, active=0, pending=0), now)
    plan.member(MemberChange(membership=sale.membership, program=sale.program, window_start=now - TIER_WINDOW,
                             as_of=now, customer=sale.customer, card=sale.card_id))
    plan.pass_update(sale.card_id)
    if sale.customer is not None:
        plan.message("points_returned", {"sale_id": sale.id, "clawed_back": result.clawed_back_points,
                                         "refunded": result.refunded_points},
                     customer=sale.customer, card=sale.card_id)
    posting = plan.posting()
    if planned.plan is None:
        posting.account = None
    await writer.write(posting)


def _replay(existing: asyncpg.Record, digest: str, what: str) -> bytes:
    if existing["request_hash"] != digest:
        raise IdempotencyConflict(f"{what} was already processed with a different body")
    return existing["response"]


async def return_sale(sale_id: int, body: ReturnIn, till: Till, now: dt.datetime) -> ReturnOut:
    """Return some lines of a confirmed sale of the till's own store. Idempotent by (till, return_id)."""
    return await _return_lines(sale_id, till.store_id, body, till, now)


async def return_by_receipt(body: ReceiptReturnIn, till: Till, now: dt.datetime) -> ReturnOut:
    """Return some lines of a sale of any store of the program, found by what its receipt prints."""
    sale_id, store_id = await _find_printed_sale(body.original, till)
    return await _return_lines(sale_id, store_id, ReturnIn(return_id=body.return_id, lines=body.lines), till, now)


async def _return_lines(sale_id: int, store_id: int, body: ReturnIn, till: Till, now: dt.datetime) -> ReturnOut:
    if body.return_id == CANCEL_RETURN_ID:
        raise ValidationFailed(f"return_id {CANCEL_RETURN_ID!r} is reserved for cancels")
    quantities: dict[int, int] = {}
    for line in body.lines:
        if line.line_no in quantities:
            raise ValidationFailed(f"line_no {line.line_no} appears twice in the return")
        quantities[line.line_no] = quantity_milli(line.quantity)
    digest = request_hash(body)
    what = f"Return {body.return_id}"
    existing = await _existing_return(sale_id, store_id, till.till_id, body.return_id)
    if existing is not None:
        return msgspec.json.decode(_replay(existing, digest, what), type=ReturnOut)
    async def run() -> ReturnOut:
        sale = await _lock_sale(sale_id, store_id)
        existing = await _existing_return(sale_id, store_id, till.till_id, body.return_id)
        if existing is not None:
            return msgspec.json.decode(_replay(existing, digest, what), type=ReturnOut)
        if sale.status != "confirmed":
            raise ReturnExceedsSale(f"Sale {sale_id} was cancelled: nothing is left to return")
        planned = await _reverse(sale, quantities, body.return_id, digest, now, till_id=till.till_id)
        await _write_reversal(sale, planned, now)
        response = ReturnOut(return_id=body.return_id, sale_id=sale_id, **msgspec.structs.asdict(planned.result))
        await db.fetch(SET_RETURN_RESPONSE, msgspec.json.encode(response).decode(), sale.return_pk)
        return response

    try:
        # one command: the return_id is claimed by the return's row (unique per till) in the same transaction
        return await command.execute([], run, ReturnOut)
    except asyncpg.UniqueViolationError:
        existing = await _existing_return(sale_id, store_id, till.till_id, body.return_id)
        if existing is None:
            raise
        return msgspec.json.decode(_replay(existing, digest, what), type=ReturnOut)


async def cancel_sale(sale_id: int, till: Till, now: dt.datetime, any_day: bool = False) -> CancelOut:
    """Full reversal of a confirmed sale on its business day: accrued points removed, spent points returned.
    One command: the cancel is claimed by the sale's status, under the sale's row lock."""
    return await command.execute([], lambda: _cancel(sale_id, till, now, any_day), CancelOut)


async def _cancel(sale_id: int, till: Till, now: dt.datetime, any_day: bool) -> CancelOut:
    sale = await _lock_sale(sale_id, till.store_id)
    if sale.status == "cancelled":
        # one cancel per sale, whichever till of the store sent it
        response = await db.fetchval(CANCEL_RESPONSE, sale_id, CANCEL_RETURN_ID)
        return msgspec.json.decode(response, type=CancelOut)  # type: ignore[call-overload]
    local_day = now.astimezone(ZoneInfo(sale.timezone)).date()
    if not any_day and sale.business_date != local_day:
        raise SaleNotCancellable(
            f"Sale {sale_id} is from {sale.business_date.isoformat()}; a cancel is for the same business day, "
            "use a return instead"
        )
    lines = await db.fetch(LINES_LEFT, sale_id)
    planned = await _reverse(sale, {r["line_no"]: r["left"] for r in lines}, CANCEL_RETURN_ID, "cancel", now,
                             till_id=till.till_id)
    await db.fetch(CANCEL_SALE, now, sale_id)
    await outbox.release_coupons(sale_id)
    await _write_reversal(sale, planned, now)
    response = CancelOut(sale_id=sale_id, status="cancelled", **msgspec.structs.asdict(planned.result))
    await db.fetch(SET_RETURN_RESPONSE, msgspec.json.encode(response).decode(), sale.return_pk)
    return response
