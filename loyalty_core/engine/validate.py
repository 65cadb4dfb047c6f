"""validate_program: a rules document is checked on save, every message names rule and field.

"rule 'happy-hours': schedule.hours: end 25 is outside 0..24" - so an operator can fix the
document without reading code. All problems are reported at once, not the first one.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from loyalty_core.engine.conditions import condition_vars, is_known_fact
from loyalty_core.engine.effects import (
    STAGE_EFFECTS,
    AccrualCap,
    Bogo,
    Effect,
    EventBonus,
    IssueCoupon,
    LadderDiscount,
    MForN,
    Multiplier,
    NthItemFree,
    PointsPerAmount,
    RedeemShare,
    SetPrice,
    ThresholdDiscount,
    effect_kind,
)
from loyalty_core.engine.errors import RuleValidationError
from loyalty_core.engine.program import ProgramRules, ProgramSettings, Rule, RuleGroup
from loyalty_core.engine.targeting import LineFilter, Schedule, Targeting

_PATH = re.compile(r"\$\.groups\[(\d+)\](?:\.rules\[(\d+)\])?\.?(.*)")


def _decode(doc: Any) -> ProgramRules:
    if isinstance(doc, ProgramRules):
        return msgspec.convert(msgspec.to_builtins(doc), ProgramRules)  # re-check a built struct
    raw = msgspec.json.decode(doc) if isinstance(doc, (bytes, str)) else doc
    try:
        return msgspec.convert(raw, ProgramRules)
    except msgspec.ValidationError as error:
        raise RuleValidationError([_locate(str(error), raw)]) from None


def _locate(message: str, raw: Any) -> str:
    """Turn msgspec's `... - at $.groups[0].rules[1].effect.bp` into "rule 'x': effect.bp: ..."."""
    text, _, path = message.rpartition(" - at ")
    path = path.strip("`")
    found = _PATH.match(path) if text else None
    if not found:
        return message
    group_no, rule_no, field = found.groups()
    try:
        group = raw["groups"][int(group_no)]
        if rule_no is None:
            return f"group '{group.get('code', group_no)}': {field}: {text}"
        rule = group["rules"][int(rule_no)]
        return f"rule '{rule.get('code', rule_no)}': {field}: {text}"
    except (KeyError, IndexError, TypeError, AttributeError):
        return message


def _bp(errors: list[str], where: str, field: str, value: int, top: int = 10_000) -> None:
    if not 0 <= value <= top:
        errors.append(f"{where}: {field}: {value} is outside 0..{top}")


def _settings(s: ProgramSettings, errors: list[str]) -> None:
    where = "settings"
    if s.point_value_minor <= 0:
        errors.append(f"{where}: point_value_minor: must be positive")
    _bp(errors, where, "max_redeem_share_bp", s.max_redeem_share_bp)
    codes = [t.code for t in s.tiers]
    for code in {c for c in codes if codes.count(c) > 1}:
        errors.append(f"{where}: tiers: code '{code}' is used twice")
    for tier in s.tiers:
        _bp(errors, f"tier '{tier.code}'", "accrual_bp", tier.accrual_bp)
    if s.default_tier is not None and s.default_tier not in codes:
        errors.append(f"{where}: default_tier: no tier '{s.default_tier}'")
    for field in ("pending_days", "expiry_days", "max_accrual_per_receipt", "max_accrual_per_day",
                  "sale_max_age_days", "offline_sale_max_age_days"):
        value = getattr(s, field)
        if value is not None and value < 0:
            errors.append(f"{where}: {field}: must not be negative")
    for field in ("reactivation_after_days", "tier_at_risk_days", "expiry_notice_days"):
        if not 1 <= getattr(s, field) <= 3660:
            errors.append(f"{where}: {field}: must be between 1 and 3660")
    if s.language not in ("ru", "en"):
        errors.append(f"{where}: language: '{s.language}' is not spoken (ru, en)")
    if not 1 <= s.favourite_categories_count <= 50:
        errors.append(f"{where}: favourite_categories_count: must be between 1 and 50")
    if not 0 <= s.birth_date_known_days <= 3660:
        errors.append(f"{where}: birth_date_known_days: must be between 0 and 3660")


