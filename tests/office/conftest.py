from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.office.helpers import restore_default_limit


@pytest.fixture(autouse=True)
async def default_limit_after(db_pool: None) -> AsyncIterator[None]:
    yield
    await restore_default_limit()
