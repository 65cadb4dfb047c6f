"""Log in by one-time code, refresh, log out."""

from __future__ import annotations

import importlib
from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from backend.api.guards import (
    PUBLIC_DEPENDENCIES,
    Identity,
    Now,
    ProgramCode,
    Secret,
    Valkey,
    client_ip,
    provide_shopper,
    shopper_guard,
)
from loyalty_core.shopper_auth import tokens
from loyalty_core.members.identity import Contact, resolve_program
from loyalty_core.shopper_auth.otp import (
    DevGateway,
    Gateway,
    GatewayMissing,
    parse_identifier,
    request_code,
)


class CodeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    to: Contact  # a phone number or an e-mail address


class CodeSent(msgspec.Struct):
    to: str
    channel: str
    expires_in: int


class RefreshIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


def gateway_for(identity: Identity, valkey: Valkey) -> Gateway:
    """The configured delivery: `dev`, or `package.module:factory` building a real SMS/e-mail gateway."""
    if identity.otp_gateway is None:
        raise GatewayMissing("No SMS or e-mail gateway is configured (KOPILKA_OTP_GATEWAY, docs/identity.md)")
    if identity.otp_gateway == "dev":
        return DevGateway(valkey)
    module, _, factory = identity.otp_gateway.partition(":")
    return getattr(importlib.import_module(module), factory)(valkey)  # type: ignore[no-any-return]


class AuthController(Controller):
    path = "/auth"
    tags = ["shopper auth"]
    dependencies = PUBLIC_DEPENDENCIES

    @post("/otp/request", status_code=HTTP_202_ACCEPTED)
    async def request_otp(self, request: Request, data: CodeRequest, valkey: Valkey, identity: Identity,
                          secret: Secret) -> CodeSent:
        """Send a 6-digit code by SMS (phone) or e-mail; it lives 5 minutes."""
        who = parse_identifier(data.to)
        await request_code(valkey, gateway_for(identity, valkey), who, client_ip(request), secret, identity.otp)
        return CodeSent(to=who.value, channel="sms" if who.kind == "phone" else "email", expires_in=identity.otp.code_ttl)

    @post("/otp/verify", status_code=HTTP_200_OK)
    async def verify_otp(self, request: Request, data: tokens.CodeLogin, valkey: Valkey, identity: Identity, secret: Secret,
                         now: Now, program: ProgramCode = None) -> tokens.LoggedIn:
        """Exchange the code for tokens; the first login registers the shopper in the program."""
        return await tokens.log_in_with_code(valkey, await resolve_program(program), data, client_ip(request), secret,
                                      identity.otp, now)

    @post("/refresh", status_code=HTTP_200_OK)
    async def refresh(self, data: RefreshIn, secret: Secret, now: Now) -> tokens.TokenPair:
        """Rotate: the presented refresh token is spent; presenting it again closes the whole login."""
        return await tokens.rotate_refresh(data.refresh_token, secret, now)

    @post("/logout", guards=[shopper_guard], status_code=HTTP_204_NO_CONTENT)
    async def logout(self, request: Request, now: Now) -> None:
        claims = provide_shopper(request)
        await tokens.log_out(claims.customer_id, claims.family, now)

    @post("/logout-all", guards=[shopper_guard], status_code=HTTP_204_NO_CONTENT)
    async def logout_all(self, request: Request, now: Now) -> None:
        """Close every login of this shopper on every device."""
        await tokens.log_out_everywhere(provide_shopper(request).customer_id, now)

