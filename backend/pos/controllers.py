"""The till API (POS_API.md). Thin handlers: parse, call one service, return a Struct."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from litestar import Controller, Request, post
from litestar.params import HeaderParameter

from backend import observability as metrics
from backend.input_guard import ITEMS_CHECKED_BY_HANDLER
from backend.pos.auth import TillPrincipal, current_till, fresh_till
from backend.pos.confirmations import phone_gate
from backend.pos.messages import worded
from loyalty_core import cache
from loyalty_core.engine import StoreInfo
from loyalty_core.shopper_auth import otp
from loyalty_core.till import returns
from loyalty_core.till import sales
from loyalty_core.till.types import (
    BatchIn,
    BatchOut,
    CalculationOut,
    CancelOut,
    IdentifyIn,
    IdentifyOut,
    ReceiptReturnIn,
    ReturnIn,
    ReturnOut,
    SaleIn,
)


T = TypeVar("T")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _till(principal: TillPrincipal) -> sales.Till:
    store = StoreInfo(
        code=principal.store_code, region=principal.store_region or None, format=principal.store_format or None,
        timezone=principal.store_timezone, attributes=principal.store_attributes,
    )
    program = None
    if principal.program_id is not None and principal.program_rules_version is not None:
        program = (principal.program_id, principal.program_rules_version)
    return sales.Till(till_id=principal.till_id, store_id=principal.store_id, store_timezone=principal.store_timezone,
                      store=store, program=program, bound_program=principal.store_program_id,
                      program_timezone=principal.program_timezone, facts_version=principal.facts_version)


async def _with_fresh_facts(request: Request, use_case: Callable[[TillPrincipal], Awaitable[T]]) -> T:
    """Run a till use-case; when its statement saw the till's cached facts were stale (an invalidation message was
    lost: `cache.FactsChanged`, nothing written), authenticate again (401 if the key was revoked) and run it again."""
    try:
        return await use_case(current_till(request))
    except cache.FactsChanged:
        return await use_case(await fresh_till(request))


class TillController(Controller):
    path = "/"

    @post("/identify", status_code=200, summary="Identify a shopper from a scan")
    async def identify(self, request: Request, data: IdentifyIn) -> IdentifyOut:
        await phone_gate(request).count(data.scan)  # a phone is guessable: only so many a minute per till
        return worded(await _with_fresh_facts(request, lambda till: sales.identify(data.scan, _now(), till.store_program_id,
                                                                                   till.facts_version)))

    @post("/sales/calculate", status_code=200, summary="Price a basket (writes nothing)")
    async def calculate(self, request: Request, data: SaleIn) -> CalculationOut:
        await phone_gate(request).count(data.card)
        return worded(await _with_fresh_facts(request, lambda till: sales.calculate_sale(data, _till(till), _now())))

    @post("/sales/confirm", status_code=200, summary="Confirm a sale (idempotent)")
    async def confirm(
        self,
        request: Request,
        data: SaleIn,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=200)] = None,
    ) -> CalculationOut:
        gate = phone_gate(request)
        await gate.count(data.card)
        # the key is claimed in the confirm's own transaction (loyalty_core.ledger.command)
        out = await _with_fresh_facts(request, lambda till: sales.confirm_sale(data, _till(till), _now(), gate,
                                                                               idempotency_key=idempotency_key))
        metrics.count_confirm(out)
        return worded(out)

    @post("/sales/{sale_id:int}/cancel", status_code=200, summary="Cancel a confirmed sale the same day")
    async def cancel(self, request: Request, sale_id: int) -> CancelOut:
        out = await returns.cancel_sale(sale_id, _till(current_till(request)), _now())
        metrics.count_return(out, "cancel")
        return out

    @post("/sales/{sale_id:int}/returns", status_code=200, summary="Return lines of a confirmed sale")
    async def return_lines(self, request: Request, sale_id: int, data: ReturnIn) -> ReturnOut:
        out = await returns.return_sale(sale_id, data, _till(current_till(request)), _now())
        metrics.count_return(out, "return")
        return out

    @post("/returns", status_code=200, summary="Return lines of a sale of another store, by its printed receipt")
    async def return_by_receipt(self, request: Request, data: ReceiptReturnIn) -> ReturnOut:
        # receipt numbers are often sequential: a till may look up only so many other stores' receipts an hour
        till_id = current_till(request).till_id
        await otp.hit(request.app.state.valkey, f"till:{till_id}:receipt-returns", request.app.state.settings.till.receipt_returns_per_hour, 3600)
        out = await returns.return_by_receipt(data, _till(current_till(request)), _now())
        metrics.count_return(out, "return")
        return out

    # each item is checked on its own (a bad one is that item's `rejected` result), not by the input guard
    @post("/sales/batch", status_code=200, summary="Upload sales made offline, in till order",
          opt={ITEMS_CHECKED_BY_HANDLER: True})
    async def batch(self, request: Request, data: BatchIn) -> BatchOut:
        gate = phone_gate(request)
        results = await _with_fresh_facts(
            request, lambda till: sales.confirm_batch(list(data.sales), _till(till), _now(), gate))
        metrics.count_batch(results)
        return BatchOut(results=results)
