"""The operator's ledger jobs: settle what fell due, verify every invariant."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.cli.conftest import fetch_value, run_kopilka
from tests.factories import account_balance, make_member

UTC = dt.timezone.utc


async def test_settle_expires_points_that_burned_while_nobody_shopped(shop: Any) -> None:
    long_ago = dt.datetime.now(UTC) - dt.timedelta(days=400)
    member = await make_member(shop, 250, now=long_ago, expires_in_days=365)  # burned 35 days ago
    assert await account_balance(member.account_id) == (250, 0)  # nobody touched the account since

    result = run_kopilka("ledger", "settle", "--batch", "2")

    assert result.returncode == 0, result.stderr
    assert "points expired" in result.stdout and "settle:" in result.stderr
    assert await account_balance(member.account_id) == (0, 0)
    again = run_kopilka("ledger", "settle")
    assert again.returncode == 0 and "settled 0 accounts" in again.stdout


async def test_verify_passes_on_a_sound_ledger_and_reports_a_broken_one(fresh_env: dict[str, str]) -> None:
    assert run_kopilka("migrate", env=fresh_env).returncode == 0
    assert run_kopilka("demo", env=fresh_env).returncode == 0

    sound = run_kopilka("ledger", "verify", env=fresh_env)

    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "ledger OK" in sound.stdout
    account = await fetch_value(fresh_env, "SELECT min(id) FROM account")
    await fetch_value(fresh_env, "UPDATE account SET active = active + 7 WHERE id = $1", account)
    try:
        broken = run_kopilka("ledger", "verify", env=fresh_env)
    finally:
        await fetch_value(fresh_env, "UPDATE account SET active = active - 7 WHERE id = $1", account)

    assert broken.returncode == 1
    assert "LEDGER INVARIANTS VIOLATED" in broken.stdout
    assert f"account.active == sum(active lots' remaining): account {account}" in broken.stdout
