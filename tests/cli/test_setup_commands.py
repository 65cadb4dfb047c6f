"""An operator sets up a shop from the command line: schema, demo data, till keys, card series."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from backend.pos.auth import authenticate_till
from loyalty_core.cards import is_valid_card_number
from loyalty_core.setup.entities import hash_secret
from loyalty_core.tables import Card, Till, TillKey
from tests.cli.conftest import fetch_value, run_kopilka


class _Connection:
    """Just the part of a request that till authentication reads."""

    def __init__(self, key: str) -> None:
        self.headers = {"authorization": f"Bearer {key}"}


async def test_migrate_twice_applies_every_migration_once(fresh_env: dict[str, str]) -> None:
    first = run_kopilka("migrate", env=fresh_env)
    assert first.returncode == 0, first.stderr
    applied = await fetch_value(fresh_env, "SELECT count(*) FROM migration")
    tables = await fetch_value(fresh_env, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")

    second = run_kopilka("migrate", env=fresh_env)

    assert second.returncode == 0, second.stderr
    # a new database: none applied before, all of them now (not "N already complete" then "N not yet run")
    assert f"0 applied before, applying {applied}" in first.stderr and "already complete" not in first.stderr
    assert f"applied {applied}; the schema is current" in first.stderr
    assert "none to apply" in second.stderr and "applying" not in second.stderr
    assert await fetch_value(fresh_env, "SELECT count(*) FROM migration") == applied
    assert await fetch_value(fresh_env, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables


async def _demo_counts(env: dict[str, str]) -> dict[str, Any]:
    return {
        table: await fetch_value(env, f"SELECT count(*) FROM {table}")
        for table in ("program", "store", "till", "till_key", "category", "brand", "product", "card", "customer", "membership", "account")
    }


async def test_demo_seeds_an_empty_database_once(fresh_env: dict[str, str]) -> None:
    assert run_kopilka("migrate", env=fresh_env).returncode == 0

    seeded = run_kopilka("demo", env=fresh_env)

    assert seeded.returncode == 0, seeded.stderr
    assert "demo till key" in seeded.stdout
    counts = await _demo_counts(fresh_env)
    assert counts["program"] == 1 and counts["store"] == 3 and counts["till"] == 6
    assert counts["product"] >= 40 and counts["customer"] == 2
    assert counts["card"] == 20 + 2  # a plastic series and the two shoppers' virtual cards
    assert await fetch_value(fresh_env, "SELECT count(*) FROM brand WHERE own_brand") == 1
    assert await fetch_value(
        fresh_env, "SELECT count(*) FROM product p JOIN category c ON c.id = p.category WHERE 'alcohol' = ANY(c.path) AND NOT p.excluded"
    ) == 0
    assert await fetch_value(fresh_env, "SELECT count(DISTINCT timezone) FROM store") == 3
    assert await fetch_value(fresh_env, "SELECT min(active) FROM account") > 0

    again = run_kopilka("demo", env=fresh_env)

    assert again.returncode == 0, again.stderr
    assert "nothing seeded" in again.stdout
    assert await _demo_counts(fresh_env) == counts


async def test_demo_force_adds_a_second_program_and_cards_then_need_a_program(fresh_env: dict[str, str]) -> None:
    assert run_kopilka("migrate", env=fresh_env).returncode == 0
    assert run_kopilka("demo", env=fresh_env).returncode == 0
    programs = await fetch_value(fresh_env, "SELECT count(*) FROM program")

    forced = run_kopilka("demo", "--force", env=fresh_env)

    assert forced.returncode == 0, forced.stderr
    assert await fetch_value(fresh_env, "SELECT count(*) FROM program") == programs + 1
    cards = await fetch_value(fresh_env, "SELECT count(*) FROM card")
    ambiguous = run_kopilka("cards", "emit", "--series", "s1", "--count", "2", env=fresh_env)
    assert ambiguous.returncode == 1
    assert "several programs exist, pass --program" in ambiguous.stderr
    assert await fetch_value(fresh_env, "SELECT count(*) FROM card") == cards


async def test_till_key_create_prints_a_key_that_authenticates_the_till(shop: Any) -> None:
    result = run_kopilka("till-key", "create", "--store", shop.store_code, "--till", "cli-7")

    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    row = await TillKey.select(TillKey.key_hash, TillKey.prefix, TillKey.till.code, TillKey.till.store.code).where(
        TillKey.key_hash == hash_secret(key)
    ).first()
    assert row is not None and row["till.code"] == "cli-7" and row["till.store.code"] == shop.store_code
    assert key not in str(await TillKey.select().where(TillKey.key_hash == row["key_hash"]))  # only the hash is kept
    till = await authenticate_till(_Connection(key))  # type: ignore[arg-type]
    assert (till.store_code, till.till_code) == (shop.store_code, "cli-7")


async def test_cards_emit_prints_distinct_numbers_with_check_digits_and_their_secrets(shop: Any) -> None:
    # issue 10: each line is now "number<TAB>secret"; the secret is printed with the card, only its hash is stored
    from loyalty_core.members.card_proof import secret_hash

    result = run_kopilka("cards", "emit", "--series", "cli-plastic", "--count", "5", "--program", shop.program_code)

    assert result.returncode == 0, result.stderr
    pairs = [line.split("\t") for line in result.stdout.splitlines()]
    numbers = [number for number, _ in pairs]
    assert len(numbers) == 5 and len(set(numbers)) == 5
    assert all(is_valid_card_number(n) for n in numbers)
    rows = await Card.select(Card.number, Card.status, Card.series, Card.membership, Card.secret_hash).where(
        Card.number.is_in(numbers))
    assert len(rows) == 5
    assert {(r["status"], r["series"], r["membership"]) for r in rows} == {("emitted", "cli-plastic", None)}
    stored = {r["number"]: r["secret_hash"] for r in rows}
    assert all(stored[number] == secret_hash(number, secret) for number, secret in pairs)


async def test_a_large_series_is_emitted_in_parts_with_progress(shop: Any) -> None:
    result = run_kopilka("cards", "emit", "--series", "cli-big", "--count", "12000", "--program", shop.program_code)

    assert result.returncode == 0, result.stderr
    numbers = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert len(set(numbers)) == 12000
    assert await Card.count().where(Card.series == "cli-big") == 12000
    assert "emit: 12000/12000 (100%)" in result.stderr


async def test_bad_arguments_are_explained_and_write_nothing(shop: Any) -> None:
    tills, cards = await Till.count(), await Card.count()

    for args, status, message in [
        (("cards", "emit", "--series", "x", "--count", "0", "--program", shop.program_code), 2, "must be positive"),
        (("cards", "emit", "--series", "x", "--count", "many", "--program", shop.program_code), 2, "not a whole number"),
        (("cards", "emit", "--count", "3"), 2, "--series"),
        (("cards", "emit", "--series", "x", "--count", "3", "--program", "no-such-program"), 1, "'no-such-program' does not exist"),
        (("till-key", "create", "--store", shop.store_code), 2, "--till"),
        (("till-key", "create", "--store", "no-such-store", "--till", "1"), 1, "store 'no-such-store' does not exist"),
        # what to do about it: the stores there are, and how one is opened
        (("till-key", "create", "--store", "no-such-store", "--till", "1"), 1, "opens stores with POST /admin/v1/stores"),
        (("till-key", "remove"), 2, "invalid choice"),
        (("nonsense",), 2, "invalid choice"),
    ]:
        result = run_kopilka(*args)
        assert result.returncode == status, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr

    assert (await Till.count(), await Card.count()) == (tills, cards)


def test_commands_on_a_database_without_schema_say_to_migrate(empty_env: dict[str, str]) -> None:
    for args in (("demo",), ("till-key", "create", "--store", "s", "--till", "1"), ("ledger", "verify")):
        result = run_kopilka(*args, env=empty_env)
        assert result.returncode == 1, (args, result.stderr)
        assert "run `kopilka migrate` first" in result.stderr and "Traceback" not in result.stderr


async def test_worker_once_delivers_the_outbox_of_a_fresh_demo(fresh_env: dict[str, str]) -> None:
    if importlib.util.find_spec("backend.push.worker") is None:
        result = run_kopilka("worker", env=fresh_env)
        assert result.returncode == 1 and "worker not available yet" in result.stderr
        pytest.skip("the push worker is not part of this build")
    assert run_kopilka("migrate", env=fresh_env).returncode == 0
    assert run_kopilka("demo", env=fresh_env).returncode == 0
    assert await fetch_value(fresh_env, "SELECT count(*) FROM notification WHERE status = 'pending'") > 0  # welcome messages

    result = run_kopilka("worker", "--once", env=fresh_env)

    assert result.returncode == 0, result.stderr
    assert "delivered a batch of" in result.stdout
    # no APNs/FCM configured here: the messages are settled as skipped, not left pending
    assert await fetch_value(fresh_env, "SELECT count(*) FROM notification WHERE status = 'pending'") == 0
