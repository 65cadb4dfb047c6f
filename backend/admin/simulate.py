"""Operator API: try a basket on a member under the live rules or a draft, before release. Writes nothing."""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Controller, Request, post

from backend.admin.auth import current_operator, require_roles
from backend.pos.messages import worded
from loyalty_core.errors import Forbidden
from loyalty_core.till.identify import shows_possession_only
from loyalty_core.rules.simulation import SimulationIn, SimulationOut, simulate

# roles that read a member's personal data (support looks members up; admin is everything)
_MEMBER_READERS = frozenset({"support", "admin"})


class SimulateController(Controller):
    path = "/admin/v1/simulate"
    tags = ["operator rules"]

    @post("/", guards=[require_roles("marketer", "support")], status_code=200,
          summary="The till's answer for a basket and a member, with the engine's trace")
    async def simulate(self, request: Request, data: SimulationIn) -> SimulationOut:
        """A marketer tries rules on a member named by card number or membership id, never by phone (a phone
        look-up is a support's, or a till's at a limited rate), and sees no birth date: the rules' effect is
        what a marketer needs, not who the member is."""
        reads_members = bool(current_operator(request).roles & _MEMBER_READERS)
        if not reads_members and data.card is not None and not shows_possession_only(data.card):
            raise Forbidden("Name the member by card number or membership id; finding members by phone needs the "
                            "support role")
        out = await simulate(data, dt.datetime.now(dt.UTC))
        if not reads_members and out.member is not None and out.member.registered:
            out.member = msgspec.structs.replace(out.member, birth_date=None, birth_date_known_since=None)
        out.result = worded(out.result)  # the cashier's words, as the till would get them
        return out


ROUTES = [SimulateController]
