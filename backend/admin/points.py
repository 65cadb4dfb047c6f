"""Operator API for the call centre: a member's whole history, manual and mass point adjustments."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import HeaderParameter, QueryParameter

from backend.admin.auth import current_operator, require_roles
from loyalty_core.services import adjustments, member_history
from loyalty_core.services.adjustments import AdjustmentIn, AdjustmentOut, MassAdjustmentIn, MassAdjustmentOut
from loyalty_core.services.member_history import LedgerPage, MemberHistory, SalesPage

SUPPORT = [require_roles("support")]
IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=150)]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=100)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MemberPointsController(Controller):
    path = "/admin/v1"
    tags = ["operator members"]

    @post("/members/{membership_id:int}/adjustments", guards=SUPPORT, status_code=201,
          summary="Accrue (+N) or write off (-N) points, with a reason")
    async def adjust(self, request: Request, membership_id: int, data: AdjustmentIn,
                     idempotency_key: IdempotencyKey = None) -> AdjustmentOut:
        return await adjustments.adjust_points(
            membership_id, data, _now(), operator=current_operator(request).name, key=idempotency_key
        )

    @post("/adjustments/mass", guards=SUPPORT, status_code=200,
          summary="The same adjustment for many members, all or nothing (422 names the members that cannot be)")
    async def adjust_many(self, request: Request, data: MassAdjustmentIn, idempotency_key: IdempotencyKey = None) -> MassAdjustmentOut:
        return await adjustments.adjust_many(data, _now(), operator=current_operator(request).name, key=idempotency_key)

    @get("/members/{membership_id:int}/history", guards=SUPPORT,
         summary="Member, cards, tier changes, and the first pages of ledger and sales")
    async def history(self, membership_id: int, limit: Limit = 20) -> MemberHistory:
        return await member_history.member_history(membership_id, _now(), limit)

    @get("/members/{membership_id:int}/history/ledger", guards=SUPPORT, summary="Ledger entries, newest first")
    async def ledger(self, membership_id: int, cursor: str | None = None,
                     limit: Limit = 50) -> LedgerPage:
        return await member_history.ledger_page(membership_id, cursor, limit)

    @get("/members/{membership_id:int}/history/sales", guards=SUPPORT, summary="Sales with lines and returns, newest first")
    async def sales(self, membership_id: int, cursor: str | None = None,
                    limit: Limit = 20) -> SalesPage:
        return await member_history.sales_page(membership_id, cursor, limit)


ROUTES = [MemberPointsController]
