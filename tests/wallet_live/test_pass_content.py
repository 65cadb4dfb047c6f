"""What a downloaded pass shows for this shopper: their language, and the stores near the one they shop at."""

from __future__ import annotations

import math
import random

import httpx
import pytest

from loyalty_core.setup import entities as setup
from loyalty_core.tables import Customer, Store
from tests.factories import Shop, make_member, sale_body, unique
from tests.wallet_live.test_passkit import download

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def place(store_id: int, lat: float, lon: float) -> None:
    await Store.update({Store.latitude: lat, Store.longitude: lon}).where(Store.id == store_id)


async def new_store(lat: float, lon: float, name: str) -> int:
    code = unique("store")
    store_id = await setup.create_store(code, name)
    await place(store_id, lat, lon)
    return store_id


async def test_the_pass_lists_the_ten_stores_nearest_the_shoppers_favourite(http: httpx.AsyncClient,
                                                                           shop: Shop) -> None:
    # somewhere no other test puts stores; the shopper buys at the shop's store, which stands there
    lat, lon = random.uniform(-50, 50), random.uniform(-150, 150)
    await place(shop.store_id, lat, lon)
    far = [await new_store(lat + 3 + i, lon, f"far {i}") for i in range(3)]  # older ids than the near ones
    near = [await new_store(lat + 0.01 * k, lon + 0.005 * k, f"near {k}") for k in range(12, 0, -1)]
    assert far and near
    member = await make_member(shop, points=100)
    sale = await http.post("/pos/v1/sales/confirm", json=sale_body(shop, [("milk", 1, 10_000)], card=member.card),
                           headers=shop.headers)
    assert sale.status_code == 200, sale.text

    pass_json, _ = await download(http, member)
    shown = [(loc["latitude"], loc["longitude"], loc.get("relevantText")) for loc in pass_json["locations"]]
    assert len(shown) == 10
    assert shown[0][2] == "Test store" and math.isclose(shown[0][0], lat, abs_tol=1e-3)
    assert [name for *_, name in shown[1:]] == [f"near {k}" for k in range(1, 10)]


async def test_the_pass_is_in_english_for_an_english_speaking_shopper(http: httpx.AsyncClient, shop: Shop) -> None:
    member = await make_member(shop, points=300, expires_in_days=30)
    await Customer.update({Customer.locale: "en"}).where(Customer.id == member.customer_id)
    pass_json, _ = await download(http, member)
    assert pass_json["storeCard"]["primaryFields"][0]["label"] == "Points"
    assert pass_json["storeCard"]["primaryFields"][0]["changeMessage"] == "Balance: %@ points"
    russian = await make_member(shop, points=300)
    pass_json, _ = await download(http, russian)
    assert pass_json["storeCard"]["primaryFields"][0]["label"] == "Баллы"
