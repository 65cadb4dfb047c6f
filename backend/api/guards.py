"""Shopper authentication: `Authorization: Bearer <access token>`; the guard leaves the claims in the scope."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter

from backend.settings import IdentitySettings
from loyalty_core.errors import Unauthorized
from loyalty_core.members.profile import Member, member_of
from loyalty_core.shopper_auth.tokens import AccessClaims, decode_access, session_alive


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def secret_key(connection: ASGIConnection) -> str:
    return connection.app.state.settings.security.secret_key  # type: ignore[no-any-return]


async def shopper_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    header = connection.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the access token as 'Authorization: Bearer <token>'")
    now = utc_now()
    claims = decode_access(token.strip(), secret_key(connection), now)
    if not await session_alive(claims.customer_id, claims.family, now):
        raise Unauthorized("This session was logged out")
    connection.scope.setdefault("state", {})["shopper"] = claims


def provide_shopper(request: Request) -> AccessClaims:
    return request.scope["state"]["shopper"]  # type: ignore[no-any-return]


ProgramCode = Annotated[str | None, QueryParameter(name="program", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]

# what handlers ask for by name (explicit: Litestar 3 stops inferring dependencies)
Shopper = NamedDependency[AccessClaims]
CurrentMember = NamedDependency[Member]
Now = NamedDependency[dt.datetime]
Secret = NamedDependency[str]
Valkey = NamedDependency[Any]
Identity = NamedDependency[IdentitySettings]


async def provide_member(shopper: Shopper, program: ProgramCode = None) -> Member:
    """The shopper's membership in `?program=CODE` (default: the first program)."""
    return await member_of(shopper.customer_id, program)


def provide_secret(request: Request) -> str:
    return secret_key(request)


def provide_identity_settings(request: Request) -> IdentitySettings:
    return request.app.state.settings.identity  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def provide_valkey(request: Request) -> Any:
    return request.app.state.valkey


SHOPPER_DEPENDENCIES = {
    "shopper": Provide(provide_shopper, sync_to_thread=False),
    "member": Provide(provide_member),
    "now": Provide(utc_now, sync_to_thread=False),
    "secret": Provide(provide_secret, sync_to_thread=False),
}

PUBLIC_DEPENDENCIES = {
    "now": Provide(utc_now, sync_to_thread=False),
    "secret": Provide(provide_secret, sync_to_thread=False),
    "valkey": Provide(provide_valkey, sync_to_thread=False),
    "identity": Provide(provide_identity_settings, sync_to_thread=False),
}
