"""Member events (welcome, referral, birthday, reactivation) and the rules document itself."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.engine import (
    EventBonus,
    MemberEvent,
    PercentPoints,
    ProgramRules,
    RuleValidationError,
    compile_program,
    evaluate_event,
    validate_program,
)
from loyalty_core.engine.demo import demo_program_rules
from tests.engine.engine_helpers import MONDAY_NOON, context, group, member, program, rule


def test_welcome_bonus_on_registration():
    prog = compile_program(demo_program_rules())

    awards = evaluate_event(MemberEvent(kind="registered", at=MONDAY_NOON), context(member("basic")), prog)

    assert [(a.membership_id, a.points, a.rule) for a in awards] == [("m-1", 500, "welcome")]


def test_referral_rewards_both_sides_on_the_friends_first_purchase():
    referral = rule("bring-a-friend", EventBonus(event="first_purchase", points=200, referrer_points=300))
    prog = program(group("event", referral))
    friend = member("basic", membership_id="m-2", referred_by="m-1")

    awards = evaluate_event(MemberEvent(kind="first_purchase", at=MONDAY_NOON), context(friend), prog)
    on_registration = evaluate_event(MemberEvent(kind="registered", at=MONDAY_NOON), context(friend), prog)

    assert [(a.membership_id, a.points) for a in awards] == [("m-2", 200), ("m-1", 300)]
    assert on_registration == []


def test_birthday_and_reactivation_events():
    prog = program(
        group(
            "event",
            rule("birthday-gift", EventBonus(event="birthday", points=100, issue_coupon="BDAY-10")),
            rule(
                "come-back",
                EventBonus(event="inactive", points=150),
                condition={
                    "op": "compare",
                    "left": {"op": "var", "name": "event.days_inactive"},
                    "cmp": ">=",
                    "right": 90,
                },
            ),
        )
    )
    shopper = context(member(birth_date=dt.date(1990, 11, 23)))

    gift = evaluate_event(MemberEvent(kind="birthday", at=MONDAY_NOON), shopper, prog)
    back = evaluate_event(MemberEvent(kind="inactive", at=MONDAY_NOON, days_inactive=120), shopper, prog)
    too_soon = evaluate_event(MemberEvent(kind="inactive", at=MONDAY_NOON, days_inactive=30), shopper, prog)

    assert [(a.points, a.issue_coupon) for a in gift] == [(100, "BDAY-10")]
    assert [a.points for a in back] == [150]
    assert too_soon == []


def test_the_demo_program_round_trips_through_json():
    rules = demo_program_rules()

    again = validate_program(msgspec.json.encode(rules))

    assert again == rules
    assert msgspec.json.decode(msgspec.json.encode(rules), type=ProgramRules) == rules
    assert [t.accrual_bp for t in rules.settings.tiers] == [300, 500, 700]
    assert (rules.settings.pending_days, rules.settings.expiry_days, rules.settings.max_redeem_share_bp) == (
        14,
        365,
        3000,
    )


def _doc(**rule_fields) -> dict:
    base = {"code": "happy-hours", "name": "Happy hours", "effect": {"kind": "percent_points", "bp": 500}}
    base.update(rule_fields)
    return {"groups": [{"code": "promo", "name": "Promo", "stage": "accrual", "rules": [base]}]}


def _errors(doc) -> list[str]:
    with pytest.raises(RuleValidationError) as error:
        validate_program(doc)
    return error.value.messages


def test_validation_names_the_rule_and_the_field():
    assert _errors(_doc(schedule={"hours": [{"start": 18, "end": 25}]})) == [
        "rule 'happy-hours': schedule.hours: end 25 is outside 0..24"
    ]


def test_validation_reports_type_errors_with_rule_and_path():
    messages = _errors(msgspec.json.encode(_doc(effect={"kind": "percent_points", "bp": "five"})))

    assert messages == ["rule 'happy-hours': effect.bp: Expected `int`, got `str`"]


def test_validation_collects_every_problem():
    doc = _doc(
        effect={"kind": "percent_discount", "bp": 20_000},
        target={"tiers": ["platinum"]},
        condition={
            "op": "compare",
            "left": {"op": "var", "name": "member.shoe_size"},
            "cmp": ">",
            "right": 40,
        },
        schedule={"weekdays": [0]},
    )

    assert _errors(doc) == [
        "rule 'happy-hours': effect.kind: 'percent_discount' does not belong in a accrual group",
        "rule 'happy-hours': schedule.weekdays: 0 is outside 1..7 (1 = Monday)",
        "rule 'happy-hours': target.tiers: no tier 'platinum'",
        "rule 'happy-hours': condition: unknown fact 'member.shoe_size'",
        "rule 'happy-hours': effect.bp: 20000 is outside 0..10000",
    ]


def test_validation_knows_declared_counters_and_duplicate_codes():
    doc = _doc(
        condition={
            "op": "compare",
            "left": {"op": "var", "name": "member.counter.week"},
            "cmp": ">",
            "right": 1,
        }
    )
    doc["groups"][0]["rules"].append(doc["groups"][0]["rules"][0])

    assert _errors(doc) == [
        "rule 'happy-hours': condition: unknown fact 'member.counter.week'",
        "rule 'happy-hours': code: used twice",
        "rule 'happy-hours': condition: unknown fact 'member.counter.week'",
    ]


def test_a_compiled_program_prices_with_its_version():
    from tests.engine.engine_helpers import basket, line, run

    result = run(program(group("accrual", rule("five", PercentPoints(bp=500)))), basket(line(1, 1_000)))

    assert result.rules_version == 7
