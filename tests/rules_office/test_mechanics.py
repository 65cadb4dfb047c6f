"""The editor's form per mechanic, generated from the engine's effects: every mechanic has a form, what the form
shows reads back as the same effect, and the marketer's units (%, ₽, ×) become the engine's numbers. Pure."""

from __future__ import annotations

import typing

import msgspec
import pytest

from loyalty_core.engine import effects
from loyalty_core.rules_office.diff import diff
from loyalty_core.rules_office.mechanics import MECHANICS, FormErrors, effect_from_form, effect_to_form
from loyalty_core.rules_office.rule_form import rule_from_form, rule_to_form
from tests.factories import basic_rules

SAMPLES = [
    {"kind": "percent_discount", "bp": 1250, "max_discount": 50_000},
    {"kind": "amount_discount", "amount": 30_000},
    {"kind": "threshold_discount", "steps": [{"min_amount": 300_000, "bp": 500}, {"min_amount": 500_000, "bp": 1000}]},
    {"kind": "ladder_discount", "steps_bp": [0, 1000, 2050]},
    {"kind": "nth_item_free", "n": 3},
    {"kind": "m_for_n", "m": 3, "n": 2},
    {"kind": "bogo", "buy": {"skus": ["A"]}, "get": {"categories": ["cups"]}, "buy_quantity": 2, "get_quantity": 1,
     "get_bp": 5000},
    {"kind": "set_price", "components": [{"lines": {"skus": ["B"]}, "quantity": 1}], "price": 29_900},
    {"kind": "redeem_share", "max_share_bp": 5000},
    {"kind": "no_redeem"},
    {"kind": "no_accrual"},
    {"kind": "accrual_cap", "per_receipt": 500},
    {"kind": "percent_points", "bp": 750, "max_points": 1000},
    {"kind": "points_per_item", "points": 10},
    {"kind": "points_per_amount", "points": 5, "per_amount": 10_000},
    {"kind": "multiplier", "factor_bp": 25_000},
    {"kind": "cheapest_item_bonus", "bp": 1000},
    {"kind": "fixed_points", "points": 300},
    {"kind": "issue_coupon", "series": "WELCOME"},
    {"kind": "event_bonus", "event": "birthday", "points": 500},
]


def test_every_mechanic_of_the_engine_has_a_form() -> None:
    tags = {msgspec.inspect.type_info(t).tag for t in typing.get_args(effects.Effect)}
    assert tags == set(MECHANICS)
    assert {s["kind"] for s in SAMPLES} <= tags


@pytest.mark.parametrize("effect", SAMPLES, ids=[s["kind"] for s in SAMPLES])
def test_what_the_form_shows_reads_back_as_the_same_effect(effect: dict) -> None:
    shown = effect_to_form(effect)
    back = effect_from_form(effect["kind"], shown)
    expected = msgspec.to_builtins(msgspec.convert(effect, effects.Effect))
    assert msgspec.to_builtins(msgspec.convert(back, effects.Effect)) == expected


def test_the_marketers_units_become_the_engines_numbers() -> None:
    assert effect_from_form("percent_points", {"bp": "7,5"}) == {"kind": "percent_points", "bp": 750}
    assert effect_from_form("amount_discount", {"amount": "1 500,50"}) == {"kind": "amount_discount", "amount": 150_050}
    assert effect_from_form("multiplier", {"factor_bp": "x2"}) == {"kind": "multiplier", "factor_bp": 20_000}
    assert effect_from_form("ladder_discount", {"steps_bp": "0/10/20"})["steps_bp"] == [0, 1000, 2000]
    assert effect_to_form({"kind": "multiplier", "factor_bp": 100_000}) == {"factor_bp": "10", "max_points": ""}


