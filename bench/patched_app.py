"""An experiment, not production code: the app with suggestions 1 and 2 of docs/benchmarks.md applied by
patching, so their gain is measured rather than guessed. `bench/run.py --app bench.patched_app:create_app`.

- till key -> till -> store in one raw query instead of the Piccolo join select;
- the store's facts cached per store id (stores change rarely; a restart picks up changes);
- pool connections released without asyncpg's reset query (asyncpg still rolls back an open transaction).
"""

from __future__ import annotations

import asyncpg
from litestar import Litestar

from backend import app as app_module
from backend.pos import auth
from loyalty_core import db
from loyalty_core.errors import Unauthorized
from loyalty_core.till import pricing
from loyalty_core.setup.entities import hash_secret
from loyalty_core.tables import TillKey


class NoResetConnection(asyncpg.Connection):
    def get_reset_query(self) -> str:
        return ""


async def authenticate_till(connection) -> auth.TillPrincipal:  # type: ignore[no-untyped-def]
    rows = await TillKey.raw(
        "SELECT t.id AS till_id, t.code AS till_code, s.id AS store_id, s.code AS store_code, "
        "s.timezone AS store_timezone FROM till_key k JOIN till t ON t.id = k.till JOIN store s ON s.id = t.store "
        "WHERE k.key_hash = {} AND k.revoked_at IS NULL",
        hash_secret(auth._bearer(connection)),
    )
    if not rows:
        raise Unauthorized("Unknown or revoked till key")
    return auth.TillPrincipal(**rows[0])


_original_store_info = pricing.store_info
_stores: dict[int, object] = {}


async def store_info(store_id: int):  # type: ignore[no-untyped-def]
    if store_id not in _stores:
        _stores[store_id] = await _original_store_info(store_id)
    return _stores[store_id]


def create_app() -> Litestar:
    auth.authenticate_till = authenticate_till  # till_guard looks the name up at call time
    pricing.store_info = store_info
    db._pool_size["connection_class"] = NoResetConnection  # type: ignore[assignment]
    return app_module.create_app()
