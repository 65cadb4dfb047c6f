"""Till registration: the cashier hands over an emitted card and types the shopper's phone.

Mounted by backend.pos under the till-authenticated /pos/v1 router (paths here are relative).
"""

from __future__ import annotations

import datetime as dt

from litestar import post
from litestar.status_codes import HTTP_201_CREATED

from loyalty_core.services.identity import Registered
from loyalty_core.services.members_import import TillRegistration, register_at_till


@post("/members", status_code=HTTP_201_CREATED, tags=["till"])
async def register_member_at_till(data: TillRegistration) -> Registered:
    """The membership is `pending` until the shopper logs in with a code sent to that phone."""
    return await register_at_till(data, dt.datetime.now(dt.UTC))


ROUTES = [register_member_at_till]