def test_a_form_the_engine_could_not_read_names_each_field() -> None:
    with pytest.raises(FormErrors) as bad:
        effect_from_form("points_per_amount", {"points": "five", "per_amount": "1.005"})
    assert set(bad.value.errors) == {"effect.points", "effect.per_amount"}
    with pytest.raises(FormErrors) as unknown:
        effect_from_form("free_money", {})
    assert "effect.kind" in unknown.value.errors
    with pytest.raises(FormErrors) as broken:
        rule_from_form({"code": ["a b"], "name": [""], "effect.kind": ["percent_points"], "effect.bp": [""],
                        "schedule.hours": ["evening"], "condition": ["{"]}, None)
    assert {"code", "name", "effect.bp", "schedule.hours", "condition"} <= set(broken.value.errors)


def test_a_category_bonus_with_hours_and_tiers_round_trips_and_keeps_what_the_form_does_not_show() -> None:
    stored = {"code": "dairy-gold", "name": "Dairy for Gold", "effect": {"kind": "percent_points", "bp": 1000},
              "lines": {"categories": ["dairy"], "where": {"op": "compare", "left": {"op": "var", "name": "line.price"},
                                                          "cmp": ">", "right": 100}},
              "target": {"tiers": ["gold"], "payment_types": ["sbp"]},
              "schedule": {"weekdays": [6, 7], "hours": [{"start": 9, "end": 12}]}}
    shown = rule_to_form(stored)
    form = {k: (v if isinstance(v, list) else (["on"] if v is True else ([] if v is False else [v])))
            for k, v in shown.items()}
    assert rule_from_form(form, stored) == {**stored, "priority": 0, "active": True}


def test_the_diff_reads_like_a_change_log() -> None:
    live = msgspec.to_builtins(basic_rules())
    draft = msgspec.json.decode(msgspec.json.encode(live))
    draft["settings"]["tiers"][0]["accrual_bp"] = 400
    draft["groups"] = [{"code": "happy", "name": "Happy hours", "stage": "accrual", "rules": [
        {"code": "hh", "name": "Happy hours x2", "effect": {"kind": "multiplier", "factor_bp": 20_000},
         "schedule": {"hours": [{"start": 18, "end": 21}]}}]}]
    changes = diff(live, draft)
    assert [(c.what, c.how, c.code) for c in changes] == [("settings", "changed", ""), ("group", "added", "happy"),
                                                          ("rule", "added", "hh")]
    assert [(f.path, f.before, f.after) for f in changes[0].fields] == [("tiers", live["settings"]["tiers"],
                                                                         draft["settings"]["tiers"])]
    rule_fields = {f.path: f.after for f in changes[2].fields}
    assert rule_fields["effect.factor_bp"] == 20_000 and rule_fields["schedule.hours"] == [{"start": 18, "end": 21}]
    assert diff(draft, live)[-1].how == "removed" and diff(live, live) == []


def test_the_programs_settings_form_reads_back_as_the_same_settings() -> None:
    from loyalty_core.engine import ProgramSettings
    from loyalty_core.rules_office.mechanics import settings_from_form, settings_to_form

    settings = msgspec.to_builtins(basic_rules(max_accrual_per_day=None, excluded_skus=["TOBACCO-1", "BEER-2"],
                                               anonymous_can_redeem=True).settings)
    shown = settings_to_form(settings)
    assert shown["max_redeem_share_bp"] == "30" and shown["point_value_minor"] == "1"
    assert shown["max_accrual_per_day"] == "" and shown["excluded_skus"] == "TOBACCO-1, BEER-2"
    back = settings_from_form(shown, settings)
    assert msgspec.to_builtins(msgspec.convert(back, ProgramSettings)) == settings
    changed = settings_from_form({**shown, "max_redeem_share_bp": "50", "anonymous_can_redeem": ""}, settings)
    assert changed["max_redeem_share_bp"] == 5000 and changed["anonymous_can_redeem"] is False
    with pytest.raises(FormErrors) as bad:
        settings_from_form({**shown, "expiry_days": "a year", "tiers": "[{"}, settings)
    assert set(bad.value.errors) == {"expiry_days", "tiers"}
