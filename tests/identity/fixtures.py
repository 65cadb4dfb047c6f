"""Shoppers that log in over real HTTP against the `server` fixture; the test OIDC provider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.identity.oidc_provider import Provider, running_provider
from tests.identity.shopper import Shopper, new_phone


@pytest.fixture
def shopper_factory(http: Any, shop: Any) -> Callable[..., Awaitable[Shopper]]:
    async def factory(to: str | None = None, *, log_in: bool = True, **body: Any) -> Shopper:
        shopper = Shopper(http=http, to=to or new_phone(), program=shop.program_code)
        if log_in:
            await shopper.log_in(**body)
        return shopper

    return factory



@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Provider]:
    yield running_provider()
