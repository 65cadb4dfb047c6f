"""Returns and cancels: what each returned line received is reversed, proportionally, exactly once.

A cancel is the return of everything not yet returned, recorded under the reserved return id
`cancel`, after which the sale is `cancelled`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

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
from loyalty_core.tables import Sale, SaleReturn

CANCEL_RETURN_ID = "cancel"


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


async def _existing_return(sale_id: int, store_id: int, till_id: int, return_id: str) -> dict | None:
    """This till's earlier answer under `return_id` (a return_id is the returning till's own number)."""
    rows = await SaleReturn.raw(
        "SELECT r.request_hash, r.response FROM sale_return r JOIN sale s ON s.id = r.sale "
        "WHERE r.sale = {} AND s.store = {} AND r.till = {} AND r.return_id = {}",
        sale_id, store_id, till_id, return_id,
    )
    return rows[0] if rows else None


async def _lock_sale(sale_id: int, store_id: int) -> dict:
    """The sale, locked, if it belongs to `store_id`; another store's sale does not exist for the caller."""
    rows = await Sale.raw(
        "SELECT s.id, s.status, s.account, s.membership, s.store, s.business_date, s.receipt_id, s.to_pay, "
        "s.earning_spend, s.returned_earning_spend, st.timezone, m.program, m.customer, "
        "(SELECT c.id FROM card c WHERE c.number = s.card_number) AS card_id "
        "FROM sale s JOIN store st ON st.id = s.store LEFT JOIN membership m ON m.id = s.membership "
        # an imported legacy receipt (channel 'import') earned nothing here: no till takes it back
        "WHERE s.id = {} AND s.store = {} AND s.channel <> 'import' FOR UPDATE OF s",
        sale_id, store_id,
    )
    if not rows:
        raise SaleNotFound(f"Sale {sale_id} does not exist")
    return rows[0]


async def _find_printed_sale(receipt: PrintedReceiptIn, till: Till) -> tuple[int, int]:
    """(sale id, its store) of the receipt, if the returning store may take it back: a store bound to a program
    sees only that program's receipts (by the original store and by the shopper's membership)."""
    query = (
        "SELECT s.id, s.store, t.code AS till, s.to_pay FROM sale s JOIN store o ON o.id = s.store JOIN till t ON t.id = s.till "
        "LEFT JOIN membership m ON m.id = s.membership JOIN store r ON r.id = {} "
        "WHERE o.code = {} AND s.business_date = {} AND s.receipt_id = {} AND s.channel <> 'import' "
        "AND (r.program IS NULL OR (COALESCE(o.program, r.program) = r.program "
        "AND COALESCE(m.program, r.program) = r.program))"
    )
    args: list[object] = [till.store_id, receipt.store, receipt.business_date, receipt.receipt_id]
    if receipt.till is not None:
        query += " AND t.code = {}"
        args.append(receipt.till)
    rows = await Sale.raw(query + " ORDER BY t.code", *args)
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
    sale: dict, quantities: dict[int, int], return_id: str, digest: str, now: dt.datetime, *, till_id: int
) -> _Planned:
    """Reverse `quantities` (line_no -> milli-units) of a locked sale; writes the return and its lines and
    plans the points (the plan is written by `_write_reversal`, after the sale's own rows changed)."""
    lines = {
        r["line_no"]: r
        for r in await Sale.raw(
            "SELECT line_no, quantity_milli, returned_quantity_milli, to_pay, redeemed_points, redeemed_amount, "
            "accrued_points, amount FROM sale_line WHERE sale = {} ORDER BY line_no",
            sale["id"],
        )
    }
    result = _Reversal()
    per_line: list[tuple[int, int, int, int, int, int]] = []  # line_no, qty, claw, refund pts, refund money, amount
    for line_no, qty in quantities.items():
        line = lines.get(line_no)
        if line is None:
            raise ValidationFailed(f"Sale {sale['id']} has no line {line_no}")
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
    return_row = await SaleReturn.raw(
        "INSERT INTO sale_return (sale, till, return_id, request_hash, clawed_back_points, refunded_points, "
        "refunded_amount, response, created_at) VALUES ({}, {}, {}, {}, 0, 0, 0, {}, {}) RETURNING id",
        sale["id"], till_id, return_id, digest, "{}", now,
    )
    return_pk = return_row[0]["id"]
    plan = None
    if sale["account"] is not None:
        view = await ops.lock_account(sale["account"], now, sale_id=sale["id"])
        facts = await ops.load_sale_facts(view.id, sale["id"])
        plan = Plan(view, now)
        reason = f"return {return_id} of receipt {sale['receipt_id']}"
        clawed = plan.claw_back(facts, claw_total, sale_return=return_pk, reason=reason,
                                write_off=await _writes_off_debt(sale["program"]))
        result.clawed_back_points = clawed.taken
        result.unrecovered_points = claw_total - clawed.taken
        plan.refund(facts, result.refunded_points, now, sale_return=return_pk, reason=reason)
        result.balance_after = BalanceOut(active=view.active, pending=view.pending)
    if not per_line:
        sale["return_pk"] = return_pk
        return _Planned(result, plan)
    await Sale.raw(
        "INSERT INTO return_line (sale_return, line_no, quantity_milli, clawed_back_points, refunded_points, "
        "refunded_amount, amount) SELECT {}, l, q, c, rp, rm, a FROM unnest({}::int[], {}::bigint[], {}::bigint[], "
        "{}::bigint[], {}::bigint[], {}::bigint[]) AS t(l, q, c, rp, rm, a)",
        return_pk, *[list(col) for col in zip(*per_line)],
    )
    await Sale.raw(
        "UPDATE sale_line sl SET returned_quantity_milli = sl.returned_quantity_milli + t.q "
        "FROM unnest({}::int[], {}::bigint[]) AS t(l, q) WHERE sl.sale = {} AND sl.line_no = t.l",
        [p[0] for p in per_line], [p[1] for p in per_line], sale["id"],
    )
    await _reduce_tier_spend(sale, result.refunded_amount)
    await SaleReturn.raw(
        "UPDATE sale_return SET clawed_back_points = {}, refunded_points = {}, refunded_amount = {} WHERE id = {}",
        result.clawed_back_points, result.refunded_points, result.refunded_amount, return_pk,
    )
    sale["return_pk"] = return_pk
    return _Planned(result, plan)


