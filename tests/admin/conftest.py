"""Operators with keys of each role, and helpers for problem answers and "nothing was written"."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.factories import count_rows

PROBLEM = "application/problem+json"
ROLES = ("admin", "marketer", "support", "import")
# every table an operator request could write to: "nothing written" means none of these changed
WRITTEN = ("rules_version", "program", "tier", "sale", "sale_line", "ledger_entry", "point_lot", "notification",
           "coupon", "coupon_series", "account", "idempotency_record", "category", "brand", "product", "store", "card")


class Operators(msgspec.Struct):
    keys: dict[str, str]

    def __call__(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
async def operator(db_pool: None) -> Operators:
    """`operator("marketer")` -> headers with a fresh key holding that role."""
    from backend.admin.auth import create_operator_key
    from tests.factories import unique

    keys = {role: (await create_operator_key(unique(role), [role])).key for role in ROLES}
    return Operators(keys=keys)


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    assert body["detail"]
    return body


async def row_counts() -> dict[str, int]:
    return {table: await count_rows(table) for table in WRITTEN}
