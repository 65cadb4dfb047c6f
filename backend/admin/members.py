"""Operator API for members: call-centre registration and import of a legacy base."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, post
from litestar.di import Provide
from litestar.status_codes import HTTP_201_CREATED

from backend.admin.auth import require_roles
from backend.api.guards import ProgramCode
from loyalty_core.services.identity import Registered, resolve_program
from loyalty_core.services.members_import import (
    ImportedMember,
    ImportReport,
    OperatorRegistration,
    import_members,
    register_by_call_centre,
)


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
    async def import_(self, data: list[ImportedMember], now: dt.datetime, program: ProgramCode = None) -> ImportReport:
        """A JSON list of members with legacy balances; all or nothing; re-running it changes nothing."""
        return await import_members(await resolve_program(program), data, now)


ROUTES = [AdminMembersController]
