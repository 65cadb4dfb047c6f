"""The workers' cache of till keys (loyalty_core/cache.py, backend/cache_bus.py) as an attacker meets it: a
revoked key is refused at once by the instance that revoked it, and the invalidation channel can only make a
worker forget, never let a key in."""

from __future__ import annotations

import httpx
import valkey.asyncio as valkey_asyncio

from backend.admin.auth import create_operator_key
from backend.cache_bus import channel_of
from tests.factories import Shop, sale_body, unique

UNKNOWN_CARD = {"scan": "2999999999997"}  # its identify reads nothing but the key: only the cache answers for it


async def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {(await create_operator_key(unique('keys'), ['admin'])).key}"}


async def _issue(http: httpx.AsyncClient, admin: dict[str, str], shop: Shop) -> tuple[int, dict[str, str]]:
    issued = await http.post("/admin/v1/till-keys", headers=admin, json={"store": shop.store_code, "till": unique("T")})
    assert issued.status_code == 201, issued.text
    return issued.json()["id"], {"Authorization": f"Bearer {issued.json()['key']}"}


async def test_a_revoked_key_is_refused_at_once_by_the_instance_that_revoked_it(
        http: httpx.AsyncClient, shop: Shop) -> None:
    admin = await _admin()
    key_id, till = await _issue(http, admin, shop)
    for _ in range(3):  # cached by the server now
        assert (await http.post("/pos/v1/identify", json=UNKNOWN_CARD, headers=till)).status_code == 404
    revoked = await http.post(f"/admin/v1/till-keys/{key_id}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    # the very next request, on the same keep-alive connection: the revoke dropped the key before answering
    after = await http.post("/pos/v1/identify", json=UNKNOWN_CARD, headers=till)
    assert after.status_code == 401 and after.json()["type"].endswith("/unauthorized"), after.text
    sale = await http.post("/pos/v1/sales/confirm", headers=till, json=sale_body(shop, [("bread", 1, 4_990)]))
    assert sale.status_code == 401
    # the store's own key was not touched
    assert (await http.post("/pos/v1/identify", json=UNKNOWN_CARD, headers=shop.headers)).status_code == 404


async def test_the_invalidation_channel_can_make_a_worker_forget_but_never_let_a_key_in(
        http: httpx.AsyncClient, shop: Shop, services: tuple[str, str]) -> None:
    admin = await _admin()
    key_id, till = await _issue(http, admin, shop)
    assert (await http.post("/pos/v1/identify", json=UNKNOWN_CARD, headers=till)).status_code == 404
    assert (await http.post(f"/admin/v1/till-keys/{key_id}/revoke", headers=admin)).status_code == 200
    valkey = valkey_asyncio.from_url(services[1])
    try:
        channel = channel_of(valkey)
        # whoever can publish on Valkey sends what they like: tags, garbage, a huge list
        for forged in (b'["*"]', b"not json", b'{"allow": "everything"}', b'["till_key:1"]' * 1000,
                       b'{"tags": ["*"], "version": 9223372036854775807}',  # only keeps the cache from keeping
                       ("[" + ",".join(f'"sku:{n}"' for n in range(10_000)) + "]").encode()):
            assert await valkey.publish(channel, forged) >= 1  # the server listens
            for headers, expected in ((till, 401), ({"Authorization": "Bearer tk_forged"}, 401),
                                      (shop.headers, 404)):
                answer = await http.post("/pos/v1/identify", json=UNKNOWN_CARD, headers=headers)
                assert answer.status_code == expected, (forged[:40], answer.text)
    finally:
        await valkey.aclose()
