"""Operator authentication: `Authorization: Bearer <operator key>`, keys stored as sha256, each with roles.

Roles: `admin` (everything), `support` (the call centre: members), `marketer` (program and rules),
`import` (bulk loads). A guard is `require_roles(...)`: the key must hold one of them (or `admin`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loyalty_core.errors import Forbidden, Unauthorized, ValidationFailed
from loyalty_core.services.setup import hash_secret
from loyalty_core.tables import OperatorKey

ROLES = frozenset({"admin", "support", "marketer", "import"})


class OperatorPrincipal(msgspec.Struct, frozen=True):
    key_id: int
    name: str
    roles: frozenset[str]


class IssuedOperatorKey(msgspec.Struct, frozen=True):
    name: str
    roles: list[str]
    key: str  # shown once; only its hash is stored


async def create_operator_key(name: str, roles: list[str]) -> IssuedOperatorKey:
    unknown = set(roles) - ROLES
    if not roles or unknown:
        raise ValidationFailed(f"roles must be some of {sorted(ROLES)}")
    secret = "ok_" + secrets.token_urlsafe(32)
    await OperatorKey.insert(OperatorKey(name=name, key_hash=hash_secret(secret), prefix=secret[:10], roles=sorted(roles)))
    return IssuedOperatorKey(name=name, roles=sorted(roles), key=secret)


async def authenticate_operator(connection: ASGIConnection) -> OperatorPrincipal:
    scheme, _, key = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Send the operator key as 'Authorization: Bearer <key>'")
    row = await (
        OperatorKey.select(OperatorKey.id, OperatorKey.name, OperatorKey.roles)
        .where((OperatorKey.key_hash == hash_secret(key.strip())) & OperatorKey.revoked_at.is_null())
        .first()
    )
    if row is None:
        raise Unauthorized("Unknown or revoked operator key")
    return OperatorPrincipal(key_id=row["id"], name=row["name"], roles=frozenset(row["roles"]))


def require_roles(*roles: str) -> Callable[[ASGIConnection, BaseRouteHandler], Coroutine[Any, Any, None]]:
    """A guard admitting keys with any of `roles` (and `admin`); the principal is left in the scope."""
    wanted = frozenset(roles) | {"admin"}

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = await authenticate_operator(connection)
        if not principal.roles & wanted:
            raise Forbidden(f"This needs one of the roles: {', '.join(sorted(wanted))}")
        connection.scope.setdefault("state", {})["operator"] = principal

    return guard


def current_operator(connection: ASGIConnection) -> OperatorPrincipal:
    return connection.scope["state"]["operator"]  # type: ignore[no-any-return]
