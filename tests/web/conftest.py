"""Web shoppers over real HTTP (no JavaScript) against the `server` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.web.browser import NoJsBrowser


@pytest.fixture
async def browser(server: str, shop: object) -> AsyncIterator[NoJsBrowser]:
    async with NoJsBrowser(server, program=shop.program_code) as b:  # type: ignore[attr-defined]
        yield b
