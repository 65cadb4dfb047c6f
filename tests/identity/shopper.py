"""A shopper's phone in tests: asks for a code, reads it from the development gateway, logs in over real HTTP.

The test server runs in development mode (KOPILKA_DEV_MODE=1, set by tests/conftest.py), whose gateway keeps
every message in a Valkey list; tests read that list directly: nothing on HTTP hands codes out.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Any

import httpx
import msgspec

from loyalty_core.shopper_auth.otp import INBOX_KEY, parse_identifier, read_inbox


async def code_sent_to(to: str) -> str:
    """The 6-digit code in the newest message the development gateway sent to `to`."""
    import valkey.asyncio as valkey_asyncio

    client = valkey_asyncio.from_url(os.environ["KOPILKA_VALKEY_URL"])
    try:
        inbox = await read_inbox(client, to, limit=1)
    finally:
        await client.aclose()
    assert inbox, f"no message for {to}"
    match = re.search(r"\b(\d{6})\b", inbox[0].text)
    assert match, inbox[0]
    return match.group(1)


def code_sent_to_sync(to: str) -> str:
    """The same for synchronous tests."""
    import valkey

    client = valkey.from_url(os.environ["KOPILKA_VALKEY_URL"])
    try:
        raw = client.lrange(INBOX_KEY, -1000, -1)
    finally:
        client.close()
    wanted = parse_identifier(to).value
    texts = [m["text"] for m in map(msgspec.json.decode, reversed(raw)) if m["to"] == wanted]
    assert texts, f"no message for {to}"
    return re.search(r"\b(\d{6})\b", texts[0]).group(1)  # type: ignore[union-attr]


def new_phone() -> str:
    return "+7999" + f"{secrets.randbelow(10**7):07d}"


def new_ip() -> str:
    """Every test shopper comes from an address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1)."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


class Shopper(msgspec.Struct, kw_only=True):
    http: Any
    to: str
    program: str | None = None
    ip: str = ""
    access: str = ""
    refresh: str = ""
    customer_id: int = 0
    card: str = ""

    def __post_init__(self) -> None:
        self.ip = self.ip or new_ip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}", "X-Forwarded-For": self.ip}

    @property
    def params(self) -> dict[str, str]:
        return {"program": self.program} if self.program else {}

    async def request_code(self) -> httpx.Response:
        return await self.http.post("/api/v1/auth/otp/request", json={"to": self.to}, headers={"X-Forwarded-For": self.ip})

    async def last_code(self) -> str:
        return await code_sent_to(self.to)

    async def verify(self, code: str, **body: Any) -> httpx.Response:
        return await self.http.post("/api/v1/auth/otp/verify", params=self.params,
                                    json={"to": self.to, "code": code, **body}, headers={"X-Forwarded-For": self.ip})

    async def log_in(self, **body: Any) -> dict[str, Any]:
        sent = await self.request_code()
        assert sent.status_code == 202, sent.text
        response = await self.verify(await self.last_code(), **body)
        assert response.status_code == 200, response.text
        data = response.json()
        self.access, self.refresh, self.customer_id, self.card = (
            data["access_token"], data["refresh_token"], data["customer_id"], data["card_number"])
        return data

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get("/api/v1" + path, headers=self.headers, params={**self.params, **kw.pop("params", {})}, **kw)

    async def send(self, method: str, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.http.request(method, "/api/v1" + path, headers=self.headers, json=json,
                                       params={**self.params, **kw.pop("params", {})}, **kw)
