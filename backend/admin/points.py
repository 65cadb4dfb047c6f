"""Operator API for the call centre: a member's whole history, manual and mass point adjustments."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from litestar import Controller, Request, Response, get, post
from litestar.params import HeaderParameter, PathParameter, QueryParameter

from backend.admin.auth import current_operator, require_roles
from loyalty_core.adjustments import adjustments
from loyalty_core.office import approvals
from loyalty_core.members import history as member_history
from loyalty_core.adjustments.adjustments import AdjustmentIn, AdjustmentOut, MassAdjustmentIn, MassAdjustmentOut, Reason
from loyalty_core.members.history import LedgerPage, MemberHistory, SalesPage

SUPPORT = [require_roles("support")]
IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=150)]
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=100)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _actor(request: Request) -> approvals.Actor:
    operator = current_operator(request)
    return approvals.Actor(name=operator.name, ref=f"key:{operator.key_id}", origin=request.client.host if request.client else "")


def _pending(pending: approvals.PendingOut) -> Response[approvals.PendingOut]:
    return Response(pending, status_code=202, headers={"Location": f"/admin/v1/approvals/{pending.approval_id}"})


class MemberPointsController(Controller):
    path = "/admin/v1"
    tags = ["operator members"]

    @post("/members/{membership_id:int}/adjustments", guards=SUPPORT, status_code=201,
          summary="Accrue (+N) or write off (-N) points, with a reason")
    async def adjust(self, request: Request, membership_id: int, data: AdjustmentIn,
                     idempotency_key: IdempotencyKey = None) -> AdjustmentOut | Response[approvals.PendingOut]:
        """Above the admin's limit (four eyes, docs/back-office.md) nothing moves yet: 202 with the pending
        approval's id, which another operator approves (POST /admin/v1/approvals/{id}/approve or the back office)."""
        if await approvals.needs_approval(data.points):
            return _pending(await approvals.request_adjustment(membership_id, data, _actor(request), _now()))
        return await adjustments.adjust_points(
            membership_id, data, _now(), operator=current_operator(request).name, key=idempotency_key,
            origin=request.client.host if request.client else "",
        )

    @post("/adjustments/mass", guards=SUPPORT, status_code=200,
          summary="The same adjustment for many members, all or nothing (422 names the members that cannot be)")
    async def adjust_many(self, request: Request, data: MassAdjustmentIn,
                          idempotency_key: IdempotencyKey = None) -> MassAdjustmentOut | Response[approvals.PendingOut]:
        if await approvals.needs_approval(data.points):  # per member above the limit: four eyes, as one
            return _pending(await approvals.request_mass(data, _actor(request), _now()))
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


ApprovalId = Annotated[int, PathParameter(name="approval_id", ge=1, le=2**63 - 1)]


class RejectIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class ApprovalsController(Controller):
    """Four eyes over the API: an admin key other than the one that asked approves or rejects."""

    path = "/admin/v1/approvals"
    tags = ["operator members"]

    @get("/", guards=SUPPORT, summary="Adjustments waiting for a second person")
    async def waiting(self) -> list[approvals.ApprovalOut]:
        return await approvals.listing("pending")

    @get("/{approval_id:int}", guards=SUPPORT, summary="One approval and its outcome")
    async def one(self, approval_id: ApprovalId) -> approvals.ApprovalOut:
        return await approvals.get(approval_id)

    @post("/{approval_id:int}/approve", guards=[require_roles(*approvals.APPROVER_ROLES)], status_code=200,
          summary="Run the waiting adjustment (not by the key that asked it)")
    async def approve(self, request: Request, approval_id: ApprovalId) -> approvals.ApprovalOut:
        return await approvals.approve(approval_id, _actor(request), _now())

    @post("/{approval_id:int}/reject", guards=[require_roles(*approvals.APPROVER_ROLES)], status_code=200,
          summary="Refuse the waiting adjustment, with a reason")
    async def reject(self, request: Request, approval_id: ApprovalId, data: RejectIn) -> approvals.ApprovalOut:
        return await approvals.reject(approval_id, _actor(request), data.reason, _now())


ROUTES = [MemberPointsController, ApprovalsController]
