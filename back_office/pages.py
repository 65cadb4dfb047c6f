"""The home page, the audit log (auditors), approvals (four eyes) and the admin's settings."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter

from back_office import web
from loyalty_core.errors import DomainError, ValidationFailed
from loyalty_core.office import approvals
from loyalty_core.office import audit

ApprovalId = Annotated[int, PathParameter(name="approval_id", ge=1, le=2**63 - 1)]
Text = Annotated[str, QueryParameter(max_length=120)]
Day = Annotated[str, QueryParameter(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")]
PAGE = 50


class ReasonForm(msgspec.Struct, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=300)] = ""


class LimitForm(msgspec.Struct, kw_only=True):
    points: Annotated[str, msgspec.Meta(max_length=12)] = ""


def _day(value: str, end: bool = False) -> dt.datetime | None:
    if not value:
        return None
    day = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return day + dt.timedelta(days=1) if end else day


class OfficePagesController(Controller):
    path = web.PATH
    include_in_schema = False

    @get("/", guards=[web.roles()])
    async def home(self, request: Request) -> Response:
        return await web.page(request, "office_home.html")

    @get("/audit", guards=[web.roles("auditor")])
    async def audit_log(self, request: Request, actor: Text = "", action: Text = "", subject: Text = "",
                        since: Day = "", until: Day = "",
                        before: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1)] = None) -> Response:
        """Read only: there is no route that edits or deletes an event."""
        events = await audit.search(actor=actor.strip(), action=action.strip(), subject=subject.strip(),
                                    since=_day(since), until=_day(until, end=True), before_id=before, limit=PAGE + 1)
        more = len(events) > PAGE
        return await web.page(request, "office_audit.html", events=events[:PAGE], more=more,
                              filters={"actor": actor, "action": action, "subject": subject, "since": since,
                                       "until": until})

    @get("/approvals", guards=[web.roles("support", "auditor")])
    async def waiting(self, request: Request) -> Response:
        return await web.page(request, "office_approvals.html", waiting=await approvals.listing("pending"),
                              decided=[*await approvals.listing("approved", 20), *await approvals.listing("failed", 20),
                                       *await approvals.listing("rejected", 20)],
                              can_decide=web.staff_of(request).may(*approvals.APPROVER_ROLES))

    @post("/approvals/{approval_id:int}/approve", guards=[web.roles(*approvals.APPROVER_ROLES)])
    async def approve(self, request: Request, approval_id: ApprovalId) -> Response:
        try:
            done = await approvals.approve(approval_id, web.actor_of(request), web.utc_now())
        except DomainError as exc:
            if exc.status == 403:
                raise
            await web.flash(request, "! " + exc.detail)
        else:
            await web.flash(request, "Approved" if done.status == "approved" else
                            "! " + str(done.result.get("problem", {}).get("detail", done.status)))
        return web.back_to(web.PATH + "/approvals")

    @post("/approvals/{approval_id:int}/reject", guards=[web.roles(*approvals.APPROVER_ROLES)])
    async def reject(self, request: Request, approval_id: ApprovalId) -> Response:
        data: ReasonForm = await web.form_of(request, ReasonForm)
        try:
            await approvals.reject(approval_id, web.actor_of(request), data.reason, web.utc_now())
        except DomainError as exc:
            await web.flash(request, "! " + exc.detail)
        else:
            await web.flash(request, "Rejected")
        return web.back_to(web.PATH + "/approvals")

    @get("/settings", guards=[web.roles("admin")])
    async def settings(self, request: Request) -> Response:
        return await web.page(request, "office_settings.html", limit=await approvals.limit())

    @post("/settings", guards=[web.roles("admin")])
    async def save_settings(self, request: Request) -> Response:
        data: LimitForm = await web.form_of(request, LimitForm)
        try:
            try:
                points = int(data.points.replace(" ", ""))
            except ValueError:
                raise ValidationFailed("Points: a whole number") from None
            await approvals.set_limit(points, web.actor_of(request), web.utc_now())
        except DomainError as exc:
            await web.flash(request, "! " + exc.detail)
        else:
            await web.flash(request, "Limit saved")
        return web.back_to(web.PATH + "/settings")
