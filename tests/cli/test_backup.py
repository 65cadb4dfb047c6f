"""`kopilka backup` while tills confirm sales over HTTP, then `kopilka restore` into an empty database:
`ledger verify` passes on the copy and every sale acknowledged before the backup began is in it."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import httpx

from tests.cli.conftest import fetch_value, run_kopilka
from tests.cli.instances import serving

MAX_SALES = 600  # the load loop is bounded even if the backup never ends


def _demo(env: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """Seed the demo program; (till key, card numbers, sample skus)."""
    assert run_kopilka("migrate", env=env).returncode == 0
    seeded = run_kopilka("demo", env=env)
    assert seeded.returncode == 0, seeded.stderr
    key = re.search(r"demo till key\s+(tk_\S+)", seeded.stdout)
    cards = re.findall(r"card (\d{13})", seeded.stdout)
    cards += re.findall(r"\b\d{13}\b", seeded.stdout.split("plastic cards", 1)[1].splitlines()[0])
    skus = re.search(r"sample skus\s+(.+)", seeded.stdout)
    assert key and cards and skus, seeded.stdout
    return key[1], cards, [s.strip() for s in skus[1].split(",")]


class Tills(threading.Thread):
    """Confirms sales one after another until told to stop; remembers when each was acknowledged."""

    def __init__(self, base: str, key: str, cards: list[str], skus: list[str]) -> None:
        super().__init__(daemon=True)
        self.base, self.key, self.cards, self.skus = base, key, cards, skus
        self.acknowledged: list[tuple[float, int]] = []  # (monotonic time of the answer, sale id)
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as http:
            for n in range(MAX_SALES):
                if self.stop.is_set():
                    return
                now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                sale = {
                    "receipt_id": f"bk-{n}", "business_date": now[:10], "occurred_at": now,
                    "card": self.cards[n % len(self.cards)], "redeem_points": 0,
                    "lines": [{"line_no": 1, "sku": self.skus[n % len(self.skus)], "quantity": 1, "price": 10_000 + n,
                               "amount": 10_000 + n}],
                }
                answer = http.post("/pos/v1/sales/confirm", json=sale)
                if answer.status_code == 200:
                    self.acknowledged.append((time.monotonic(), answer.json()["sale_id"]))
                else:
                    self.failures.append(f"{answer.status_code} {answer.text[:200]}")

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline and self.is_alive(), self.failures[-3:]
            time.sleep(0.05)


def test_a_backup_under_load_restores_whole(fresh_env: dict[str, str], empty_env: dict[str, str],
                                            tmp_path: Path) -> None:
    key, cards, skus = _demo(fresh_env)
    dump = tmp_path / "kopilka.backup"
    with serving(tmp_path / "serve.log", env=fresh_env) as base:
        tills = Tills(base, key, cards, skus)
        tills.start()
        try:
            tills.wait_for(10)
            started = time.monotonic()
            made = run_kopilka("backup", str(dump), env=fresh_env)
            finished = time.monotonic()
            assert made.returncode == 0, made.stderr
            tills.wait_for(len(tills.acknowledged) + 3)  # the tills kept working after it, too
        finally:
            tills.stop.set()
            tills.join(60)
    assert not tills.failures, tills.failures[:3]
    assert "backup" in made.stderr and "backup written" in made.stdout
    during = [sale for at, sale in tills.acknowledged if started <= at <= finished]
    before = {sale for at, sale in tills.acknowledged if at < started}
    everything = {sale for _, sale in tills.acknowledged}

    restored = run_kopilka("restore", str(dump), env=empty_env)
    assert restored.returncode == 0, restored.stderr
    verified = run_kopilka("ledger", "verify", env=empty_env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger OK" in verified.stdout

    in_copy = set(asyncio.run(_sale_ids(empty_env)))
    assert before <= in_copy, f"acknowledged before the backup but missing: {sorted(before - in_copy)[:10]}"
    assert in_copy <= everything  # nothing half-written or invented
    print(f"{len(before)} sales before the backup, {len(during)} acknowledged while it ran, {len(in_copy)} in it")

    # a database that holds data is not overwritten unless asked
    again = run_kopilka("restore", str(dump), env=empty_env)
    assert again.returncode == 1 and "--replace" in again.stderr
    replaced = run_kopilka("restore", "--replace", str(dump), env=empty_env)
    assert replaced.returncode == 0, replaced.stderr
    assert asyncio.run(fetch_value(empty_env, "SELECT count(*) FROM sale")) == len(in_copy)


async def _sale_ids(env: dict[str, str]) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(env["KOPILKA_DATABASE_URL"])
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM sale")]
    finally:
        await conn.close()


def test_restore_refuses_a_file_that_is_not_a_backup(empty_env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-backup"
    bogus.write_text("SELECT 1;\n")
    refused = run_kopilka("restore", str(bogus), env=empty_env)
    assert refused.returncode == 1 and "not a Kopilka backup" in refused.stderr
    assert asyncio.run(fetch_value(empty_env, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")) == 0
