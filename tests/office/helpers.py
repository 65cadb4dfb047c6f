"""Back-office staff over real HTTP: a staff member made by the service (as `kopilka staff create` does), and a
cookie-keeping client that signs in with password + TOTP and sends each form with its CSRF token."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp

from loyalty_core.office import staff

_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@dataclass
class StaffLogin:
    email: str
    roles: list[str]
    secret: str
    password: str = PASSWORD

    def code(self) -> str:
        return pyotp.TOTP(self.secret).now()


async def make_staff(*roles: str) -> StaffLogin:
    email = f"staff-{secrets.token_hex(5)}@example.org"
    made = await staff.create(email, list(roles), PASSWORD, dt.datetime.now(dt.UTC), name="Test " + "/".join(roles))
    secret = re.search(r"secret=([A-Z2-7]+)", made.totp_uri).group(1)  # type: ignore[union-attr]
    return StaffLogin(email=email, roles=list(roles), secret=secret)


@dataclass
class Office:
    """A browser without JavaScript: cookies, redirects by hand, the CSRF token of the last page."""

    base: str
    client: httpx.AsyncClient = field(init=False)
    csrf: str = ""

    async def __aenter__(self) -> Office:
        self.client = httpx.AsyncClient(base_url=self.base, timeout=30, follow_redirects=False)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.aclose()

    def _seen(self, response: httpx.Response) -> httpx.Response:
        found = _CSRF.search(response.text) if "text/html" in response.headers.get("content-type", "") else None
        if found:
            self.csrf = found.group(1)
        return response

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return self._seen(await self.client.get(path, params=params or None))

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None) -> httpx.Response:
        body = {"_csrf": self.csrf if csrf is None else csrf, **(data or {})}
        return self._seen(await self.client.post(path, data=body))

    async def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, response.text[:500]
        return await self.get(response.headers["location"])

    async def sign_in(self, who: StaffLogin, *, code: str | None = None, password: str | None = None) -> httpx.Response:
        await self.get("/office/login")
        return await self.post("/office/login", {"email": who.email, "password": password or who.password,
                                                 "code": code or who.code()})

    async def signed_in(self, who: StaffLogin) -> Office:
        answer = await self.sign_in(who)
        assert answer.status_code == 303, answer.text[-1500:]
        home = await self.follow(answer)
        assert home.status_code == 200 and who.email in home.text
        return self


async def restore_default_limit() -> None:
    """Tests that lower the four-eyes limit put the default back, pass or fail (other tests adjust 10 000 points)."""
    from loyalty_core.office import approvals

    await approvals.set_limit(approvals.DEFAULT_LIMIT, approvals.Actor(name="tests", ref="tests"),
                              dt.datetime.now(dt.UTC))
