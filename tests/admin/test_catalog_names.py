"""The catalog's names per language (issue 16): `names: {ru, en}` on categories and products, stored with the
catalog's one name; anything else is refused whole (422) and nothing is written."""

from __future__ import annotations

import httpx
import pytest

from tests.admin.conftest import Operators, problem, row_counts
from tests.factories import Shop, unique

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_names_per_language_are_stored_and_bad_ones_refused_whole(http: httpx.AsyncClient, shop: Shop,
                                                                        operator: Operators) -> None:
    from loyalty_core.members.extras import catalog_names
    from loyalty_core.tables import Category, Product

    dairy, sku = unique("dairy"), unique("kefir")
    catalog = {"categories": [{"code": dairy, "name": "Молочные продукты", "names": {"en": "Dairy"}}],
               "products": [{"sku": sku, "name": "Кефир 1 л", "category": dairy, "names": {"ru": "Кефир 1 л", "en": "Kefir 1 l"}}]}
    r = await http.post("/admin/v1/catalog", json=catalog, headers=operator("import"))
    assert r.status_code == 200, r.text
    stored = await Product.select(Product.names).where(Product.sku == sku).first()
    assert stored is not None and catalog_names(stored["names"]) == {"ru": "Кефир 1 л", "en": "Kefir 1 l"}
    category = await Category.select(Category.names).where(Category.code == dairy).first()
    assert category is not None and catalog_names(category["names"]) == {"en": "Dairy"}

    counts = await row_counts()
    for bad in ({"products": [{"sku": unique("s"), "name": "S", "names": {"de": "Käse"}}]},
                {"products": [{"sku": unique("s"), "name": "S", "names": {"en": " "}}]},
                {"categories": [{"code": unique("c"), "name": "C", "names": {"ru": "я" * 301}}]},
                {"categories": [{"code": unique("c"), "name": "C", "names": {"ru": 5}}]},
                {"products": [{"sku": unique("s"), "name": "S", "names": ["en", "S"]}]}):
        problem(await http.post("/admin/v1/catalog", json=bad, headers=operator("import")), 422, "validation-error")
    assert await row_counts() == counts
    assert catalog_names((await Product.select(Product.names).where(Product.sku == sku).first() or {})["names"]) == \
        {"ru": "Кефир 1 л", "en": "Kefir 1 l"}
