"""A bounded Schemathesis run over part of the published /schema: a few examples per operation and an overall
time budget; any 5xx is a failure. Used by tests/api/test_schemathesis.py and tests/security/test_schemathesis_pos_admin.py."""

from __future__ import annotations

import time
from collections.abc import Collection

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")


def fuzz(
    server: str, path_regex: str, headers: dict[str, str], *, examples: int, budget_seconds: float,
    min_operations: int, skip: Collection[tuple[str, str]] = (),
) -> tuple[list[str], list[int]]:
    """(the 5xx answers, every status seen) for the operations matching `path_regex`, but `skip` (method, path)."""
    schema = schemathesis.openapi.from_url(server + "/schema/openapi.json").include(path_regex=path_regex)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= min_operations, [op.path for op in operations]
    failures: list[str] = []
    statuses: list[int] = []
    started = time.monotonic()
    for operation in operations:
        if (operation.method.upper(), operation.path) in skip:
            continue
        if time.monotonic() - started > budget_seconds:
            pytest.fail(f"schemathesis run over {path_regex} exceeded {budget_seconds} s")

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            response = case.call(base_url=server, headers=headers, timeout=10)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        run()
    return failures, statuses
