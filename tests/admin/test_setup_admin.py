"""An operator loads the catalog, opens a store, emits a card series: all or nothing, roles checked."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import Operators, problem, row_counts
from tests.factories import Shop, count_rows, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_catalog_tree_brands_and_products_all_or_nothing(http: httpx.AsyncClient, shop: Shop, operator: Operators) -> None:
    food, dairy, own, sku = unique("food"), unique("dairy"), unique("own"), unique("kefir")
    catalog = {
        "categories": [{"code": food, "name": "Food"}, {"code": dairy, "name": "Dairy", "parent": food,
                                                         "selectable_as_favourite": True}],
        "brands": [{"code": own, "name": "Our farm", "own_brand": True}],
        "products": [{"sku": sku, "name": "Kefir 1 l", "category": dairy, "brand": own, "price": 8_990}],
    }
    r = await http.post("/admin/v1/catalog", json=catalog, headers=operator("import"))
    assert r.status_code == 200, r.text
    assert r.json() == {"categories": 2, "brands": 1, "products": 1}
    from loyalty_core.tables import Category

    path = await Category.select(Category.path).where(Category.code == dairy).first()
    assert path == {"path": [food, dairy]}

    counts = await row_counts()
    for bad in ({"categories": [{"code": unique("c"), "name": "C", "parent": "nowhere"}]},
                {"products": [{"sku": unique("s"), "name": "S", "category": "nowhere"}]},
                {"products": [{"sku": unique("s"), "name": "S", "price": -1}]},
                {"products": [{"sku": sku, "name": "A"}, {"sku": sku, "name": "B"}]},
                {"products": [{"sku": unique("s")}]}, {"unknown": []}):
        problem(await http.post("/admin/v1/catalog", json=bad, headers=operator("import")), 422, "validation-error")
    problem(await http.post("/admin/v1/catalog", json=catalog, headers=operator("marketer")), 403, "forbidden")
    assert await row_counts() == counts


async def test_a_store_its_till_key_and_a_card_series(http: httpx.AsyncClient, shop: Shop, operator: Operators) -> None:
    code = unique("store")
    r = await http.post("/admin/v1/stores", headers=operator("import"),
                        json={"code": code, "name": "Tverskaya 1", "timezone": "Asia/Yekaterinburg", "region": "Ural"})
    assert r.status_code == 201, r.text
    counts = await row_counts()
    problem(await http.post("/admin/v1/stores", headers=operator("import"), json={"code": code, "name": "again"}),
            409, "conflict")
    problem(await http.post("/admin/v1/stores", headers=operator("import"),
                            json={"code": unique("s"), "name": "x", "timezone": "Mars/Olympus"}), 422, "validation-error")
    problem(await http.post("/admin/v1/cards/emit", headers=operator("import"), json={"series": "s", "count": 0}),
            422, "validation-error")
    problem(await http.post(f"/admin/v1/stores/{code}/tills/t1/keys", headers=operator("import")), 403, "forbidden")
    assert await row_counts() == counts

    key = await http.post(f"/admin/v1/stores/{code}/tills/t1/keys", headers=operator("admin"))
    assert key.status_code == 201, key.text
    till = {"Authorization": f"Bearer {key.json()['key']}"}

    series = unique("plastic")
    emitted = await http.post("/admin/v1/cards/emit", headers=operator("marketer"),
                              json={"series": series, "count": 3, "program": shop.program_code})
    assert emitted.status_code == 201, emitted.text
    numbers = emitted.json()["numbers"]
    assert len(set(numbers)) == 3 and await count_rows("card", "series = {} AND status = 'emitted'", series) == 3
    scanned = await http.post("/pos/v1/identify", json={"scan": numbers[0]}, headers=till)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["card"] == {"number": numbers[0], "status": "emitted"}
