"""Schemathesis against the published /schema: random and edge-case input to every /api/v1 operation
(logged in as a real shopper) never makes the server fail. Bounded: a few examples per operation."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests.identity.shopper import code_sent_to_sync, new_ip, new_phone

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES_PER_OPERATION = 25
BUDGET_SECONDS = 60
# deleting the account or logging out would end the session the other operations run in
SKIP = {("DELETE", "/api/v1/me"), ("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-all")}


def _log_in(base: str, program: str) -> dict[str, str]:
    phone, ip = new_phone(), new_ip()
    with httpx.Client(base_url=base, headers={"X-Forwarded-For": ip}) as client:
        assert client.post("/api/v1/auth/otp/request", json={"to": phone}).status_code == 202
        code = code_sent_to_sync(phone)
        tokens = client.post("/api/v1/auth/otp/verify", params={"program": program}, json={"to": phone, "code": code}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}", "X-Forwarded-For": ip}


def test_no_api_v1_operation_fails_with_a_server_error(server: str, shop, oidc_provider) -> None:
    headers = _log_in(server, shop.program_code)
    schema = schemathesis.openapi.from_url(server + "/schema/openapi.json").include(path_regex="^/api/v1/")
    failures: list[str] = []
    statuses: list[int] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        if time.monotonic() - started > BUDGET_SECONDS:
            pytest.fail(f"schemathesis run exceeded {BUDGET_SECONDS} s")

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            response = case.call(base_url=server, headers=headers, timeout=10)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        run()
    assert not failures, "\n".join(failures[:20])
    assert len(statuses) > 200 and any(200 <= s < 300 for s in statuses)
