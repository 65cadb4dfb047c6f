"""Piccolo configuration. The database URL comes from KOPILKA_DATABASE_URL (set by backend.infra)."""

import os
from typing import Any

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.querystring import QueryString


class RoutingEngine(PostgresEngine):
    """The primary, except that a statement outside a transaction inside `replicas.reads()` runs on the read
    scope's replica (loyalty_core/replicas.py). Opening a transaction says "this request writes": the rest of
    the request reads from the primary."""

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True) -> Any:
        from loyalty_core import replicas

        scope = replicas.current_scope()
        if scope is None or scope.connection is None or self.current_transaction.get() is not None:
            return await super().run_querystring(querystring, in_pool)
        query, args = querystring.compile_string(engine_type=self.engine_type)
        return await scope.fetch(query, args, lambda: super(RoutingEngine, self).run_querystring(querystring, in_pool))

    def transaction(self, allow_nested: bool = True) -> PostgresTransaction:
        from loyalty_core import replicas

        replicas.wrote()
        return super().transaction(allow_nested)


DB = RoutingEngine(config={"dsn": os.environ.get("KOPILKA_DATABASE_URL", "")}, log_queries=False)

APP_REGISTRY = AppRegistry(apps=["loyalty_core.piccolo_app"])
