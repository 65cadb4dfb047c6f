"""Shoppers that log in over real HTTP against the `server` fixture, in a program of their own."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.identity.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.identity.shopper import Shopper, new_phone


@pytest.fixture
def shopper_factory(http: Any, shop: Any) -> Callable[..., Awaitable[Shopper]]:
    async def factory(to: str | None = None, *, log_in: bool = True, **body: Any) -> Shopper:
        shopper = Shopper(http=http, to=to or new_phone(), program=shop.program_code)
        if log_in:
            await shopper.log_in(**body)
        return shopper

    return factory


# The app server (a session fixture, started once for every test directory) reads its OIDC provider from the
# environment when it starts, so the provider's address is fixed here, at collection, before any server exists.
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_OIDC_PORT = _free_port()
os.environ.update(
    KOPILKA_OIDC_ISSUER=f"http://127.0.0.1:{_OIDC_PORT}",
    KOPILKA_OIDC_CLIENT_ID=CLIENT_ID,
    KOPILKA_OIDC_CLIENT_SECRET=CLIENT_SECRET,
)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Provider]:
    provider = Provider(_OIDC_PORT)
    provider.start()
    yield provider
    provider.stop()
