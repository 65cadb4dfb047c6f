"""A till's developer reads `detail` to learn what to fix: each reason once, naming the field."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import Shop, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_wrongly_written_field_is_named_once(http: httpx.AsyncClient, shop: Shop) -> None:
    body = sale_body(shop, [("milk", 1, 8990)])
    body["business_date"] = "29.11.2026"  # a till's local notation
    r = await http.post("/pos/v1/sales/calculate", json=body, headers=shop.headers)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    # it read "Invalid RFC3339 encoded date - at `$.business_date`: Invalid RFC3339 encoded date - at `$.business_date`"
    assert detail.count("$.business_date") == 1, detail
    assert r.json()["errors"][0]["key"] == "$.business_date"
