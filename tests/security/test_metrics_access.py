"""/metrics is not the public's: with KOPILKA_METRICS_TOKEN only a bearer of that token reads it; without it only
a client on the server's own machine whose request did not come through a proxy."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests import servers

PROBLEM = "application/problem+json"
TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture(scope="module")
def token_server(services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("metrics-token") / "server.log"
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with servers.uvicorn_app(log, env=env, extra_env={"KOPILKA_METRICS_TOKEN": TOKEN}) as app:
        yield app.base


def refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "kopilka_" not in response.text  # not one figure leaks with the refusal


def test_loopback_reads_metrics_without_a_token(server: str) -> None:
    response = httpx.get(server + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert "kopilka_outbox_backlog" in response.text


@pytest.mark.parametrize("header", [
    {"X-Forwarded-For": "203.0.113.7"},  # relayed by a proxy on this machine: the client is elsewhere
    {"X-Forwarded-For": "127.0.0.1"},  # a client claiming to be local through the proxy is still relayed
    {"Forwarded": "for=203.0.113.7"},
    {"X-Real-IP": "203.0.113.7"},
])
def test_a_request_relayed_by_a_proxy_is_refused_without_a_token(server: str, header: dict[str, str]) -> None:
    refused(httpx.get(server + "/metrics", headers=header, timeout=10), 403)


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer",
    "Bearer wrong-token",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    f"Basic {TOKEN}",
    TOKEN,
])
def test_with_a_token_set_only_its_bearer_reads_metrics(token_server: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    refused(httpx.get(token_server + "/metrics", headers=headers, timeout=10), 401)


def test_with_a_token_set_loopback_alone_is_not_enough_and_the_token_works_from_anywhere(token_server: str) -> None:
    refused(httpx.get(token_server + "/metrics", timeout=10), 401)
    ok = httpx.get(token_server + "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.7"},
                   timeout=10)
    assert ok.status_code == 200 and "kopilka_requests_total" in ok.text
