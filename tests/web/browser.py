"""A shopper's browser without JavaScript: httpx with a cookie jar, reading the CSRF token from each form."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.identity.shopper import code_sent_to, new_ip, new_phone

CSRF = re.compile(r'name="_csrf" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


class NoJsBrowser:
    def __init__(self, base_url: str, *, program: str | None = None, to: str | None = None) -> None:
        self.ip = new_ip()
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, follow_redirects=False,
                                      headers={"X-Forwarded-For": self.ip, "Accept": "text/html"})
        self.program = program
        self.to = to or new_phone()
        self.last_html = ""

    async def __aenter__(self) -> NoJsBrowser:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def open(self, path: str, **kw: Any) -> httpx.Response:
        response = await self.http.get(path, **kw)
        if response.headers.get("content-type", "").startswith("text/html"):
            self.last_html = response.text
        return response

    async def submit(self, path: str, data: dict[str, Any], *, page: str | None = None) -> httpx.Response:
        """Post a form the way a browser does: with the token of the page the form is on."""
        html = (await self.open(page)).text if page else self.last_html
        return await self.http.post(path, data={"_csrf": csrf_of(html), **data})

    async def last_code(self) -> str:
        return await code_sent_to(self.to)

    async def sign_in(self, **fields: Any) -> httpx.Response:
        query = {"program": self.program} if self.program else {}
        await self.open("/login", params=query)
        sent = await self.submit("/login", {"to": self.to, "program": self.program or ""})
        assert sent.status_code == 303, sent.text
        await self.open(sent.headers["location"])
        done = await self.submit("/login/code", {"to": self.to, "code": await self.last_code(),
                                                 "program": self.program or "", "next": "/", **fields})
        assert done.status_code == 303, done.text
        return done
