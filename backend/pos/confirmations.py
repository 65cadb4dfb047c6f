"""Spending points by phone needs the shopper: the till asks for a one-time code sent to the shopper's phone.

Mounted by backend.pos under the till-authenticated /pos/v1 router (paths here are relative).
"""

from __future__ import annotations

import datetime as dt

import msgspec
from litestar import Request, post
from litestar.status_codes import HTTP_202_ACCEPTED

from backend.api.auth import gateway_for
from backend.pos.auth import current_till
from loyalty_core.till.types import IdentifyIn
from loyalty_core.till.trust import PhoneGate, SpendCodePolicy



class ConfirmationSent(msgspec.Struct):
    expires_in: int


def phone_gate(request: Request, sends_codes: bool = False) -> PhoneGate:
    """This till's phone limit and spend codes, for one request (the SMS gateway only where a code is sent)."""
    valkey, till, settings = request.app.state.valkey, current_till(request), request.app.state.settings
    return PhoneGate(
        valkey, till.till_id, settings.security.secret_key,
        settings.till.phone_lookups_per_minute, gateway_for(settings.identity, valkey) if sends_codes else None,
        program_id=till.store_program_id,
    )


@post("/confirmations", status_code=HTTP_202_ACCEPTED, tags=["till"], summary="Send the shopper a code to pay by phone")
async def request_confirmation(request: Request, data: IdentifyIn) -> ConfirmationSent:
    """A one-time code goes to the shopper's phone: five minutes, single use, this till only."""
    await phone_gate(request, sends_codes=True).send_code(data.scan, dt.datetime.now(dt.UTC))
    return ConfirmationSent(expires_in=SpendCodePolicy().code_ttl)


ROUTES = [request_confirmation]
