"""Two `kopilka serve` instances on different ports against one PostgreSQL and one Valkey, as behind a load
balancer: nothing a request needs lives in one instance's memory (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from loyalty_core.setup import entities as setup
from tests.cli.instances import serving
from tests.factories import Shop, basic_rules, make_member, make_shop, sale_body, unique
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


async def _within(seconds: float, probe: Callable[[], Awaitable[bool]]) -> float:
    """Ask `probe` back to back until it holds; how long that took. Fails when it does not hold within `seconds`."""
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
    return time.monotonic() - started


async def _admin(*roles: str) -> dict[str, str]:
    from backend.admin.auth import create_operator_key

    return {"Authorization": f"Bearer {(await create_operator_key(unique('ops'), list(roles))).key}"}


async def test_a_till_key_revoked_through_a_stops_working_on_b_within_a_second(
        two_instances: tuple[str, str], shop: Shop) -> None:
    a, b = two_instances
    admin = await _admin("admin")
    async with httpx.AsyncClient(timeout=10) as http:
        issued = await http.post(f"{a}/admin/v1/till-keys", json={"store": shop.store_code, "till": "till-9"},
                                 headers=admin)
        assert issued.status_code == 201, issued.text
        till = {"Authorization": f"Bearer {issued.json()['key']}"}
        # an unknown card: B reads nothing but the key, and keeps the key in its cache from now on
        scan = {"scan": "2999999999999"}
        for _ in range(3):
            assert (await http.post(f"{b}/pos/v1/identify", json=scan, headers=till)).status_code == 404
        revoked = await http.post(f"{a}/admin/v1/till-keys/{issued.json()['id']}/revoke", headers=admin)
        assert revoked.status_code == 200, revoked.text

        async def refused_on_b() -> bool:
            answer = await http.post(f"{b}/pos/v1/identify", json=scan, headers=till)
            assert answer.status_code in (401, 404), answer.text
            return answer.status_code == 401

        await _within(1.0, refused_on_b)  # B's cache heard the revocation (nothing else tells B here)
        assert {(await http.post(f"{b}/pos/v1/identify", json=scan, headers=till)).status_code for _ in range(5)} == {401}


async def _accrued(http: httpx.AsyncClient, base: str, shop: Shop, card: str, role: str) -> int:
    answer = await http.post(f"{base}/pos/v1/sales/calculate", headers=shop.headers,
                             json=sale_body(shop, [(role, 1, 50_000)], card=card))
    assert answer.status_code == 200, answer.text
    return answer.json()["totals"]["accrued_points"]  # type: ignore[no-any-return]


async def test_a_product_excluded_through_a_is_priced_excluded_on_b_within_a_second(
        two_instances: tuple[str, str], shop: Shop) -> None:
    a, b = two_instances
    member = await make_member(shop)
    importer = await _admin("import")
    async with httpx.AsyncClient(timeout=10) as http:
        assert await _accrued(http, b, shop, member.card, "milk") > 0  # B keeps the milk's facts
        excluded = await http.post(f"{a}/admin/v1/catalog", headers=importer, json={"products": [
            {"sku": shop.skus["milk"], "name": "Milk", "excluded": True}]})
        assert excluded.status_code == 200, excluded.text

        async def excluded_on_b() -> bool:
            return await _accrued(http, b, shop, member.card, "milk") == 0

        await _within(1.0, excluded_on_b)
        # and back: the catalog's word goes the other way as quickly
        included = await http.post(f"{a}/admin/v1/catalog", headers=importer, json={"products": [
            {"sku": shop.skus["milk"], "name": "Milk", "excluded": False}]})
        assert included.status_code == 200, included.text

        async def earning_on_b() -> bool:
            return await _accrued(http, b, shop, member.card, "milk") > 0

        await _within(1.0, earning_on_b)


async def test_a_product_moved_into_an_excluded_category_through_a_earns_nothing_on_b_within_a_second(
        two_instances: tuple[str, str]) -> None:
    a, b = two_instances
    tobacco = unique("tobacco")
    shop = await make_shop(basic_rules(excluded_categories=[tobacco]))
    member = await make_member(shop)
    importer = await _admin("import")
    async with httpx.AsyncClient(timeout=10) as http:
        assert await _accrued(http, b, shop, member.card, "bread") > 0  # B keeps the bread's facts (no category)
        moved = await http.post(f"{a}/admin/v1/catalog", headers=importer, json={
            "categories": [{"code": tobacco, "name": "Tobacco"}],
            "products": [{"sku": shop.skus["bread"], "name": "Bread", "category": tobacco}]})
        assert moved.status_code == 200, moved.text

        async def excluded_on_b() -> bool:
            return await _accrued(http, b, shop, member.card, "bread") == 0

        await _within(1.0, excluded_on_b)


async def test_with_the_messages_lost_the_version_in_the_read_statement_drops_stale_facts(
        two_instances: tuple[str, str], shop: Shop) -> None:
    """Changes made behind the app's back (no message is published at all): the trigger still moves
    cache_version, and the next statement of a till's request that reads it drops B's stale facts."""
    from loyalty_core import db

    _, b = two_instances
    member = await make_member(shop)
    async with httpx.AsyncClient(timeout=10) as http:
        assert await _accrued(http, b, shop, member.card, "cheese") > 0  # B keeps the key and the cheese
        await db.fetch("UPDATE product SET excluded = true WHERE sku = $1", shop.skus["cheese"])
        assert await _accrued(http, b, shop, member.card, "cheese") == 0  # at once: the card's read saw the version

        # a key revoked the same way: a sale without a card reads nothing before its write, whose version refuses it
        key = await setup.create_till_key(shop.store_code, unique("till"))
        till = {"Authorization": f"Bearer {key.key}"}
        anonymous = sale_body(shop, [("bread", 1, 4_990)])
        assert (await http.post(f"{b}/pos/v1/sales/confirm", headers=till, json=anonymous)).status_code == 200
        await db.fetch("UPDATE till_key SET revoked_at = now() WHERE key_hash = $1", setup.hash_secret(key.key))
        # an unknown card's identify reads nothing but the key: B still holds it (its cache is in use) ...
        assert (await http.post(f"{b}/pos/v1/identify", json={"scan": "2999999999998"}, headers=till)).status_code == 404
        # ... but every statement a sale runs reads the version: the key is read again and refused, nothing written
        again = sale_body(shop, [("bread", 1, 4_990)])
        refused = await http.post(f"{b}/pos/v1/sales/confirm", headers=till, json=again)
        assert refused.status_code == 401, refused.text
        assert not await db.fetch("SELECT 1 FROM sale WHERE receipt_id = $1", again["receipt_id"])
        for body in ({"scan": member.card}, {"scan": "2999999999998"}):
            assert (await http.post(f"{b}/pos/v1/identify", json=body, headers=till)).status_code == 401


async def test_the_cache_subscription_comes_back_after_valkey_drops_it(
        two_instances: tuple[str, str], shop: Shop, services: tuple[str, str]) -> None:
    import valkey.asyncio as valkey_asyncio

    from backend.cache_bus import CLIENT_NAME

    a, b = two_instances
    client = valkey_asyncio.from_url(services[1])
    database = client.connection_pool.connection_kwargs.get("db", 0)

    async def subscriptions() -> list[int]:
        return [int(c["id"]) for c in await client.client_list()
                if c.get("name") == CLIENT_NAME and int(c.get("db", -1)) == database and int(c.get("sub", 0)) > 0]

    try:
        before = await subscriptions()
        assert len(before) >= 2  # A's and B's
        for client_id in before:
            await client.client_kill_filter(_id=client_id)

        async def back() -> bool:
            now = await subscriptions()
            return len(now) >= len(before) and not set(now) & set(before)

        await _within(10.0, back)
    finally:
        await client.aclose()
    await test_a_till_key_revoked_through_a_stops_working_on_b_within_a_second(two_instances, shop)
