"""A program version compiled once for the hot path: rules pre-sorted by stage, gates as closures.

Callers cache the CompiledProgram per (program, version); pricing a basket then only runs
closures over a facts dict built once per basket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from loyalty_core.engine.conditions import Facts, compile_condition
from loyalty_core.engine.effects import Bogo, Effect, SetPrice, effect_kind
from loyalty_core.engine.language import Reason
from loyalty_core.engine.program import STAGE_ORDER, ProgramRules, ProgramSettings, Rule, RuleGroup, TierDef
from loyalty_core.engine.targeting import LineFilter, Schedule, Targeting

Gate = Callable[[Facts], "Reason | None"]  # None = passes, else the reason it does not (language.py)


class LineInfo(msgspec.Struct, kw_only=True):
    """A basket line as the engine looks at it (built once per basket)."""

    index: int
    line_no: int
    sku: str
    price: int
    amount: int
    quantity_milli: int
    units: int  # pieces; a weighed line is one item
    categories: frozenset[str]
    brand: str | None
    own_brand: bool
    excluded: bool


LineMatch = Callable[[LineInfo, Facts], bool]


class CompiledFilter(msgspec.Struct, frozen=True, kw_only=True):
    """A line filter ready to run. Equal filters in a program share one (same key), so a basket
    evaluates each distinct filter once; categories / skus narrow the lines through an index."""

    key: int
    match: LineMatch
    categories: frozenset[str]
    skus: frozenset[str]
    index_decides: bool = False  # only categories or only skus: the per-basket index alone picks the lines


class CompiledRule(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    priority: int
    effect: Effect
    kind: str
    gate: Gate
    lines: CompiledFilter | None  # None = every line that takes part in loyalty
    coupon_series: frozenset[str]
    coupon_codes: frozenset[str]
    sub_filters: dict[int, CompiledFilter]  # id(filter) -> compiled, for BOGO and set components


class CompiledGroup(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    stage: str
    mode: str
    cascade: bool
    gate: Gate
    rules: list[CompiledRule]


class CompiledProgram(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    settings: ProgramSettings
    tiers: dict[str, TierDef]
    default_tier: TierDef | None
    excluded_skus: frozenset[str]
    excluded_categories: frozenset[str]
    stages: dict[str, list[CompiledGroup]]
    source: ProgramRules


WEEKDAY, MONTH_DAY, HOURS = ("weekday",), ("month_day",), ("hours",)


def _schedule_gate(schedule: Schedule) -> Gate | None:
    valid_from, valid_to = schedule.valid_from, schedule.valid_to
    weekdays, month_days = frozenset(schedule.weekdays), frozenset(schedule.month_days)
    hours = [(h.start * 60, h.end * 60) for h in schedule.hours]

    def gate(facts: Facts) -> Reason | None:
        today = facts["time.date"]
        if valid_from is not None and today < valid_from:
            return ("starts_on", valid_from)
        if valid_to is not None and today > valid_to:
            return ("ended_on", valid_to)
        if weekdays and facts["time.weekday"] not in weekdays:
            return WEEKDAY
        if month_days and facts["time.day"] not in month_days:
            return MONTH_DAY
        if hours:
            minute = facts["time.hour"] * 60 + facts["time.minute"]
            if not any(start <= minute < end for start, end in hours):
                return HOURS
        return None

    return gate


def _set_gate(fact: str, allowed: list[str], reason: Reason) -> Gate | None:
    if not allowed:
        return None
    values = frozenset(allowed)
    return lambda facts: None if facts.get(fact) in values else reason


def _targeting_gates(target: Targeting) -> list[Gate]:
    gates: list[Gate | None] = []
    if target.members_only or target.registered_only or target.tiers or target.segments:
        registered = target.registered_only

        def member_gate(facts: Facts) -> Reason | None:
            if "member.registered" not in facts:
                return ("no_card",)
            if registered and not facts["member.registered"]:
                return ("card_not_registered",)
            return None

        gates.append(member_gate)
    gates.append(_set_gate("member.tier", target.tiers, ("tier",)))
    gates.append(_set_gate("store.code", target.stores, ("store",)))
    gates.append(_set_gate("store.region", target.regions, ("region",)))
    gates.append(_set_gate("store.format", target.formats, ("store_format",)))
    gates.append(_set_gate("channel", target.channels, ("channel",)))
    if target.segments:
        wanted = frozenset(target.segments)
        gates.append(lambda facts: None if wanted & facts["member.segments"] else ("segment",))
    if target.exclude_segments:
        banned = frozenset(target.exclude_segments)
        gates.append(
            lambda facts: (
                ("segment_excluded",) if banned & facts.get("member.segments", frozenset()) else None
            )
        )
    if target.store_attributes:
        wanted_attrs = dict(target.store_attributes)
        gates.append(
            lambda facts: (
                None
                if all(facts.get(f"store.attr.{k}") == v for k, v in wanted_attrs.items())
                else ("store_attributes",)
            )
        )
    if target.payment_types:
        paid_with = frozenset(target.payment_types)
        gates.append(lambda facts: None if paid_with & facts["basket.payment_types"] else ("payment",))
    if target.coupon_series or target.coupon_codes:
        series, codes = frozenset(target.coupon_series), frozenset(target.coupon_codes)
        gates.append(
            lambda facts: (
                None
                if series & facts["basket.coupon_series"] or codes & facts["basket.coupon_codes"]
                else ("no_coupon",)
            )
        )
    if target.birthday_window_days is not None:
        window, known_days = target.birthday_window_days, target.birth_date_known_days

        def birthday_gate(facts: Facts) -> Reason | None:
            days = facts.get("member.days_to_birthday")
            if days is None or days > window:
                return ("birthday",)
            # a date set (or changed) lately does not count: setting it to today must not earn x10
            known = facts.get("member.birth_date_known_days")
            needed = known_days if known_days is not None else facts.get("program.birth_date_known_days", 0)
            return ("birth_date_too_recent", needed) if known is not None and known < needed else None

        gates.append(birthday_gate)
    return [g for g in gates if g is not None]


def _gate(schedule: Schedule | None, target: Targeting | None, condition: Any) -> Gate:
    gates: list[Gate] = []
    if schedule is not None:
        schedule_gate = _schedule_gate(schedule)
        if schedule_gate is not None:
            gates.append(schedule_gate)
    if target is not None:
        gates.extend(_targeting_gates(target))
    predicate = compile_condition(condition)
    if predicate is not None:
        gates.append(lambda facts: None if predicate(facts) else ("condition",))
    if not gates:
        return lambda facts: None
    if len(gates) == 1:
        return gates[0]

    def all_gates(facts: Facts) -> Reason | None:
        for gate in gates:
            reason = gate(facts)
            if reason is not None:
                return reason
        return None

    return all_gates


def compile_line_filter(lines: LineFilter | None) -> LineMatch | None:
    if lines is None:
        return None
    skus, cats, brands = frozenset(lines.skus), frozenset(lines.categories), frozenset(lines.brands)
    no_skus, no_cats = frozenset(lines.exclude_skus), frozenset(lines.exclude_categories)
    own_brand, favourite, min_price = lines.own_brand, lines.favourite_categories, lines.min_price
    where = compile_condition(lines.where)

    def match(line: LineInfo, facts: Facts) -> bool:
        if skus and line.sku not in skus:
            return False
        if cats and cats.isdisjoint(line.categories):
            return False
        if brands and line.brand not in brands:
            return False
        if own_brand is not None and line.own_brand != own_brand:
            return False
        if favourite and facts["member.favourites"].isdisjoint(line.categories):
            return False
        if line.sku in no_skus or not no_cats.isdisjoint(line.categories):
            return False
        if min_price is not None and line.price < min_price:
            return False
        if where is not None:
            line_facts = dict(facts)
            line_facts.update(
                {
                    "line.sku": line.sku,
                    "line.price": line.price,
                    "line.quantity_milli": line.quantity_milli,
                    "line.amount": line.amount,
                    "line.brand": line.brand,
                }
            )
            return where(line_facts)
        return True

    return match


def _index_decides(lines: LineFilter) -> bool:
    only_index = bool(lines.categories) != bool(lines.skus)
    return only_index and lines == LineFilter(categories=lines.categories, skus=lines.skus)


def _sub_filters(effect: Effect) -> list[LineFilter]:
    if isinstance(effect, Bogo):
        return [effect.buy, effect.get]
    if isinstance(effect, SetPrice):
        return [component.lines for component in effect.components]
    return []


class _Filters:
    """Interns line filters while compiling: one CompiledFilter per distinct filter."""

    def __init__(self) -> None:
        self._known: dict[bytes, CompiledFilter] = {}

    def get(self, lines: LineFilter | None) -> CompiledFilter | None:
        if lines is None:
            return None
        key = msgspec.json.encode(lines)
        found = self._known.get(key)
        if found is None:
            found = CompiledFilter(
                key=len(self._known),
                match=compile_line_filter(lines),
                categories=frozenset(lines.categories),
                skus=frozenset(lines.skus),
                index_decides=_index_decides(lines),
            )
            self._known[key] = found
        return found


def _compile_rule(rule: Rule, filters: _Filters) -> CompiledRule:
    target = rule.target
    sub_filters = {id(f): filters.get(f) for f in _sub_filters(rule.effect)}
    return CompiledRule(
        code=rule.code,
        name=rule.name,
        priority=rule.priority,
        effect=rule.effect,
        kind=effect_kind(rule.effect),
        gate=_gate(rule.schedule, target, rule.condition),
        lines=filters.get(rule.lines),
        coupon_series=frozenset(target.coupon_series) if target else frozenset(),
        coupon_codes=frozenset(target.coupon_codes) if target else frozenset(),
        sub_filters=sub_filters,
    )


def _compile_group(group: RuleGroup, filters: _Filters) -> CompiledGroup:
    # Higher priority first; document order breaks ties (sorted() is stable).
    rules = sorted((r for r in group.rules if r.active), key=lambda r: -r.priority)
    return CompiledGroup(
        code=group.code,
        name=group.name,
        stage=group.stage,
        mode=group.mode,
        cascade=group.cascade,
        gate=_gate(None, group.target, group.condition),
        rules=[_compile_rule(r, filters) for r in rules],
    )


def compile_program(rules: ProgramRules) -> CompiledProgram:
    """Once per program version; the result is immutable and safe to share between requests."""
    settings = rules.settings
    tiers = {t.code: t for t in settings.tiers}
    default = tiers.get(settings.default_tier or "") or min(
        settings.tiers, key=lambda t: t.rank, default=None
    )
    stages: dict[str, list[CompiledGroup]] = {stage: [] for stage in STAGE_ORDER}
    filters = _Filters()
    for group in sorted((g for g in rules.groups if g.active), key=lambda g: -g.priority):
        stages[group.stage].append(_compile_group(group, filters))
    return CompiledProgram(
        version=rules.version,
        settings=settings,
        tiers=tiers,
        default_tier=default,
        excluded_skus=frozenset(settings.excluded_skus),
        excluded_categories=frozenset(settings.excluded_categories),
        stages=stages,
        source=rules,
    )