def _schedule(s: Schedule, where: str, errors: list[str]) -> None:
    for hours in s.hours:
        for name, value in (("start", hours.start), ("end", hours.end)):
            if not 0 <= value <= 24:
                errors.append(f"{where}: schedule.hours: {name} {value} is outside 0..24")
        if hours.start >= hours.end:
            errors.append(f"{where}: schedule.hours: start {hours.start} is not before end {hours.end}")
    for day in s.weekdays:
        if not 1 <= day <= 7:
            errors.append(f"{where}: schedule.weekdays: {day} is outside 1..7 (1 = Monday)")
    for day in s.month_days:
        if not 1 <= day <= 31:
            errors.append(f"{where}: schedule.month_days: {day} is outside 1..31")
    if s.valid_from and s.valid_to and s.valid_from > s.valid_to:
        errors.append(f"{where}: schedule: valid_from is after valid_to")


def _facts(node: Any, where: str, field: str, counters: frozenset[str], errors: list[str]) -> None:
    for name in condition_vars(node):
        if not is_known_fact(name, counters):
            errors.append(f"{where}: {field}: unknown fact '{name}'")


def _target(t: Targeting, where: str, tiers: set[str], errors: list[str]) -> None:
    for tier in t.tiers:
        if tier not in tiers:
            errors.append(f"{where}: target.tiers: no tier '{tier}'")
    if t.birthday_window_days is not None and not 0 <= t.birthday_window_days <= 31:
        errors.append(f"{where}: target.birthday_window_days: {t.birthday_window_days} is outside 0..31")
    if t.birth_date_known_days is not None and not 0 <= t.birth_date_known_days <= 3660:
        errors.append(f"{where}: target.birth_date_known_days: {t.birth_date_known_days} is outside 0..3660")


def _lines(f: LineFilter | None, where: str, field: str, counters: frozenset[str], errors: list[str]) -> None:
    if f is not None:
        _facts(f.where, where, f"{field}.where", counters, errors)


def _effect(e: Effect, where: str, counters: frozenset[str], errors: list[str]) -> None:
    for field in ("bp", "get_bp"):
        if hasattr(e, field):
            _bp(errors, where, f"effect.{field}", getattr(e, field))
    for field in ("points", "referrer_points", "amount", "price", "max_points", "max_discount"):
        value = getattr(e, field, None)
        if value is not None and value < 0:
            errors.append(f"{where}: effect.{field}: must not be negative")
    if isinstance(e, RedeemShare):
        _bp(errors, where, "effect.max_share_bp", e.max_share_bp)
    elif isinstance(e, ThresholdDiscount):
        if not e.steps:
            errors.append(f"{where}: effect.steps: at least one step is needed")
        for step in e.steps:
            _bp(errors, where, "effect.steps.bp", step.bp)
    elif isinstance(e, LadderDiscount):
        if not e.steps_bp:
            errors.append(f"{where}: effect.steps_bp: at least one step is needed")
        for bp in e.steps_bp:
            _bp(errors, where, "effect.steps_bp", bp)
    elif isinstance(e, NthItemFree) and e.n < 2:
        errors.append(f"{where}: effect.n: must be 2 or more")
    elif isinstance(e, MForN) and not 1 <= e.n < e.m:
        errors.append(f"{where}: effect: m={e.m}, n={e.n}: need 1 <= n < m")
    elif isinstance(e, PointsPerAmount) and e.per_amount <= 0:
        errors.append(f"{where}: effect.per_amount: must be positive")
    elif isinstance(e, Multiplier) and e.factor_bp < 10_000:
        errors.append(f"{where}: effect.factor_bp: {e.factor_bp} is below 10000 (x1)")
    elif isinstance(e, Bogo):
        if e.buy_quantity < 1 or e.get_quantity < 1:
            errors.append(f"{where}: effect: buy_quantity and get_quantity must be 1 or more")
        _lines(e.buy, where, "effect.buy", counters, errors)
        _lines(e.get, where, "effect.get", counters, errors)
    elif isinstance(e, SetPrice):
        if not e.components:
            errors.append(f"{where}: effect.components: at least one component is needed")
        for component in e.components:
            if component.quantity < 1:
                errors.append(f"{where}: effect.components.quantity: must be 1 or more")
            _lines(component.lines, where, "effect.components.lines", counters, errors)
    elif isinstance(e, AccrualCap) and e.per_receipt is None and e.per_day is None:
        errors.append(f"{where}: effect: accrual_cap needs per_receipt or per_day")
    elif isinstance(e, EventBonus):
        _event_bonus(e, where, errors)


