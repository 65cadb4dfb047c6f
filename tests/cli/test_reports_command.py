"""`kopilka reports refresh`: the finance reports' sums on demand (what the worker's `reports` job does)."""

from __future__ import annotations

from typing import Any

from loyalty_core.reports import finance
from tests.cli.conftest import run_kopilka
from tests.factories import make_member


async def test_refresh_sums_a_new_grant_into_the_liability(shop: Any) -> None:
    await make_member(shop, 700)

    result = run_kopilka("reports", "refresh", "--full")

    assert result.returncode == 0, result.stderr
    assert "summed every day" in result.stdout and "reports:" in result.stderr
    rec = await finance.reconciliation(await finance.program(shop.program_code))
    assert rec is not None and rec.difference == 0 and rec.accounts_active == 700
    again = run_kopilka("reports", "refresh")
    assert again.returncode == 0 and "summed days since" in again.stdout
