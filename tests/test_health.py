"""Operators' first look: health, readiness against the real services, the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health")).json() == {"status": "ok", "checks": {}}
    ready = await http.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"postgresql": "ok", "valkey": "ok"}}


async def test_openapi_describes_the_till_api(http: httpx.AsyncClient) -> None:
    r = await http.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    for path in ("/pos/v1/identify", "/pos/v1/sales/calculate", "/pos/v1/sales/confirm",
                 "/pos/v1/sales/{sale_id}/cancel", "/pos/v1/sales/{sale_id}/returns", "/pos/v1/sales/batch"):
        assert path in paths, path


async def test_unknown_paths_answer_problem_json(http: httpx.AsyncClient) -> None:
    r = await http.get("/pos/v1/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