def _event_bonus(e: EventBonus, where: str, errors: list[str]) -> None:
    """An event rule must be able to fire: its kind has a trigger, and a referrer is paid on the friend's first
    purchase only (on any other event nothing would pay them, or fake sign-ups would)."""
    from loyalty_core.engine.events import TRIGGERS

    if e.event not in TRIGGERS:
        errors.append(f"{where}: effect.event: nothing triggers the event '{e.event}' "
                      f"(triggered events: {', '.join(sorted(TRIGGERS))})")
    if e.referrer_points and e.event != "first_purchase":
        errors.append(f"{where}: effect.referrer_points: a referrer is rewarded on the friend's first purchase only: "
                      f"move them to a rule for the event 'first_purchase', not '{e.event}'")
    if e.valid_days is not None and not 1 <= e.valid_days <= 3660:
        errors.append(f"{where}: effect.valid_days: {e.valid_days} is outside 1..3660")


def _rule(rule: Rule, group: RuleGroup, tiers: set[str], counters: frozenset[str], errors: list[str]) -> None:
    where = f"rule '{rule.code}'"
    allowed = STAGE_EFFECTS[group.stage] + ((IssueCoupon,) if group.stage != "event" else ())
    if not isinstance(rule.effect, allowed):
        errors.append(
            f"{where}: effect.kind: '{effect_kind(rule.effect)}' does not belong in a {group.stage} group"
        )
    if rule.schedule is not None:
        _schedule(rule.schedule, where, errors)
    if rule.target is not None:
        _target(rule.target, where, tiers, errors)
    _facts(rule.condition, where, "condition", counters, errors)
    _lines(rule.lines, where, "lines", counters, errors)
    _effect(rule.effect, where, counters, errors)


def validate_program(doc: Any) -> ProgramRules:
    """JSON (str/bytes), builtins (dict) or a ProgramRules -> a checked ProgramRules.

    Raises RuleValidationError listing every problem found.
    """
    rules = _decode(doc)
    errors: list[str] = []
    _settings(rules.settings, errors)
    tiers = {t.code for t in rules.settings.tiers}
    counters = frozenset(c.name for c in rules.settings.counters)
    seen_groups: set[str] = set()
    seen_rules: set[str] = set()
    for group in rules.groups:
        if group.code in seen_groups:
            errors.append(f"group '{group.code}': code: used twice")
        seen_groups.add(group.code)
        if group.cascade and group.stage != "discount":
            errors.append(f"group '{group.code}': cascade: only discount groups cascade")
        if group.target is not None:
            _target(group.target, f"group '{group.code}'", tiers, errors)
        _facts(group.condition, f"group '{group.code}'", "condition", counters, errors)
        for rule in group.rules:
            if rule.code in seen_rules:
                errors.append(f"rule '{rule.code}': code: used twice")
            seen_rules.add(rule.code)
            _rule(rule, group, tiers, counters, errors)
    if errors:
        raise RuleValidationError(errors)
    return rules
