"""Two `kopilka serve` instances on different ports against one PostgreSQL and one Valkey, as behind a load
balancer: nothing a request needs lives in one instance's memory (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.instances import serving
from tests.factories import Shop, sale_body
from tests.web.browser import NoJsBrowser
from tests.web.test_web_live import sse_events
from wallet_passes.web import LOG_REQUESTS_PER_IP

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def two_instances(services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    logs = tmp_path_factory.mktemp("instances")
    with serving(logs / "a.log") as a, serving(logs / "b.log") as b:
        yield a, b


async def test_a_dashboard_open_on_a_updates_after_a_sale_confirmed_through_b(
        two_instances: tuple[str, str], shop: Shop) -> None:
    a, b = two_instances
    async with NoJsBrowser(a, program=shop.program_code) as browser:
        await browser.sign_in()
        card = (await browser.open("/")).text.split('data-testid="card-number">')[1].split("<")[0]
        # the session made on A is good on B too: sessions live in signed cookies and Valkey, not in A
        async with httpx.AsyncClient(base_url=b, cookies=browser.http.cookies, headers={"Accept": "text/html"}) as other:
            on_b = await other.get("/")
        assert on_b.status_code == 200 and card in on_b.text
        async with browser.http.stream("GET", "/live/balance", timeout=30) as stream:
            events = sse_events(stream)
            async with asyncio.timeout(10):
                first: dict[str, str] = {}
                while len(first) < 3:
                    name, html = await anext(events)
                    first[name] = html
            async with httpx.AsyncClient(base_url=b) as till:
                sale = await till.post("/pos/v1/sales/confirm", headers=shop.headers,
                                       json=sale_body(shop, [("cheese", 2, 59_900)], card=card))
            assert sale.status_code == 200, sale.text
            async with asyncio.timeout(15):
                while True:
                    name, html = await anext(events)
                    if name == "purchases" and f'href="/purchases/{sale.json()["sale_id"]}"' in html:
                        break


async def test_a_rate_limit_counts_requests_to_both_instances(two_instances: tuple[str, str]) -> None:
    a, b = two_instances
    address = f"198.51.100.{secrets.randbelow(250) + 1}"  # a device of its own: its budget is untouched
    marker = secrets.token_hex(4)
    headers = {"X-Forwarded-For": address}
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(LOG_REQUESTS_PER_IP):
            base = a if n % 2 else b
            answer = await http.post(f"{base}/passkit/v1/log", json={"logs": [f"{marker} {n}"]}, headers=headers)
            assert answer.status_code == 200, (n, answer.text)
        for base in (a, b):
            refused = await http.post(f"{base}/passkit/v1/log", json={"logs": [marker]}, headers=headers)
            assert refused.status_code == 429, refused.text


async def test_a_till_key_revoked_through_a_stops_working_on_b_at_once(
        two_instances: tuple[str, str], shop: Shop) -> None:
    from backend.admin.auth import create_operator_key
    from tests.factories import unique

    a, b = two_instances
    admin = {"Authorization": f"Bearer {(await create_operator_key(unique('ops'), ['admin'])).key}"}
    async with httpx.AsyncClient(timeout=10) as http:
        issued = await http.post(f"{a}/admin/v1/till-keys", json={"store": shop.store_code, "till": "till-9"},
                                 headers=admin)
        assert issued.status_code == 201, issued.text
        till = {"Authorization": f"Bearer {issued.json()['key']}"}
        scan = {"scan": "2999999999999"}
        assert (await http.post(f"{b}/pos/v1/identify", json=scan, headers=till)).status_code == 404  # authenticated
        revoked = await http.post(f"{a}/admin/v1/till-keys/{issued.json()['id']}/revoke", headers=admin)
        assert revoked.status_code == 200, revoked.text
        at = time.monotonic()
        refused = await http.post(f"{b}/pos/v1/identify", json=scan, headers=till)
        assert refused.status_code == 401, refused.text
        assert time.monotonic() - at < 1.0
