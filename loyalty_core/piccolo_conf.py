"""Piccolo configuration. The database URL comes from KOPILKA_DATABASE_URL (set by backend.infra)."""

import os

from piccolo.conf.apps import AppRegistry
from piccolo.engine.postgres import PostgresEngine

DB = PostgresEngine(config={"dsn": os.environ.get("KOPILKA_DATABASE_URL", "")}, log_queries=False)

APP_REGISTRY = AppRegistry(apps=["loyalty_core.piccolo_app"])
