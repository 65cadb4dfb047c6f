"""The till API (POS_API.md). Thin handlers: parse, call one service, return a Struct."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
import os

from litestar import Controller, Request, post
from litestar.params import HeaderParameter

from backend.pos.auth import TillPrincipal, current_till
from backend.pos.idempotency import idempotent
from loyalty_core.engine import StoreInfo
from loyalty_core.services import otp, returns, sales
from loyalty_core.services.sale_types import (
    BatchIn,
    BatchOut,
    CalculationOut,
    CancelOut,
    IdentifyIn,
    IdentifyOut,
    ReturnIn,
    ReturnOut,
    SaleIn,
)


PHONE_LOOKUPS_PER_MINUTE = int(os.environ.get("KOPILKA_POS_PHONE_LOOKUPS_PER_MINUTE", "30"))


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
                      store=store, program=program)


class TillController(Controller):
    path = "/"

    @post("/identify", status_code=200, summary="Identify a shopper from a scan")
    async def identify(self, request: Request, data: IdentifyIn) -> IdentifyOut:
        if data.scan.strip().startswith("+"):
            # a phone is guessable: a till may look up only so many per minute
            principal = current_till(request)
            await otp.hit(request.app.state.valkey, f"till:{principal.till_id}:phone", PHONE_LOOKUPS_PER_MINUTE, 60)
        return await sales.identify(data.scan, _now())

    @post("/sales/calculate", status_code=200, summary="Price a basket (writes nothing)")
    async def calculate(self, request: Request, data: SaleIn) -> CalculationOut:
        return await sales.calculate_sale(data, _till(current_till(request)), _now())

    @post("/sales/confirm", status_code=200, summary="Confirm a sale (idempotent)")
    async def confirm(
        self,
        request: Request,
        data: SaleIn,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=200)] = None,
    ) -> CalculationOut:
        till = _till(current_till(request))
        return await idempotent(
            till.till_id, idempotency_key, data, CalculationOut, lambda: sales.confirm_sale(data, till, _now())
        )

    @post("/sales/{sale_id:int}/cancel", status_code=200, summary="Cancel a confirmed sale the same day")
    async def cancel(self, request: Request, sale_id: int) -> CancelOut:
        return await returns.cancel_sale(sale_id, _till(current_till(request)), _now())

    @post("/sales/{sale_id:int}/returns", status_code=200, summary="Return lines of a confirmed sale")
    async def return_lines(self, request: Request, sale_id: int, data: ReturnIn) -> ReturnOut:
        return await returns.return_sale(sale_id, data, _till(current_till(request)), _now())

    @post("/sales/batch", status_code=200, summary="Upload sales made offline, in till order")
    async def batch(self, request: Request, data: BatchIn) -> BatchOut:
        return BatchOut(results=await sales.confirm_batch(list(data.sales), _till(current_till(request)), _now()))
