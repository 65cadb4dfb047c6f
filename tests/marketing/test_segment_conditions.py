"""The segment condition language: what a marketer may write, and the errors they read when it is wrong."""

from __future__ import annotations

import pytest

from loyalty_core.marketing.conditions import All, AnyOf, Not, Comparison, facts_used, parse_condition
from loyalty_core.marketing.errors import SegmentConditionInvalid

LAPSING_GOLD = {"all": [{"fact": "tier", "in": ["gold"]}, {"fact": "days_since_last_purchase", "gte": 60},
                        {"not": {"fact": "consent", "channel": "sms", "eq": False}}]}


def errors_of(raw: object) -> list[str]:
    with pytest.raises(SegmentConditionInvalid) as caught:
        parse_condition(raw)
    return caught.value.extra["errors"]


def test_lapsing_gold_reads_as_written() -> None:
    node = parse_condition(LAPSING_GOLD)
    assert isinstance(node, All)
    assert node.items[0] == Comparison(fact="tier", op="in", value=["gold"])
    assert isinstance(node.items[2], Not) and node.items[2].item == Comparison(fact="consent", op="eq", value=False,
                                                                          channel="sms")
    assert facts_used(node) == {"tier", "days_since_last_purchase", "consent"}


def test_every_fact_has_a_valid_form() -> None:
    node = parse_condition({"any": [
        {"fact": "rfm_recency", "gte": 4}, {"fact": "rfm_frequency", "eq": 5}, {"fact": "rfm_monetary", "in": [4, 5]},
        {"fact": "birthday_month", "eq": 12}, {"fact": "home_store", "eq": "MSK-1"},
        {"fact": "home_region", "in": ["Moscow"]}, {"fact": "channel", "ne": "till"},
        {"fact": "attribute", "key": "pet", "eq": "dog"}, {"fact": "favourite_category", "in": ["dairy"]},
        {"fact": "category_abc", "category": "dairy", "eq": "A"},
        {"fact": "category_spend", "category": "dairy", "days": 90, "gte": 100_000},
        {"fact": "days_since_joined", "between": [0, 30]}, {"fact": "purchases_count", "lt": 2},
        {"fact": "spend_12m", "gt": 0}, {"fact": "status", "eq": "active"}, {"fact": "tier", "is_null": True},
    ]})
    assert isinstance(node, AnyOf) and len(node.items) == 16


@pytest.mark.parametrize(("raw", "expected"), [
    ({"fact": "tierr", "eq": "gold"}, "condition.fact: unknown fact 'tierr'"),
    ({"fact": "tier", "gte": "gold"}, "condition.gte: fact 'tier' (str) takes eq, ne, in, not_in, is_null, not 'gte'"),
    ({"fact": "tier"}, "condition: fact 'tier' needs exactly one operator"),
    ({"fact": "tier", "eq": "gold", "ne": "basic"}, "needs exactly one operator"),
    ({"fact": "rfm_recency", "eq": 6}, "condition.eq: fact 'rfm_recency' is one of 1, 2, 3, 4, 5, got 6"),
    ({"fact": "days_since_last_purchase", "gte": "60"}, "compares whole numbers, got '60'"),
    ({"fact": "consent", "eq": True}, "condition: fact 'consent' needs 'channel'"),
    ({"fact": "consent", "channel": "fax", "eq": True}, "condition.channel: expected one of sms, email, push"),
    ({"fact": "tier", "eq": "gold", "category": "x"}, "fact 'tier' does not take ['category']"),
    ({"all": []}, "condition.all: expected a non-empty list"),
    ({"all": [{"fact": "tier", "eq": "gold"}], "any": []}, "must be the only key"),
    ({"all": [{"fact": "tier", "eq": "gold"}, 5]}, "condition.all[1]: expected an object"),
    ({"fact": "days_since_joined", "between": [30, 0]}, "low 30 is above high 0"),
    ({"fact": "purchases_count", "is_null": True}, "fact 'purchases_count' always has a value"),
    ("{not json", "condition: not valid JSON"),
    ([1, 2], "condition: expected an object"),
])
def test_mistakes_are_named_with_their_place(raw: object, expected: str) -> None:
    assert any(expected in e for e in errors_of(raw)), errors_of(raw)


def test_every_mistake_is_listed_at_once() -> None:
    errors = errors_of({"all": [{"fact": "nope", "eq": 1}, {"fact": "tier", "gt": 1}, {"any": "x"}]})
    assert [e.split(":")[0] for e in errors] == ["condition.all[0].fact", "condition.all[1].gt", "condition.all[2].any"]


def test_a_condition_too_deep_or_too_long_is_refused() -> None:
    deep: dict = {"fact": "tier", "eq": "gold"}
    for _ in range(10):
        deep = {"not": deep}
    assert any("nested deeper" in e for e in errors_of(deep))
    wide = {"any": [{"fact": "tier", "eq": f"t{i}"} for i in range(51)]}
    assert any("more than 50 tests" in e for e in errors_of(wide))
