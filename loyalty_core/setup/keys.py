"""Till and operator API keys: issue, list, revoke.

A key is a random secret shown once; only its sha256 is stored (`hash_secret`), with a short prefix so
operators can tell keys apart. Every request looks its key up in the database (backend/pos/auth.py,
backend/admin/auth.py), so a revoked key stops working at the next request in every worker process.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

import msgspec

from loyalty_core import cache, db
from loyalty_core.errors import Conflict, NotFound, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.office import audit
from loyalty_core.setup.entities import IssuedTillKey, create_till_key, hash_secret
from loyalty_core.tables import OperatorKey, TillKey

log = logging.getLogger("kopilka.keys")

# admin: everything (keys included); support: the call centre (members); marketer: program and rules; import: bulk loads
ROLES = frozenset({"admin", "support", "marketer", "import"})

__all__ = ["ROLES", "IssuedTillKey", "create_till_key", "issue_till_key", "list_till_keys", "revoke_till_key", "create_operator_key",
           "list_operator_keys", "revoke_operator_key"]


class TillKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    prefix: str  # the first characters of the key, to tell keys apart
    store: str
    till: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class OperatorKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    prefix: str
    roles: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class IssuedOperatorKey(msgspec.Struct, frozen=True):
    name: str
    roles: list[str]
    key: str  # shown once; only its hash is stored
    id: int = 0


# --- till keys ---------------------------------------------------------------------------------

_TILL_KEYS = """
SELECT k.id, k.prefix, s.code AS store, t.code AS till, k.created_at, k.revoked_at
FROM till_key k JOIN till t ON t.id = k.till JOIN store s ON s.id = t.store
"""
TILL_KEY = _TILL_KEYS + " WHERE k.id = $1"


async def list_till_keys(store: str | None = None, include_revoked: bool = False) -> list[TillKeyInfo]:
    """Keys by store and till; revoked ones only when asked."""
    where, args = [], []
    if store is not None:
        where.append("s.code = $1")
        args.append(store)
    if not include_revoked:
        where.append("k.revoked_at IS NULL")
    sql = _TILL_KEYS + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY s.code, t.code, k.id"
    return await db.fetch_as(TillKeyInfo, sql, *args)


async def issue_till_key(store: str, till: str, actor: str, now: dt.datetime) -> IssuedTillKey:
    """A new till key, recorded in the audit trail (who issued it; never the secret)."""
    issued = await create_till_key(store, till)
    await audit.record(actor, "till_key.issue", f"till_key:{issued.key_id}", {},
                       {"store": store, "till": till, "prefix": issued.key[:10]}, "", now)
    return issued


async def revoke_till_key(key_id: int, now: dt.datetime, actor: str = "cli") -> TillKeyInfo:
    """Revoke one key (revoking a revoked key changes nothing); the till's other keys keep working. Audited."""
    async with DB.transaction():
        changed = await TillKey.update({TillKey.revoked_at: now}).where(
            (TillKey.id == key_id) & TillKey.revoked_at.is_null()).returning(TillKey.id)
        rows = await db.fetch(TILL_KEY, key_id)
        if not rows:
            raise NotFound(f"till key {key_id} does not exist")
        if changed:
            await audit.record(actor, "till_key.revoke", f"till_key:{key_id}", {"revoked_at": None},
                               {"revoked_at": now, "store": rows[0]["store"], "till": rows[0]["till"]}, "", now)
    # every worker drops the key now (the message), or at its next statement that reads the version (the trigger's)
    await cache.changed([f"till_key:{key_id}"])
    log.warning("till key %s (%s, store %s, till %s) revoked", key_id, rows[0]["prefix"], rows[0]["store"], rows[0]["till"])
    return msgspec.convert(rows[0], TillKeyInfo)


# --- operator keys -----------------------------------------------------------------------------


def _check_roles(roles: list[str]) -> list[str]:
    unknown = set(roles) - ROLES
    if not roles or unknown:
        raise ValidationFailed(f"roles must be some of {sorted(ROLES)}")
    return sorted(set(roles))


async def create_operator_key(name: str, roles: list[str], actor: str = "", now: dt.datetime | None = None) -> IssuedOperatorKey:
    """A new operator key; with an `actor` (the operator API, the CLI) it goes into the audit trail."""
    roles = _check_roles(roles)
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("a key needs a name of 1..100 characters (who or what uses it)")
    secret = "ok_" + secrets.token_urlsafe(32)
    async with DB.transaction():
        rows = await OperatorKey.insert(
            OperatorKey(name=name.strip(), key_hash=hash_secret(secret), prefix=secret[:10], roles=roles)
        ).returning(OperatorKey.id)
        if actor:
            await audit.record(actor, "operator_key.issue", f"operator_key:{rows[0]['id']}", {},
                               {"name": name.strip(), "roles": roles, "prefix": secret[:10]}, "",
                               now or dt.datetime.now(dt.UTC))
    return IssuedOperatorKey(name=name.strip(), roles=roles, key=secret, id=rows[0]["id"])


_OPERATOR_COLUMNS = (OperatorKey.id, OperatorKey.name, OperatorKey.prefix, OperatorKey.roles, OperatorKey.created_at,
                     OperatorKey.revoked_at)


async def list_operator_keys(include_revoked: bool = False) -> list[OperatorKeyInfo]:
    query = OperatorKey.select(*_OPERATOR_COLUMNS).order_by(OperatorKey.id)
    if not include_revoked:
        query = query.where(OperatorKey.revoked_at.is_null())
    return msgspec.convert(await query, list[OperatorKeyInfo])


async def revoke_operator_key(key_id: int, now: dt.datetime, actor: str = "cli") -> OperatorKeyInfo:
    """Revoke one key; never the last working admin key (nobody could manage keys over the API any more)."""
    async with DB.transaction():
        # lock every live admin key: two revokes of the last two cannot both pass
        admins = await OperatorKey.select(OperatorKey.id).where(
            OperatorKey.revoked_at.is_null() & OperatorKey.roles.any("admin")).lock_rows()
        target = await OperatorKey.select(*_OPERATOR_COLUMNS).where(OperatorKey.id == key_id).first()
        if target is None:
            raise NotFound(f"operator key {key_id} does not exist")
        if target["revoked_at"] is None:
            if "admin" in target["roles"] and [a["id"] for a in admins] == [key_id]:
                raise Conflict("this is the last working admin key: create another admin key first")
            await OperatorKey.update({OperatorKey.revoked_at: now}).where(OperatorKey.id == key_id)
            await audit.record(actor, "operator_key.revoke", f"operator_key:{key_id}", {"revoked_at": None},
                               {"revoked_at": now, "name": target["name"], "roles": target["roles"]}, "", now)
            target["revoked_at"] = now
    log.warning("operator key %s (%s, %s) revoked", key_id, target["prefix"], target["name"])
    return msgspec.convert(target, OperatorKeyInfo)
