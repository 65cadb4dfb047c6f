"""Till authentication: `Authorization: Bearer <till key>`; store and till come from the key, never the body.

The key's principal is kept in the worker's cache (`loyalty_core.cache`, kept fresh by `backend.cache_bus`): a
till's request costs no statement for its key. A revoked key is dropped by the revoke's message within a second
in every worker; the version the till's statements read catches a lost message (`cache.FactsChanged`, then the
request authenticates again: `fresh_till`).
"""

from __future__ import annotations

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loyalty_core import cache, db
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
    program_timezone: str | None = None
    # the program the store is bound to: its tills reach that program's cards only (None: every program)
    store_program_id: int | None = None
    # the cache_version these facts were read at: a statement reading a newer one means they may be stale
    facts_version: int | None = None
    key_id: int = 0


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the till key as 'Authorization: Bearer <key>'")
    return token.strip()


# One round trip for a key the worker has not cached: the store's facts and the default program come along for
# pricing, and the version of all of them.
_TILL_BY_KEY = f"""
SELECT k.id AS key_id, t.id AS till_id, t.code AS till_code, s.id AS store_id, s.code AS store_code, s.timezone AS store_timezone,
       COALESCE(s.region, '') AS store_region, COALESCE(s.format, '') AS store_format, s.attributes AS store_attributes,
       p.id AS program_id, p.rules_version AS program_rules_version, p.timezone AS program_timezone,
       s.program AS store_program_id,
       {cache.VERSION_COLUMN} AS facts_version
FROM till_key k JOIN till t ON t.id = k.till JOIN store s ON s.id = t.store
LEFT JOIN LATERAL (SELECT id, rules_version, timezone FROM program WHERE s.program IS NULL OR id = s.program
                   ORDER BY id LIMIT 1) p ON true
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


async def principal_of(key_hash: str) -> TillPrincipal:
    """The principal of a live key: from the worker's cache, else read (and kept). Unknown or revoked keys are
    never cached: each such request reads the database."""
    found = cache.facts.get("till", key_hash)
    if found is not cache.MISSING:
        return found  # type: ignore[no-any-return]
    generation = cache.facts.generation
    row = await db.fetchrow(_TILL_BY_KEY, key_hash)
    if row is None:
        raise Unauthorized("Unknown or revoked till key")
    facts = dict(row)
    attributes = facts["store_attributes"]
    if isinstance(attributes, str):
        attributes = msgspec.json.decode(attributes or "{}")
    facts["store_attributes"] = {k: str(v) for k, v in (attributes or {}).items()}
    principal = TillPrincipal(**facts)
    cache.facts.put("till", key_hash, principal, cache.till_tags(principal.key_id, principal.till_id,
                                                                 principal.store_id), principal.facts_version, generation)
    return principal


async def authenticate_till(connection: ASGIConnection) -> TillPrincipal:
    return await principal_of(hash_secret(_bearer(connection)))


async def till_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard for the /pos/v1 router: authenticates once and leaves the principal in the scope."""
    connection.scope.setdefault("state", {})["till"] = await authenticate_till(connection)


def current_till(connection: ASGIConnection) -> TillPrincipal:
    return connection.scope["state"]["till"]  # type: ignore[no-any-return]


async def fresh_till(connection: ASGIConnection) -> TillPrincipal:
    """After `cache.FactsChanged` (the cache was dropped): the key read again, 401 if it was revoked meanwhile."""
    principal = await authenticate_till(connection)
    connection.scope.setdefault("state", {})["till"] = principal
    return principal


__all__ = ["TillPrincipal", "till_guard", "current_till", "fresh_till"]
