"""The segment condition language (pure): JSON the marketer writes -> checked Structs, with readable errors.

    {"all": [{"fact": "tier", "in": ["gold"]},
             {"fact": "days_since_last_purchase", "gte": 60},
             {"not": {"fact": "consent", "channel": "sms", "eq": false}}]}

A node is `{"all": [...]}`, `{"any": [...]}`, `{"not": node}` or a test `{"fact": <name>, <op>: <value>, ...params}`
with exactly one operator: eq ne in not_in gt gte lt lte between is_null (which ones a fact takes: FACTS).
The facts and how they are computed: docs/marketing.md; their SQL: loyalty_core/marketing/queries.py.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

from loyalty_core.marketing.errors import SegmentConditionInvalid

Kind = Literal["int", "str", "bool"]
INT_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "is_null")
STR_OPS = ("eq", "ne", "in", "not_in", "is_null")
BOOL_OPS = ("eq",)
MAX_DEPTH = 8
MAX_TESTS = 50


class FactSpec(msgspec.Struct, frozen=True):
    kind: Kind
    about: str
    params: tuple[str, ...] = ()  # required parameters (category, key, channel)
    optional: tuple[str, ...] = ()  # optional parameters (days)
    values: tuple[Any, ...] = ()  # when not empty: the only values allowed
    nullable: bool = False


FACTS: dict[str, FactSpec] = {
    "tier": FactSpec("str", "the member's tier code", nullable=True),
    "status": FactSpec("str", "membership status", values=("anonymous", "pending", "active", "closed")),
    "rfm_recency": FactSpec("int", "recency quintile in the program, 5 = bought most recently", values=(1, 2, 3, 4, 5),
                            nullable=True),
    "rfm_frequency": FactSpec("int", "frequency quintile (purchases), 5 = most purchases", values=(1, 2, 3, 4, 5),
                              nullable=True),
    "rfm_monetary": FactSpec("int", "monetary quintile (spend over 12 months), 5 = spent most",
                             values=(1, 2, 3, 4, 5), nullable=True),
    "days_since_last_purchase": FactSpec("int", "whole days since the last purchase", nullable=True),
    "days_since_joined": FactSpec("int", "whole days since joining the program"),
    "purchases_count": FactSpec("int", "purchases ever"),
    "spend_12m": FactSpec("int", "points-earning spend over 12 months, minor units"),
    "birthday_month": FactSpec("int", "month of birth 1..12", values=tuple(range(1, 13)), nullable=True),
    "home_store": FactSpec("str", "store code of most purchases over 12 months", nullable=True),
    "home_region": FactSpec("str", "region (city) of the home store", nullable=True),
    "channel": FactSpec("str", "where the member registered (app, web, till, call_center, import, ...)"),
    "consent": FactSpec("bool", "the member's latest consent for a channel", params=("channel",)),
    "attribute": FactSpec("str", "a custom attribute's value", params=("key",), nullable=True),
    "favourite_category": FactSpec("str", "a category the member chose as a favourite (active choice)"),
    "category_abc": FactSpec("str", "ABC class of a top-level category by the member's spend over 12 months "
                             "(A: the categories making the first 80 %, B: the next 15 %, C: the rest)",
                             params=("category",), values=("A", "B", "C"), nullable=True),
    "category_spend": FactSpec("int", "spend on a category (and its subcategories), minor units",
                               params=("category",), optional=("days",)),
}
CHANNELS = ("sms", "email", "push")
_OPS_BY_KIND: dict[str, tuple[str, ...]] = {"int": INT_OPS, "str": STR_OPS, "bool": BOOL_OPS}


class Comparison(msgspec.Struct, frozen=True, tag="test"):
    fact: str
    op: str
    value: Any
    category: str | None = None
    days: int | None = None
    key: str | None = None
    channel: str | None = None


class All(msgspec.Struct, frozen=True, tag="all"):
    items: list[Node]


class AnyOf(msgspec.Struct, frozen=True, tag="any"):
    items: list[Node]


class Not(msgspec.Struct, frozen=True, tag="not"):
    item: Node


Node = Union[All, AnyOf, Not, Comparison]


def parse_condition(raw: Any) -> Node:
    """JSON (str/bytes) or plain data -> a checked condition; SegmentConditionInvalid lists every problem."""
    if isinstance(raw, str | bytes):
        try:
            raw = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            raise SegmentConditionInvalid(["condition: not valid JSON: " + str(e)]) from None
    errors: list[str] = []
    counter = [0]
    node = _node(raw, "condition", 0, errors, counter)
    if errors or node is None:
        raise SegmentConditionInvalid(errors or ["condition: empty"])
    return node


def _node(raw: Any, path: str, depth: int, errors: list[str], counter: list[int]) -> Node | None:
    if depth > MAX_DEPTH:
        errors.append(f"{path}: nested deeper than {MAX_DEPTH} levels")
        return None
    if not isinstance(raw, dict):
        errors.append(f"{path}: expected an object like {{\"fact\": ...}}, {{\"all\": [...]}}, {{\"any\": [...]}} "
                      f"or {{\"not\": ...}}, got {type(raw).__name__}")
        return None
    groups = [k for k in ("all", "any", "not") if k in raw]
    if groups and (len(raw) != 1):
        errors.append(f"{path}: '{groups[0]}' must be the only key of its object, found {sorted(raw)}")
        return None
    if groups == ["not"]:
        item = _node(raw["not"], f"{path}.not", depth + 1, errors, counter)
        return Not(item) if item is not None else None
    if groups:
        word = groups[0]
        items = raw[word]
        if not isinstance(items, list) or not items:
            errors.append(f"{path}.{word}: expected a non-empty list of conditions")
            return None
        parsed = [_node(item, f"{path}.{word}[{i}]", depth + 1, errors, counter) for i, item in enumerate(items)]
        if any(p is None for p in parsed):
            return None
        return All(parsed) if word == "all" else AnyOf(parsed)  # type: ignore[arg-type]
    if "fact" not in raw:
        errors.append(f"{path}: expected 'fact', 'all', 'any' or 'not', found {sorted(raw)}")
        return None
    counter[0] += 1
    if counter[0] == MAX_TESTS + 1:
        errors.append(f"{path}: more than {MAX_TESTS} tests in one condition")
    return _test(raw, path, errors)


def _test(raw: dict[str, Any], path: str, errors: list[str]) -> Comparison | None:
    name = raw["fact"]
    spec = FACTS.get(name) if isinstance(name, str) else None
    if spec is None:
        errors.append(f"{path}.fact: unknown fact {name!r}; known facts: {', '.join(sorted(FACTS))}")
        return None
    allowed_ops = _OPS_BY_KIND[spec.kind]
    ops = [k for k in raw if k in INT_OPS]
    extra = sorted(set(raw) - {"fact", *INT_OPS, *spec.params, *spec.optional})
    if extra:
        known = ", ".join((*spec.params, *spec.optional)) or "none"
        errors.append(f"{path}: fact '{name}' does not take {extra} (its parameters: {known})")
    if len(ops) != 1:
        errors.append(f"{path}: fact '{name}' needs exactly one operator of {', '.join(allowed_ops)}, found {ops or 'none'}")
        return None
    op = ops[0]
    if op not in allowed_ops:
        errors.append(f"{path}.{op}: fact '{name}' ({spec.kind}) takes {', '.join(allowed_ops)}, not '{op}'")
        return None
    params: dict[str, Any] = {}
    for param in spec.params:
        if param not in raw:
            errors.append(f"{path}: fact '{name}' needs '{param}'")
            continue
        params[param] = raw[param]
    for param in spec.optional:
        if param in raw:
            params[param] = raw[param]
    _check_params(name, params, path, errors)
    value = _value(name, spec, op, raw[op], f"{path}.{op}", errors)
    if op == "is_null" and not spec.nullable:
        errors.append(f"{path}.is_null: fact '{name}' always has a value")
    return Comparison(fact=name, op=op, value=value, **params)


def _check_params(name: str, params: dict[str, Any], path: str, errors: list[str]) -> None:
    for word in ("category", "key"):
        if word in params and (not isinstance(params[word], str) or not 0 < len(params[word]) <= 64):
            errors.append(f"{path}.{word}: expected a code of 1..64 characters")
    if "channel" in params and params["channel"] not in CHANNELS:
        errors.append(f"{path}.channel: expected one of {', '.join(CHANNELS)}, got {params['channel']!r}")
    if "days" in params and (type(params["days"]) is not int or not 1 <= params["days"] <= 3660):
        errors.append(f"{path}.days: expected whole days 1..3660, got {params['days']!r}")


def _value(name: str, spec: FactSpec, op: str, raw: Any, path: str, errors: list[str]) -> Any:
    if op == "is_null":
        if type(raw) is not bool:
            errors.append(f"{path}: expected true or false")
        return raw
    if op in ("in", "not_in"):
        if not isinstance(raw, list) or not raw or len(raw) > 1000:
            errors.append(f"{path}: expected a list of 1..1000 values")
            return []
        return [_scalar(name, spec, v, f"{path}[{i}]", errors) for i, v in enumerate(raw)]
    if op == "between":
        if not isinstance(raw, list) or len(raw) != 2:
            errors.append(f"{path}: expected [low, high]")
            return [0, 0]
        low, high = (_scalar(name, spec, v, f"{path}[{i}]", errors) for i, v in enumerate(raw))
        if isinstance(low, int) and isinstance(high, int) and low > high:
            errors.append(f"{path}: low {low} is above high {high}")
        return [low, high]
    return _scalar(name, spec, raw, path, errors)


def _scalar(name: str, spec: FactSpec, raw: Any, path: str, errors: list[str]) -> Any:
    if spec.kind == "int" and (type(raw) is not int or abs(raw) > 10**15):
        errors.append(f"{path}: fact '{name}' compares whole numbers, got {raw!r}")
    elif spec.kind == "str" and (not isinstance(raw, str) or len(raw) > 200):
        errors.append(f"{path}: fact '{name}' compares text (up to 200 characters), got {raw!r}")
    elif spec.kind == "bool" and type(raw) is not bool:
        errors.append(f"{path}: fact '{name}' is true or false, got {raw!r}")
    elif spec.values and raw not in spec.values:
        errors.append(f"{path}: fact '{name}' is one of {', '.join(map(str, spec.values))}, got {raw!r}")
    return raw


def facts_used(node: Node) -> set[str]:
    """The facts a condition reads: the recompute joins only what they need."""
    if isinstance(node, Comparison):
        return {node.fact}
    if isinstance(node, Not):
        return facts_used(node.item)
    return set().union(*(facts_used(item) for item in node.items))
