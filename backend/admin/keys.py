"""Operator API for API keys: issue, list and revoke till keys and operator keys. Role `admin` only.

A new key is in the answer once; afterwards only its prefix is shown. Revocation takes effect at the
next request in every worker (keys are looked up per request).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.admin.auth import current_operator, require_roles
from loyalty_core.setup import keys
from loyalty_core.setup.keys import OperatorKeyInfo, TillKeyInfo

ADMIN = [require_roles("admin")]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Role = Annotated[str, msgspec.Meta(pattern="^(admin|support|marketer|import)$")]
ShowRevoked = Annotated[bool, QueryParameter(name="revoked", description="also list revoked keys")]
KeyId = Annotated[int, PathParameter(name="key_id", ge=1, le=2**31 - 1)]


class TillKeyIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    store: Code
    till: Code  # created on first use


class IssuedTillKeyOut(msgspec.Struct, kw_only=True):
    id: int
    store: str
    till: str
    prefix: str
    key: str  # shown once; only its hash is stored


class OperatorKeyIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]  # who or what uses the key
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=4)]


class IssuedOperatorKeyOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    roles: list[str]
    prefix: str
    key: str  # shown once; only its hash is stored


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _actor(request: Request) -> str:
    """Who did it, for the audit trail: the operator key's id and name."""
    operator = current_operator(request)
    return f"operator key {operator.key_id} ({operator.name})"


class TillKeyController(Controller):
    path = "/admin/v1/till-keys"
    tags = ["operator keys"]
    guards = ADMIN

    @get("/", summary="Till keys by store and till")
    async def list_keys(self, store: Annotated[str | None, QueryParameter(name="store", max_length=64)] = None,
                        revoked: ShowRevoked = False) -> list[TillKeyInfo]:
        return await keys.list_till_keys(store, include_revoked=revoked)

    @post("/", status_code=HTTP_201_CREATED, summary="A new key for a till (shown once)")
    async def create(self, request: Request, data: TillKeyIn) -> IssuedTillKeyOut:
        issued = await keys.issue_till_key(data.store, data.till, _actor(request), _now())
        return IssuedTillKeyOut(id=issued.key_id, store=issued.store_code, till=issued.till_code, prefix=issued.key[:10],
                                key=issued.key)

    @post("/{key_id:int}/revoke", status_code=HTTP_200_OK, summary="Revoke a till key at once")
    async def revoke(self, request: Request, key_id: KeyId) -> TillKeyInfo:
        return await keys.revoke_till_key(key_id, _now(), _actor(request))


class OperatorKeyController(Controller):
    path = "/admin/v1/operator-keys"
    tags = ["operator keys"]
    guards = ADMIN

    @get("/", summary="Operator keys and their roles")
    async def list_keys(self, revoked: ShowRevoked = False) -> list[OperatorKeyInfo]:
        return await keys.list_operator_keys(include_revoked=revoked)

    @post("/", status_code=HTTP_201_CREATED, summary="A new operator key with roles (shown once)")
    async def create(self, request: Request, data: OperatorKeyIn) -> IssuedOperatorKeyOut:
        issued = await keys.create_operator_key(data.name, list(data.roles), _actor(request), _now())
        return IssuedOperatorKeyOut(id=issued.id, name=issued.name, roles=issued.roles, prefix=issued.key[:10],
                                    key=issued.key)

    @post("/{key_id:int}/revoke", status_code=HTTP_200_OK,
          summary="Revoke an operator key at once (never the last working admin key)")
    async def revoke(self, request: Request, key_id: KeyId) -> OperatorKeyInfo:
        return await keys.revoke_operator_key(key_id, _now(), _actor(request))


ROUTES = [TillKeyController, OperatorKeyController]
