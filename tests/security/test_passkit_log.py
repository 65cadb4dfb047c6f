"""Anonymous POST /passkit/v1/log (Apple's protocol: no authentication) cannot forge or flood our log.

Wallet's messages are untrusted text: control and format characters are escaped, so a newline can never
start a line of its own; lines are capped in length and number; each client address has a request budget.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import httpx
import pytest

from wallet_passes.web import LOG_LINE_MAX_CHARS, LOG_LINES_PER_REQUEST, LOG_REQUESTS_PER_IP, log_safe

pytestmark = pytest.mark.asyncio(loop_scope="session")


def server_log() -> str:
    return Path(os.environ["KOPILKA_TEST_SERVER_LOG"]).read_text(errors="replace")


async def logged_lines(marker: str, count: int = 1) -> list[str]:
    """The server log's lines that mention `marker`, once at least `count` are there."""
    for _ in range(200):
        lines = [line for line in server_log().splitlines() if marker in line]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.025)
    raise AssertionError(f"{marker} never reached the server log")


@pytest.fixture
async def fresh_budget(valkey) -> None:
    """Each test starts with this address's log budget untouched, and leaves it so."""
    await valkey.delete("kopilka:rl:passkit-log:ip:127.0.0.1")
    yield
    await valkey.delete("kopilka:rl:passkit-log:ip:127.0.0.1")


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"])
async def test_a_line_break_cannot_start_a_fake_log_line(http: httpx.AsyncClient, fresh_budget: None,
                                                         separator: str) -> None:
    marker = secrets.token_hex(6)
    forged = f"FORGED-{marker} ERROR kopilka.auth: operator admin logged in"
    response = await http.post("/passkit/v1/log", json={"logs": [f"harmless {marker}{separator}{forged}"]})
    assert response.status_code == 200
    [line] = await logged_lines(marker)
    assert not any(line.startswith(f"FORGED-{marker}") for line in server_log().splitlines())
    assert "harmless" in line and f"FORGED-{marker}" in line  # the text is kept, on the one line, escaped


async def test_escape_sequences_and_bidi_overrides_are_escaped(http: httpx.AsyncClient, fresh_budget: None) -> None:
    marker = secrets.token_hex(6)
    response = await http.post("/passkit/v1/log", json={"logs": [f"{marker} \x1b[2J\u202egnp.exe"]})
    assert response.status_code == 200
    [line] = await logged_lines(marker)
    assert "\x1b" not in line and "\u202e" not in line and "\\u001b" in line and "\\u202e" in line


async def test_long_lines_and_many_lines_are_capped(http: httpx.AsyncClient, fresh_budget: None) -> None:
    marker = secrets.token_hex(6)
    response = await http.post("/passkit/v1/log", json={"logs": [f"{marker} " + "A" * 1500] * 30})
    assert response.status_code == 200
    lines = await logged_lines(marker, LOG_LINES_PER_REQUEST)
    await logged_lines("more lines not logged")
    assert len(lines) == LOG_LINES_PER_REQUEST
    assert all(len(line) < LOG_LINE_MAX_CHARS + 200 for line in lines)
    too_many = await http.post("/passkit/v1/log", json={"logs": ["x"] * 101})
    assert too_many.status_code == 422 and too_many.headers["content-type"].startswith("application/problem+json")


async def test_one_address_cannot_flood_the_log(http: httpx.AsyncClient, fresh_budget: None) -> None:
    for _ in range(LOG_REQUESTS_PER_IP):
        assert (await http.post("/passkit/v1/log", json={"logs": ["ok"]})).status_code == 200
    refused = await http.post("/passkit/v1/log", json={"logs": ["one too many"]})
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_log_safe_keeps_readable_text_and_escapes_the_rest() -> None:
    assert log_safe("Ошибка веб-сервиса: 500") == "Ошибка веб-сервиса: 500"
    assert log_safe("a\nb\tc") == "a\\u000ab\\u0009c"
    assert log_safe("x" * 600).endswith("...[cut]") and len(log_safe("x" * 600)) == LOG_LINE_MAX_CHARS + 8
