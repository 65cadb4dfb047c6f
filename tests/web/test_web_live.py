"""The live dashboard's plumbing: the channels plugin and the poller start and stop with the app, on every event loop
and in every worker process; a till sale reaches an open event stream through a two-worker server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import Shop, sale_body
from tests.web.browser import NoJsBrowser

ROOT = Path(__file__).resolve().parents[2]

# The app run twice, each time on a new event loop (asyncio.run), as scripts and per-test loops do: the plugin's
# Valkey client and the database pool belong to the loop that started them, so the second run works too.
TWO_LOOPS = """
import asyncio
from litestar.channels import ChannelsPlugin
from backend.app import create_app
from personal_account.live import LiveBalance

app = create_app()

async def one_run() -> str:
    async with app.lifespan():
        channels = app.plugins.get(ChannelsPlugin)
        assert app.plugins.get(LiveBalance).channels is channels
        async with channels.start_subscription("kopilka:test:probe") as subscriber:
            channels.publish(b"hello", "kopilka:test:probe")
            async with asyncio.timeout(5):
                async for message in subscriber.iter_events():
                    return message.decode()
    raise AssertionError("no message")

print(asyncio.run(one_run()), asyncio.run(one_run()))
"""


def test_the_live_plugins_start_and_stop_with_the_app_on_each_event_loop(services: tuple[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", TWO_LOOPS], cwd=ROOT, env=dict(os.environ), capture_output=True, check=False,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["hello", "hello"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def workers_server(workers: int, log_path: Path) -> Iterator[str]:
    """The app under uvicorn with several worker processes, as `kopilka serve --workers N` runs it."""
    port = _free_port()
    env = dict(os.environ, KOPILKA_PORT=str(port), KOPILKA_PUBLIC_URL=f"http://127.0.0.1:{port}",
               KOPILKA_SECRET_KEY="test-secret")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--host",
                                 "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
                                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        try:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    event, data = "", []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and event:
            yield event, "\n".join(data)
            event, data = "", []


@pytest.mark.asyncio(loop_scope="session")
async def test_a_till_sale_reaches_an_open_dashboard_of_a_two_worker_server(
        services: tuple[str, str], shop: Shop, tmp_path: Path) -> None:
    with workers_server(2, tmp_path / "server.log") as base:
        async with NoJsBrowser(base, program=shop.program_code) as browser:
            await browser.sign_in()
            card = (await browser.open("/")).text.split('data-testid="card-number">')[1].split("<")[0]
            async with browser.http.stream("GET", "/live/balance", timeout=30) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                events = sse_events(stream)
                async with asyncio.timeout(10):
                    first = {}
                    while len(first) < 3:  # on connect: every live block once
                        name, html = await anext(events)
                        first[name] = html
                assert set(first) == {"balance", "tier", "purchases"}
                assert "Basic" in first["tier"] and "Покупок пока нет" in first["purchases"]

                # 35 940 ₽ at the till: pending points, the first purchase, and the Silver tier
                async with httpx.AsyncClient(base_url=base) as till:
                    sale = await till.post("/pos/v1/sales/confirm", headers=shop.headers,
                                           json=sale_body(shop, [("cheese", 60, 59_900)], card=card))
                assert sale.status_code == 200, sale.text
                changed: dict[str, str] = {}
                async with asyncio.timeout(15):
                    while len(changed) < 3:
                        name, html = await anext(events)
                        changed[name] = html
                pending = sale.json()["totals"]["accrued_points"]
                assert f"+{pending:,}".replace(",", "\u00a0") in changed["balance"]
                assert "Silver" in changed["tier"]
                assert f'href="/purchases/{sale.json()["sale_id"]}"' in changed["purchases"]
