"""Kopilka's loyalty core: the pure engine, the ledger, the tables and the services."""

import os

os.environ.setdefault("PICCOLO_CONF", "loyalty_core.piccolo_conf")
