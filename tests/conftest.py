"""Real services for the whole session: PostgreSQL and a Redis-protocol server, embedded by default.

Set KOPILKA_TEST_DATABASE_URL / KOPILKA_TEST_VALKEY_URL to run against servers of your own
(the database is used as is: point it at a scratch database).
The app runs as a real uvicorn process on an ephemeral port; tests talk real HTTP to it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from backend import infra
from loyalty_core import db
from tests import servers

pytest_plugins = ["tests.factories", "tests.fakes.fixtures", "tests.identity.fixtures"]


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    # not under pytest's own temp root: a second pytest run by root resets that to 0700, and the
    # embedded PostgreSQL runs as its own system user
    data_dir = Path(os.environ.get("KOPILKA_TEST_DATA_DIR") or tempfile.mkdtemp(prefix="kopilka-test-"))
    db_url = os.environ.get("KOPILKA_TEST_DATABASE_URL") or infra.start_embedded_postgres(data_dir, "kopilka_test")
    valkey_url = os.environ.get("KOPILKA_TEST_VALKEY_URL") or infra.start_embedded_valkey(data_dir)
    os.environ["KOPILKA_DATABASE_URL"] = db_url
    os.environ["KOPILKA_VALKEY_URL"] = valkey_url
    os.environ["KOPILKA_DATA_DIR"] = str(data_dir)
    # the development code gateway for every server the tests start: tests read codes from its Valkey list
    os.environ["KOPILKA_DEV_MODE"] = "1"
    from backend.settings import get_settings

    get_settings.cache_clear()
    db.configure(db_url, 1, 20)
    db.migrate_sync()
    from loyalty_core.till import identify

    identify.configure_qr_secret("test-secret")
    yield db_url, valkey_url


@pytest.fixture(scope="session")
async def db_pool(services: tuple[str, str]) -> AsyncIterator[None]:
    async with db.pool():
        yield


@pytest.fixture(scope="session")
async def valkey(services: tuple[str, str]) -> AsyncIterator[object]:
    import valkey.asyncio as valkey_asyncio

    client = valkey_asyncio.from_url(services[1])
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def server(services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app under uvicorn, as production runs it (one worker here)."""
    os.environ["KOPILKA_SECRET_KEY"] = "test-secret"
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    os.environ["KOPILKA_TEST_SERVER_LOG"] = str(log_path)  # tests that assert "no traceback" read it
    with servers.uvicorn_app(log_path, timeout=30, stop_timeout=10) as app:
        yield app.base
    errors = log_path.read_text()
    if "Traceback" in errors:
        print("server log:\n" + errors[-5000:], file=sys.stderr)


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client
