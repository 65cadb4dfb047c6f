"""Till authentication: `Authorization: Bearer <till key>`; store and till come from the key, never the body."""

from __future__ import annotations

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loyalty_core.errors import Unauthorized
from loyalty_core.services.setup import hash_secret
from loyalty_core.tables import TillKey


class TillPrincipal(msgspec.Struct, frozen=True):
    till_id: int
    till_code: str
    store_id: int
    store_code: str
    store_timezone: str
    store_region: str = ""
    store_format: str = ""
    store_attributes: dict[str, str] = {}


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the till key as 'Authorization: Bearer <key>'")
    return token.strip()


async def authenticate_till(connection: ASGIConnection) -> TillPrincipal:
    key = _bearer(connection)
    # one round trip on every till request: the store's facts come along for pricing
    rows = await TillKey.raw(
        "SELECT t.id AS till_id, t.code AS till_code, s.id AS store_id, s.code AS store_code, "
        "s.timezone AS store_timezone, s.region AS store_region, s.format AS store_format, "
        "s.attributes AS store_attributes FROM till_key k JOIN till t ON t.id = k.till JOIN store s ON s.id = t.store "
        "WHERE k.key_hash = {} AND k.revoked_at IS NULL",
        hash_secret(key),
    )
    if not rows:
        raise Unauthorized("Unknown or revoked till key")
    row = rows[0]
    attributes = row["store_attributes"]
    if isinstance(attributes, str):
        attributes = msgspec.json.decode(attributes or "{}")
    row["store_attributes"] = {k: str(v) for k, v in (attributes or {}).items()}
    row["store_region"] = row["store_region"] or ""
    row["store_format"] = row["store_format"] or ""
    return TillPrincipal(**row)


async def till_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard for the /pos/v1 router: authenticates once and leaves the principal in the scope."""
    connection.scope.setdefault("state", {})["till"] = await authenticate_till(connection)


def current_till(connection: ASGIConnection) -> TillPrincipal:
    return connection.scope["state"]["till"]  # type: ignore[no-any-return]


__all__ = ["TillPrincipal", "till_guard", "current_till"]
