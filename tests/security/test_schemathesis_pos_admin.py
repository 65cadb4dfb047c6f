"""Schemathesis against the published /schema for the till API (/pos/v1, as a real till) and the operator API
(/admin/v1, as an operator holding every role): random and edge-case input never makes the server fail.
Bounded: a few examples per operation and an overall time budget (the /api/v1 run is tests/api/test_schemathesis.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.admin.auth import create_operator_key
from tests.factories import Shop, make_member, unique
from tests.fuzzing import fuzz

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXAMPLES_PER_OPERATION = 12
BUDGET_SECONDS = 90
# categories are shared by every shopper's favourites page, which other tests read: random ones would leak into
# them (the catalog's malformed input is in test_malformed_input.py)
SKIP = {("POST", "/admin/v1/catalog")}


def _fuzz(server: str, path_regex: str, headers: dict[str, str], *, min_operations: int) -> tuple[list[str], list[int]]:
    log = Path(os.environ.get("KOPILKA_TEST_SERVER_LOG", "/nonexistent"))
    log_offset = log.stat().st_size if log.exists() else 0
    failures, statuses = fuzz(server, path_regex, headers, examples=EXAMPLES_PER_OPERATION,
                              budget_seconds=BUDGET_SECONDS, min_operations=min_operations, skip=SKIP)
    if log.exists():
        with log.open("rb") as handle:
            handle.seek(log_offset)
            if b"Traceback" in (written := handle.read()):
                failures.append("traceback in the server log:\n" + written.decode(errors="replace")[-3000:])
    return failures, statuses


async def test_no_pos_v1_operation_fails_with_a_server_error(server: str, shop: Shop) -> None:
    await make_member(shop, points=500)
    failures, statuses = _fuzz(server, "^/pos/v1/", shop.headers, min_operations=7)
    assert not failures, "\n".join(failures[:20])
    assert len(statuses) > 50


async def test_no_admin_v1_operation_fails_with_a_server_error(server: str, shop: Shop) -> None:
    await make_member(shop, points=500)
    key = (await create_operator_key(unique("fuzz"), ["admin", "support", "marketer", "import"])).key
    failures, statuses = _fuzz(server, "^/admin/v1/", {"Authorization": f"Bearer {key}"}, min_operations=25)
    assert not failures, "\n".join(failures[:20])
    assert len(statuses) > 200
