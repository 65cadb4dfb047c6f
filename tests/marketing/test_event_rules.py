"""The rules validator refuses an event rule that could never pay: a kind nothing triggers, a referrer paid on
anything but the friend's first purchase (or fake sign-ups would farm it), points valid for no days."""

from __future__ import annotations

import typing

import msgspec
import pytest

from loyalty_core.engine import validate_program
from loyalty_core.engine.effects import EventKind
from loyalty_core.engine.errors import RuleValidationError
from loyalty_core.engine.events import TRIGGERS
from tests.factories import basic_rules


def events_document(effect: dict) -> dict:
    doc = msgspec.to_builtins(basic_rules())
    doc["groups"] = [{"code": "events", "name": "Events", "stage": "event",
                      "rules": [{"code": "r", "name": "R", "effect": {"kind": "event_bonus", **effect}}]}]
    return doc


def refusal(effect: dict) -> str:
    with pytest.raises(RuleValidationError) as caught:
        validate_program(events_document(effect))
    return str(caught.value)


def test_every_event_kind_has_its_trigger() -> None:
    assert set(typing.get_args(EventKind)) == set(TRIGGERS)


def test_an_event_nothing_triggers_is_refused() -> None:
    assert "anniversary" in refusal({"event": "anniversary", "points": 100})


def test_a_referrer_is_paid_on_the_friends_first_purchase_only() -> None:
    message = refusal({"event": "registered", "points": 500, "referrer_points": 200})
    assert "referrer is rewarded on the friend's first purchase only" in message and "'registered'" in message
    validate_program(events_document({"event": "first_purchase", "points": 100, "referrer_points": 300}))


def test_points_valid_for_no_days_are_refused() -> None:
    assert "effect.valid_days: 0 is outside 1..3660" in refusal({"event": "birthday", "points": 300, "valid_days": 0})
    validate_program(events_document({"event": "birthday", "points": 300, "valid_days": 14}))
