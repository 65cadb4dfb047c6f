"""Operator API for members: call-centre registration, import of a legacy base, support's corrections."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.admin.auth import current_operator, require_roles
from backend.api.guards import ProgramCode
from loyalty_core.office import audit
from loyalty_core.members import profile as members
from loyalty_core.members.identity import Registered, resolve_program
from loyalty_core.members.operator_registration import (
    ImportedMember,
    ImportReport,
    OperatorRegistration,
    import_members,
    register_by_call_centre,
)


CustomerId = Annotated[int, PathParameter(name="customer_id", ge=1, le=2**31 - 1)]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AdminMembersController(Controller):
    path = "/admin/v1/members"
    tags = ["operator members"]
    dependencies = {"now": Provide(_now, sync_to_thread=False)}

    @post("/", guards=[require_roles("support")], status_code=HTTP_201_CREATED)
    async def register(self, data: OperatorRegistration, now: dt.datetime, program: ProgramCode = None) -> Registered:
        """The call centre registers a caller (or finds them: one customer per phone/e-mail)."""
        return await register_by_call_centre(await resolve_program(program), data, now)

    @post("/import", guards=[require_roles("import")], status_code=HTTP_201_CREATED)
    async def import_(self, request: Request, data: list[ImportedMember], now: dt.datetime,
                      program: ProgramCode = None) -> ImportReport:
        """A JSON list of members with legacy balances; all or nothing; re-running it changes nothing. Audited: the
        key's name, the rows and the points per customer (`audit_event`, subject `program:CODE`)."""
        return await import_members(await resolve_program(program), data, now, current_operator(request).name)

    @post("/{customer_id:int}/birth-date", guards=[require_roles("support")], status_code=HTTP_200_OK)
    async def correct_birth_date(self, request: Request, customer_id: CustomerId, data: members.BirthDateCorrection,
                                 now: dt.datetime) -> members.Profile:
        """Support corrects a shopper's birth date (the shopper sets it only once), with a reason; audited.
        Birthday rules count the corrected date as known from now."""
        return await members.correct_birth_date(customer_id, data, current_operator(request).name, now)

    @get("/{customer_id:int}/audit", guards=[require_roles("support")])
    async def audit_trail(self, customer_id: CustomerId) -> list[audit.AuditEventOut]:
        """Staff changes to this customer, newest first."""
        return await audit.events_of(f"customer:{customer_id}")


ROUTES = [AdminMembersController]
