"""Till authentication: `Authorization: Bearer <till key>`; store and till come from the key, never the body."""

from __future__ import annotations

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loyalty_core.errors import Unauthorized
from loyalty_core.services.setup import hash_secret
from loyalty_core.tables import Store, Till, TillKey


class TillPrincipal(msgspec.Struct, frozen=True):
    till_id: int
    till_code: str
    store_id: int
    store_code: str
    store_timezone: str


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the till key as 'Authorization: Bearer <key>'")
    return token.strip()


async def authenticate_till(connection: ASGIConnection) -> TillPrincipal:
    key = _bearer(connection)
    row = await (
        TillKey.select(
            TillKey.till.id.as_alias("till_id"),
            TillKey.till.code.as_alias("till_code"),
            TillKey.till.store.id.as_alias("store_id"),
            TillKey.till.store.code.as_alias("store_code"),
            TillKey.till.store.timezone.as_alias("store_timezone"),
        )
        .where((TillKey.key_hash == hash_secret(key)) & TillKey.revoked_at.is_null())
        .first()
    )
    if row is None:
        raise Unauthorized("Unknown or revoked till key")
    return TillPrincipal(**row)


async def till_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard for the /pos/v1 router: authenticates once and leaves the principal in the scope."""
    connection.scope.setdefault("state", {})["till"] = await authenticate_till(connection)


def current_till(connection: ASGIConnection) -> TillPrincipal:
    return connection.scope["state"]["till"]  # type: ignore[no-any-return]


__all__ = ["TillPrincipal", "till_guard", "current_till", "Store", "Till"]
