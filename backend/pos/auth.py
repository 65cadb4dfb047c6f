"""Till authentication: `Authorization: Bearer <till key>`; store and till come from the key, never the body."""

from __future__ import annotations

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loyalty_core import db
from loyalty_core.errors import Unauthorized
from loyalty_core.setup.entities import hash_secret


class TillPrincipal(msgspec.Struct, frozen=True):
    till_id: int
    till_code: str
    store_id: int
    store_code: str
    store_timezone: str
    store_region: str = ""
    store_format: str = ""
    store_attributes: dict[str, str] = {}
    # the program an anonymous sale (no card) is priced by, read with the key: its current rules version
    program_id: int | None = None
    program_rules_version: int | None = None
    # the program the store is bound to: its tills reach that program's cards only (None: every program)
    store_program_id: int | None = None


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the till key as 'Authorization: Bearer <key>'")
    return token.strip()


# One round trip on every till request: the store's facts and the default program come along for pricing.
_TILL_BY_KEY = """
SELECT t.id AS till_id, t.code AS till_code, s.id AS store_id, s.code AS store_code, s.timezone AS store_timezone,
       COALESCE(s.region, '') AS store_region, COALESCE(s.format, '') AS store_format, s.attributes AS store_attributes,
       p.id AS program_id, p.rules_version AS program_rules_version, s.program AS store_program_id
FROM till_key k JOIN till t ON t.id = k.till JOIN store s ON s.id = t.store
LEFT JOIN LATERAL (SELECT id, rules_version FROM program WHERE s.program IS NULL OR id = s.program
                   ORDER BY id LIMIT 1) p ON true
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


async def authenticate_till(connection: ASGIConnection) -> TillPrincipal:
    row = await db.fetchrow(_TILL_BY_KEY, hash_secret(_bearer(connection)))
    if row is None:
        raise Unauthorized("Unknown or revoked till key")
    facts = dict(row)
    attributes = facts["store_attributes"]
    if isinstance(attributes, str):
        attributes = msgspec.json.decode(attributes or "{}")
    facts["store_attributes"] = {k: str(v) for k, v in (attributes or {}).items()}
    return TillPrincipal(**facts)


async def till_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard for the /pos/v1 router: authenticates once and leaves the principal in the scope."""
    connection.scope.setdefault("state", {})["till"] = await authenticate_till(connection)


def current_till(connection: ASGIConnection) -> TillPrincipal:
    return connection.scope["state"]["till"]  # type: ignore[no-any-return]


__all__ = ["TillPrincipal", "till_guard", "current_till"]
