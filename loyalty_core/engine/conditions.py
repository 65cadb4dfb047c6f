"""The condition tree of a rule: and / or / not, comparisons and arithmetic over named facts.

A condition is data (a msgspec tagged union, tag field "op") and is compiled once per
program version into a plain Python closure over a facts dict, so the till's hot path never
walks the tree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal, Union

import msgspec


class Var(msgspec.Struct, tag="var", tag_field="op", frozen=True, kw_only=True):
    """A named fact: `basket.amount`, `member.purchases_count`, `member.counter.month`, ..."""

    name: str


class Arith(msgspec.Struct, tag="arith", tag_field="op", frozen=True, kw_only=True):
    fn: Literal["+", "-", "*", "//", "%", "min", "max"]
    left: Operand
    right: Operand


Operand = Union[int, str, Var, Arith]


class Compare(msgspec.Struct, tag="compare", tag_field="op", frozen=True, kw_only=True):
    left: Operand
    cmp: Literal["<", "<=", "==", "!=", ">=", ">"]
    right: Operand


class InList(msgspec.Struct, tag="in", tag_field="op", frozen=True, kw_only=True):
    value: Operand
    values: list[int | str]


class All(msgspec.Struct, tag="all", tag_field="op", frozen=True, kw_only=True):
    items: list[Condition]


class AnyOf(msgspec.Struct, tag="any", tag_field="op", frozen=True, kw_only=True):
    items: list[Condition]


class Not(msgspec.Struct, tag="not", tag_field="op", frozen=True, kw_only=True):
    item: Condition


Condition = Union[All, AnyOf, Not, Compare, InList]

Facts = dict[str, Any]
Predicate = Callable[[Facts], bool]
Getter = Callable[[Facts], Any]

# Facts a condition may read. Prefixed names (member.counter.x, member.attr.x, store.attr.x)
# are open-ended: the operator declares counters in the settings, attributes come from the CRM.
KNOWN_FACTS = frozenset(
    {
        "basket.amount",  # receipt amount of goods that take part in loyalty, before discounts
        "basket.to_pay",  # the same after the discounts applied so far
        "basket.lines",
        "basket.items",  # pieces; a weighed line counts as one item
        "basket.redeem_points",
        "basket.coupons",  # valid coupons presented
        "member.registered",  # 1 or 0; no card at all -> the fact is missing
        "member.tier",
        "member.purchases_count",  # confirmed purchases before this one
        "member.days_since_last_purchase",
        "member.days_since_joined",
        "member.days_to_birthday",  # 0 on the birthday, 1 the day before or after, ...
        "member.birth_date_known_days",  # days since the birth date was set or corrected
        "member.age",
        "member.balance",
        "member.accrued_today",
        "store.code",
        "store.region",
        "store.format",
        "channel",
        "time.hour",
        "time.minute",
        "time.weekday",  # 1 = Monday .. 7 = Sunday, store time zone
        "time.day",
        "time.month",
        "line.sku",
        "line.price",
        "line.quantity_milli",
        "line.amount",
        "line.brand",
        "event.days_inactive",  # event rules only
    }
)
OPEN_PREFIXES = ("member.counter.", "member.attr.", "store.attr.")

_CMP = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
}


def _arith(fn: str, left: Any, right: Any) -> Any:
    if left is None or right is None or not isinstance(left, int) or not isinstance(right, int):
        return None
    if fn == "+":
        return left + right
    if fn == "-":
        return left - right
    if fn == "*":
        return left * right
    if fn in ("//", "%"):
        if right == 0:
            return None
        return left // right if fn == "//" else left % right
    return min(left, right) if fn == "min" else max(left, right)


def compile_operand(node: Operand) -> Getter:
    if isinstance(node, Var):
        name = node.name
        return lambda facts: facts.get(name)
    if isinstance(node, Arith):
        left, right, fn = compile_operand(node.left), compile_operand(node.right), node.fn
        return lambda facts: _arith(fn, left(facts), right(facts))
    value = node
    return lambda facts: value


def compile_condition(node: Condition | None) -> Predicate | None:
    """A missing fact (no card, no birth date) makes a comparison false, never an error."""
    if node is None:
        return None
    if isinstance(node, All):
        parts = [compile_condition(item) for item in node.items]
        return lambda facts: all(part(facts) for part in parts)
    if isinstance(node, AnyOf):
        parts = [compile_condition(item) for item in node.items]
        return lambda facts: any(part(facts) for part in parts)
    if isinstance(node, Not):
        inner = compile_condition(node.item)
        return lambda facts: not inner(facts)
    if isinstance(node, InList):
        getter, values = compile_operand(node.value), frozenset(node.values)
        return lambda facts: getter(facts) in values
    left, right, cmp = compile_operand(node.left), compile_operand(node.right), _CMP[node.cmp]

    def compare(facts: Facts) -> bool:
        a, b = left(facts), right(facts)
        if a is None or b is None or type(a) is not type(b):
            return cmp is operator.ne and a != b
        return cmp(a, b)

    return compare


def condition_vars(node: Condition | Operand | None) -> list[str]:
    """Every fact name a condition reads, for validation."""
    if node is None or isinstance(node, (int, str)):
        return []
    if isinstance(node, Var):
        return [node.name]
    if isinstance(node, Arith):
        return condition_vars(node.left) + condition_vars(node.right)
    if isinstance(node, (All, AnyOf)):
        return [name for item in node.items for name in condition_vars(item)]
    if isinstance(node, Not):
        return condition_vars(node.item)
    if isinstance(node, InList):
        return condition_vars(node.value)
    return condition_vars(node.left) + condition_vars(node.right)


def is_known_fact(name: str, counters: frozenset[str]) -> bool:
    if name in KNOWN_FACTS:
        return True
    if name.startswith("member.counter."):
        return name.removeprefix("member.counter.") in counters
    return name.startswith(OPEN_PREFIXES)
