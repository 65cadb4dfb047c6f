"""Operator authentication: `Authorization: Bearer <operator key>`, keys stored as sha256, each with roles.

Roles: `admin` (everything, keys included), `support` (the call centre: members), `marketer` (program and
rules), `import` (bulk loads). A guard is `require_roles(...)`: the key must hold one of them (or `admin`).
The key is looked up on every request, so a revoked key fails at once (keys: loyalty_core/setup/keys.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loyalty_core.errors import Forbidden, Unauthorized
from loyalty_core.setup.keys import ROLES, IssuedOperatorKey, create_operator_key
from loyalty_core.setup.entities import hash_secret
from loyalty_core.tables import OperatorKey

__all__ = ["ROLES", "IssuedOperatorKey", "OperatorPrincipal", "create_operator_key", "current_operator", "require_roles"]


class OperatorPrincipal(msgspec.Struct, frozen=True):
    key_id: int
    name: str
    roles: frozenset[str]


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
