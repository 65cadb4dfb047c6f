"""Admins manage staff (/office/staff): list, create a local account (argon2 password + TOTP, as `kopilka staff
create`), change roles, deactivate and reactivate. Never oneself out, never the last active admin; audited."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter

from back_office import web
from loyalty_core.errors import DomainError, NotFound, ValidationFailed
from loyalty_core.office import staff

ADMIN = [web.roles("admin")]
StaffId = Annotated[int, PathParameter(name="staff_id", ge=1, le=2**31 - 1)]


class CreateForm(msgspec.Struct, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


async def _roles_posted(request: Request) -> list[str]:
    form = await request.form()
    picked = [v for v in form.getall("roles") if isinstance(v, str)] if "roles" in form else []
    if len(picked) > len(staff.ROLES):
        raise ValidationFailed("Too many roles")
    return picked


class StaffController(Controller):
    path = web.PATH + "/staff"
    include_in_schema = False

    @get("/", guards=ADMIN)
    async def listing(self, request: Request) -> Response:
        return await web.page(request, "office_staff.html", people=await staff.listing(), roles=staff.ROLES)

    @post("/", guards=ADMIN)
    async def create(self, request: Request) -> Response:
        """The password is made here (20 random characters) and shown once with the TOTP enrolment, on this answer
        only (not kept in the session): the admin hands both to the new colleague."""
        data: CreateForm = await web.form_of(request, CreateForm)
        who = web.actor_of(request)
        password = secrets.token_urlsafe(15)
        try:
            made = await staff.create(data.email, await _roles_posted(request), password, dt.datetime.now(dt.UTC),
                                      name=data.name.strip(), actor=who.name, origin=who.origin)
        except DomainError as exc:
            return await web.page(request, "office_staff.html", status=exc.status, people=await staff.listing(),
                                  roles=staff.ROLES, error=exc.detail or exc.title, form=data)
        secret = made.totp_uri.split("secret=", 1)[1].split("&", 1)[0]
        return await web.page(request, "office_staff_created.html", made=made, password=password, secret=secret)

    @post("/{staff_id:int}/roles", guards=ADMIN)
    async def roles(self, request: Request, staff_id: StaffId) -> Response:
        me, who = web.staff_of(request), web.actor_of(request)
        try:
            await staff.set_roles(staff_id, await _roles_posted(request), who.name, me.id, web.utc_now(), who.origin)
        except DomainError as exc:
            await web.flash(request, "! " + (exc.detail or exc.title))
        else:
            await web.flash(request, "Roles saved")
        return web.back_to(web.PATH + "/staff")

    @post("/{staff_id:int}/{action:str}", guards=ADMIN)
    async def status(self, request: Request, staff_id: StaffId, action: str) -> Response:
        if action not in ("deactivate", "reactivate"):
            raise NotFound("no such action")
        me, who = web.staff_of(request), web.actor_of(request)
        try:
            await staff.set_active(staff_id, action == "reactivate", who.name, me.id, web.utc_now(), who.origin)
        except DomainError as exc:
            await web.flash(request, "! " + (exc.detail or exc.title))
        else:
            await web.flash(request, "Deactivated" if action == "deactivate" else "Reactivated")
        return web.back_to(web.PATH + "/staff")
