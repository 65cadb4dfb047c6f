"""Schemathesis against the published /schema: random and edge-case input to every /api/v1 operation
(logged in as a real shopper) never makes the server fail. Bounded: a few examples per operation."""

from __future__ import annotations

import httpx

from tests.fuzzing import fuzz
from tests.identity.shopper import code_sent_to_sync, new_ip, new_phone

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
    failures, statuses = fuzz(server, "^/api/v1/", headers, examples=EXAMPLES_PER_OPERATION,
                              budget_seconds=BUDGET_SECONDS, min_operations=20, skip=SKIP)
    assert not failures, "\n".join(failures[:20])
    assert len(statuses) > 200 and any(200 <= s < 300 for s in statuses)
