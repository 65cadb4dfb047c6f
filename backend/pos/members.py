"""Till registration: the cashier hands over an emitted card and types the shopper's phone.

Mounted by backend.pos under the till-authenticated /pos/v1 router (paths here are relative).
"""

from __future__ import annotations

import datetime as dt

from litestar import Request, Response, post
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from backend.api.auth import gateway_for
from backend.pos.auth import current_till
from loyalty_core.shopper_auth import otp
from loyalty_core.members.card_proof import TillLinkCodes
from loyalty_core.members.operator_registration import TillRegistered, TillRegistration, register_at_till


@post("/members", status_code=HTTP_201_CREATED, tags=["till"])
async def register_member_at_till(request: Request, data: TillRegistration) -> Response[TillRegistered]:
    """Register the phone on the card just handed over. A new phone: 201, membership `pending` (earns, cannot
    spend) until the shopper confirms with the code sent to the phone. A member's phone: 202, nothing linked;
    send the code from that phone back as `confirmation_code` to link the card. Another member's card: 409
    `card-taken`."""
    till = current_till(request)
    valkey, settings = request.app.state.valkey, request.app.state.settings
    # every registration carries a phone: it counts against the till's phone look-ups (the counter identify uses)
    await otp.hit(valkey, f"till:{till.till_id}:phone", settings.till.phone_lookups_per_minute, 60)

    async def send(phone: str, text: str) -> None:
        await gateway_for(settings.identity, valkey).send(otp.Identifier("phone", phone), text)

    codes = TillLinkCodes(valkey, till.till_id, settings.security.secret_key, send)
    result = await register_at_till(data, dt.datetime.now(dt.UTC), codes,
                                    place=f"till {till.till_code} of store {till.store_code}",
                                    program_id=till.store_program_id)
    return Response(result, status_code=HTTP_201_CREATED if result.linked else HTTP_202_ACCEPTED)


ROUTES = [register_member_at_till]
