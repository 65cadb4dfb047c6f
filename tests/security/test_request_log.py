"""The request id a till sends comes back and names the request's log line; a malformed one (line breaks,
quotes, spaces, too long, not ASCII) cannot forge a log line: it is replaced by an id of ours."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

OURS = re.compile(r"[0-9a-f]{32}")


def log_lines() -> list[str]:
    return Path(os.environ["KOPILKA_TEST_SERVER_LOG"]).read_text(errors="replace").splitlines()


async def request_line(request_id: str) -> dict:
    """The JSON log line of the request with this id, once it is written."""
    for _ in range(200):
        for line in log_lines():
            if request_id in line and line.startswith("{"):
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    return record
        await asyncio.sleep(0.025)
    raise AssertionError(f"no log line for request {request_id}")


async def test_the_tills_request_id_comes_back_and_names_one_json_line(http: httpx.AsyncClient) -> None:
    request_id = f"till-42:{secrets.token_hex(4)}"
    response = await http.get("/health", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    record = await request_line(request_id)
    assert record["method"] == "GET" and record["route"] == "/health" and record["status"] == 200
    assert record["duration_ms"] >= 0


async def test_without_a_request_id_one_is_made(http: httpx.AsyncClient) -> None:
    response = await http.post("/pos/v1/identify", json={"scan": "x"})  # no key: 401, still logged
    request_id = response.headers["x-request-id"]
    assert OURS.fullmatch(request_id)
    record = await request_line(request_id)
    assert record["route"] == "/pos/v1/identify" and record["status"] == response.status_code == 401


async def test_an_unmatched_path_is_logged_by_nothing_of_the_path(http: httpx.AsyncClient) -> None:
    secret_path = f"/no-such-{secrets.token_hex(6)}"
    response = await http.get(secret_path + "?phone=%2B79990000000")
    assert response.status_code == 404
    record = await request_line(response.headers["x-request-id"])
    assert record["route"] == "(unmatched)" and record["status"] == 404
    assert not [line for line in log_lines() if secret_path in line or "79990000000" in line]


@pytest.mark.parametrize("forged", [
    'abc", "status": 200, "route": "/admin',
    "abc def",
    "x" * 129,
    "id\u00e9".encode().decode("latin-1"),
    "a\tb",
    "",
])
async def test_a_malformed_request_id_is_replaced(http: httpx.AsyncClient, forged: str) -> None:
    response = await http.get("/health", headers=[("X-Request-ID", forged.encode("latin-1"))])
    request_id = response.headers["x-request-id"]
    assert request_id != forged and OURS.fullmatch(request_id)
    record = await request_line(request_id)
    assert record["route"] == "/health"
    if forged:
        assert not [line for line in log_lines() if forged in line]


async def test_a_request_id_cannot_start_a_second_line_over_raw_http(server: str) -> None:
    """httpx refuses a line break in a header; a raw socket does not, and the server must not pass it on."""
    host, port = server.removeprefix("http://").split(":")
    marker = secrets.token_hex(6)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\rFORGED-{marker}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = (await reader.read()).decode(errors="replace")
    writer.close()
    assert f"FORGED-{marker}" not in answer
    assert not [line for line in log_lines() if line.startswith(f"FORGED-{marker}")]


def test_unicode_line_ends_in_a_message_stay_on_its_line() -> None:
    """Log lines keep Cyrillic unescaped; U+2028, U+2029 and NEL, which JSON would also keep, are escaped:
    Python's splitlines() and some log viewers start a new line at them."""
    import logging

    from backend.observability import JsonLines

    message = "till note\u2028FORGED kopilka.auth: admin logged in\u2029x\x85y Копилка\n"
    record = logging.LogRecord("kopilka.test", logging.WARNING, __file__, 1, message, None, None)
    line = JsonLines("%(message)s", json_ensure_ascii=False).format(record)
    assert len(line.splitlines()) == 1 and "Копилка" in line
    assert json.loads(line)["message"] == message
