"""The worker's cache of till keys and catalog facts (loyalty_core/cache.py), on its own: what it keeps, what a
message, a newer version or age drops, and what it refuses to keep. The servers' side: tests/cli/test_instances.py."""

from __future__ import annotations

import pytest

from loyalty_core.cache import ALL, MISSING, FactsCache, FactsChanged, check, facts


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def live_cache(max_age: float = 60.0) -> tuple[FactsCache, Clock]:
    clock = Clock()
    cache = FactsCache(clock=clock, max_age=max_age)
    cache.live = True
    return cache, clock


def test_an_entry_read_with_the_current_version_is_kept_until_a_message_names_it() -> None:
    cache, _ = live_cache()
    cache.put("till", "hash-a", "principal a", ["till_key:1", "store:1"], version=5, generation=cache.generation)
    cache.put("till", "hash-b", "principal b", ["till_key:2", "store:2"], version=5, generation=cache.generation)
    cache.put("product", "milk", "facts", ["sku:milk", "catalog"], version=5, generation=cache.generation)
    assert cache.get("till", "hash-a") == "principal a"
    cache.drop(["till_key:1"])
    assert cache.get("till", "hash-a") is MISSING
    assert cache.get("till", "hash-b") == "principal b" and cache.get("product", "milk") == "facts"
    cache.drop(["catalog"])
    assert cache.get("product", "milk") is MISSING and cache.get("till", "hash-b") == "principal b"
    cache.drop([ALL])
    assert cache.get("till", "hash-b") is MISSING


def test_a_newer_version_read_by_any_statement_drops_everything() -> None:
    cache, _ = live_cache()
    cache.put("till", "hash-a", "principal a", ["till_key:1"], version=5, generation=cache.generation)
    assert cache.observe(5) is False and cache.observe(4) is False  # the same, or an older snapshot: nothing
    assert cache.get("till", "hash-a") == "principal a"
    assert cache.observe(6) is True
    assert cache.get("till", "hash-a") is MISSING and cache.version == 6


def test_what_was_read_before_a_newer_version_or_a_drop_is_not_kept() -> None:
    cache, _ = live_cache()
    cache.observe(7)
    cache.put("till", "old", "read at 6", ["till_key:1"], version=6, generation=cache.generation)
    assert cache.get("till", "old") is MISSING
    began = cache.generation
    cache.drop(["till_key:1"])  # the revocation's message arrives while a request reads the key
    cache.put("till", "racing", "read before the message", ["till_key:1"], version=7, generation=began)
    assert cache.get("till", "racing") is MISSING
    # a read that brings a newer version than the cache's is kept (and drops the older entries)
    cache.put("product", "milk", "old facts", ["sku:milk"], version=7, generation=cache.generation)
    cache.put("till", "new", "read at 8", ["till_key:2"], version=8, generation=cache.generation)
    assert cache.get("till", "new") == "read at 8" and cache.get("product", "milk") is MISSING


def test_entries_age_out_and_nothing_is_served_while_nobody_listens_for_messages() -> None:
    cache, clock = live_cache(max_age=60)
    cache.put("till", "hash-a", "principal a", ["till_key:1"], version=1, generation=cache.generation)
    clock.now = 59
    assert cache.get("till", "hash-a") == "principal a"
    clock.now = 61
    assert cache.get("till", "hash-a") is MISSING
    cache.put("till", "hash-a", "principal a", ["till_key:1"], version=1, generation=cache.generation)
    cache.live = False  # the subscription dropped: every read goes to the database
    assert cache.get("till", "hash-a") is MISSING
    cache.put("till", "hash-b", "principal b", ["till_key:2"], version=1, generation=cache.generation)
    cache.live = True
    assert cache.get("till", "hash-b") is MISSING
    cache.forget_version()  # subscribed again: messages sent meanwhile were not heard
    assert cache.get("till", "hash-a") is MISSING and cache.version is None


def test_a_request_whose_facts_are_older_than_its_statement_is_told_to_start_again() -> None:
    facts.forget_version()
    check(10)  # a statement without facts of its own only lets the cache see the version
    check(10, used=10)
    check(9, used=10)  # an older snapshot than the facts: fine
    with pytest.raises(FactsChanged):
        check(11, used=10)
    assert facts.version == 11


def test_a_message_sent_before_its_change_committed_keeps_older_reads_out_until_its_version_is_seen() -> None:
    cache, clock = live_cache()
    cache.put("till", "hash-a", "principal a", ["till_key:1"], version=5, generation=cache.generation)
    cache.drop(["till_key:1"], version=6)  # sent from inside the revoking transaction: version 6 not committed yet
    cache.put("till", "hash-a", "read at 5", ["till_key:1"], version=5, generation=cache.generation)
    cache.put("product", "milk", "read at 5", ["sku:milk"], version=5, generation=cache.generation)
    assert cache.get("till", "hash-a") is MISSING and cache.get("product", "milk") is MISSING
    cache.put("product", "milk", "read at 6", ["sku:milk"], version=6, generation=cache.generation)
    assert cache.get("product", "milk") == "read at 6"
    # a change that rolled back never shows its version: after a while the cache keeps what it reads again
    cache.drop(["sku:milk"], version=7)
    cache.put("product", "milk", "read at 6", ["sku:milk"], version=6, generation=cache.generation)
    assert cache.get("product", "milk") is MISSING
    clock.now += 11
    cache.put("product", "milk", "read at 6", ["sku:milk"], version=6, generation=cache.generation)
    assert cache.get("product", "milk") == "read at 6"
