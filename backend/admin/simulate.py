"""Operator API: try a basket on a member under the live rules or a draft, before release. Writes nothing."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, post

from backend.admin.auth import require_roles
from loyalty_core.services.simulation import SimulationIn, SimulationOut, simulate


class SimulateController(Controller):
    path = "/admin/v1/simulate"
    tags = ["operator rules"]

    @post("/", guards=[require_roles("marketer", "support")], status_code=200,
          summary="The till's answer for a basket and a member, with the engine's trace")
    async def simulate(self, data: SimulationIn) -> SimulationOut:
        return await simulate(data, dt.datetime.now(dt.UTC))


ROUTES = [SimulateController]