async def _writes_off_debt(program_id: int | None) -> bool:
    """The program's choice for spent points a return cannot take back: a debt (default) or written off."""
    if program_id is None:
        return False
    rows = await Sale.raw("SELECT rules_version FROM program WHERE id = {}", program_id)
    settings = (await programs.rules_document(program_id, rows[0]["rules_version"])).settings  # type: ignore[attr-defined]
    return settings.return_debt == "write_off"


async def _reduce_tier_spend(sale: dict, refunded_money: int) -> None:
    if sale["to_pay"] <= 0:
        return
    refunded_before = await Sale.raw(
        "SELECT COALESCE(SUM(refunded_amount), 0) AS r FROM sale_return WHERE sale = {}", sale["id"]
    )
    total_refunded = refunded_before[0]["r"] + refunded_money
    returned_spend = sale["earning_spend"] * min(total_refunded, sale["to_pay"]) // sale["to_pay"]
    await Sale.raw("UPDATE sale SET returned_earning_spend = {} WHERE id = {}", returned_spend, sale["id"])


async def _write_reversal(sale: dict, planned: _Planned, now: dt.datetime) -> None:
    """The reversal's points, the tier over the window (the sale's spend is already reduced) and the
    shopper's messages, in one statement of the ledger writer."""
    result = planned.result
    plan = planned.plan
    if sale["membership"] is None:  # a sale without a card: nothing of a member to change
        if plan is not None:
            await writer.write(plan.posting())
        return
    if plan is None:  # a sale with a membership but no account: no points, the tier and messages still
        plan = Plan(View(id=0, active=0, pending=0), now)
    plan.member(MemberChange(membership=sale["membership"], program=sale["program"], window_start=now - TIER_WINDOW,
                             as_of=now, customer=sale["customer"], card=sale["card_id"]))
    plan.pass_update(sale["card_id"])
    if sale["customer"] is not None:
        plan.message("points_returned", {"sale_id": sale["id"], "clawed_back": result.clawed_back_points,
                                         "refunded": result.refunded_points},
                     customer=sale["customer"], card=sale["card_id"])
    posting = plan.posting()
    if planned.plan is None:
        posting.account = None
    await writer.write(posting)


def _replay(existing: dict, digest: str, what: str) -> bytes:
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
        if sale["status"] != "confirmed":
            raise ReturnExceedsSale(f"Sale {sale_id} was cancelled: nothing is left to return")
        planned = await _reverse(sale, quantities, body.return_id, digest, now, till_id=till.till_id)
        await _write_reversal(sale, planned, now)
        response = ReturnOut(return_id=body.return_id, sale_id=sale_id, **msgspec.structs.asdict(planned.result))
        await SaleReturn.raw("UPDATE sale_return SET response = {} WHERE id = {}",
                             msgspec.json.encode(response).decode(), sale["return_pk"])
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
    if sale["status"] == "cancelled":
        # one cancel per sale, whichever till of the store sent it
        existing = await SaleReturn.raw(
            "SELECT response FROM sale_return WHERE sale = {} AND return_id = {}", sale_id, CANCEL_RETURN_ID
        )
        return msgspec.json.decode(existing[0]["response"], type=CancelOut)
    local_day = now.astimezone(ZoneInfo(sale["timezone"])).date()
    if not any_day and sale["business_date"] != local_day:
        raise SaleNotCancellable(
            f"Sale {sale_id} is from {sale['business_date'].isoformat()}; a cancel is for the same business day, "
            "use a return instead"
        )
    lines = await Sale.raw(
        "SELECT line_no, quantity_milli - returned_quantity_milli AS left FROM sale_line WHERE sale = {} "
        "AND quantity_milli > returned_quantity_milli ORDER BY line_no",
        sale_id,
    )
    planned = await _reverse(sale, {r["line_no"]: r["left"] for r in lines}, CANCEL_RETURN_ID, "cancel", now,
                             till_id=till.till_id)
    await Sale.raw("UPDATE sale SET status = 'cancelled', cancelled_at = {} WHERE id = {}", now, sale_id)
    await outbox.release_coupons(sale_id)
    await _write_reversal(sale, planned, now)
    response = CancelOut(sale_id=sale_id, status="cancelled", **msgspec.structs.asdict(planned.result))
    await SaleReturn.raw("UPDATE sale_return SET response = {} WHERE id = {}",
                         msgspec.json.encode(response).decode(), sale["return_pk"])
    return response
