"""One rule as the editor's form: the text of each input <-> the rule's JSON in the rules document. Pure.

The form covers what a marketer sets every day (names, priority, dates, weekdays, hours, tiers, segments, stores,
goods by category / SKU / brand, the mechanic and its numbers); a rule's other parts (a condition tree, more
targeting) stay as they were, and the condition can be edited as JSON. The engine's validator has the last word.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from loyalty_core.rules_office.mechanics import Field, FormErrors, effect_from_form, effect_to_form, parse_value, show_value

Form = dict[str, list[str]]  # a posted form: name -> values
_LISTS = {"target.segments": ("target", "segments"), "target.stores": ("target", "stores"),
          "target.channels": ("target", "channels"), "lines.categories": ("lines", "categories"),
          "lines.skus": ("lines", "skus"), "lines.brands": ("lines", "brands"),
          "lines.exclude_categories": ("lines", "exclude_categories"), "lines.exclude_skus": ("lines", "exclude_skus")}
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_MONEY = Field(name="min_price", unit="money", required=False)


def _one(form: Form, name: str) -> str:
    values = form.get(name) or [""]
    return values[-1].strip()


def _words(text: str) -> list[str]:
    return [w.strip() for w in re.split(r"[,;\s]+", text) if w.strip()]


def _part(rule: dict[str, Any], key: str) -> dict[str, Any]:
    value = rule.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _set(part: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value is False or (isinstance(value, str | list | dict) and not value):
        part.pop(key, None)
    else:
        part[key] = value


def rule_from_form(form: Form, existing: dict[str, Any] | None) -> dict[str, Any]:
    """The rule's JSON: `existing` with the form's fields put in; FormErrors names each field it cannot read."""
    rule = dict(existing or {})
    errors: dict[str, str] = {}
    code = _one(form, "code")
    if not _CODE.match(code):
        errors["code"] = "letters, digits, - _ . (up to 64)"
    rule["code"] = code
    rule["name"] = _one(form, "name")
    if not rule["name"]:
        errors["name"] = "required"
    for key in ("names", "descriptions"):
        texts = {lang: _one(form, f"{key}.{lang}") for lang in ("ru", "en")}
        _set(rule, key, {lang: text for lang, text in texts.items() if text})
    try:
        rule["priority"] = int(_one(form, "priority") or 0)
    except ValueError:
        errors["priority"] = "a whole number"
    rule["active"] = _one(form, "active") == "on"

    schedule = _part(rule, "schedule")
    for key in ("valid_from", "valid_to"):
        text = _one(form, f"schedule.{key}")
        try:
            _set(schedule, key, dt.date.fromisoformat(text).isoformat() if text else None)
        except ValueError:
            errors[f"schedule.{key}"] = "a date, YYYY-MM-DD"
    try:
        _set(schedule, "weekdays", sorted({int(d) for d in form.get("schedule.weekdays", []) if d}))
    except ValueError:
        errors["schedule.weekdays"] = "days 1..7"
    hours = []
    for part in re.split(r"[;,]", _one(form, "schedule.hours")):
        if part.strip():
            found = re.fullmatch(r"\s*(\d{1,2})\s*[-–]\s*(\d{1,2})\s*", part)
            if not found:
                errors["schedule.hours"] = "hours as 18-21; 9-11"
                break
            hours.append({"start": int(found.group(1)), "end": int(found.group(2))})
    _set(schedule, "hours", hours)
    _set(rule, "schedule", schedule or None)

    target = _part(rule, "target")
    lines = _part(rule, "lines")
    parts = {"target": target, "lines": lines}
    _set(target, "tiers", sorted({t for t in form.get("target.tiers", []) if t}))
    for name, (where, key) in _LISTS.items():
        _set(parts[where], key, _words(_one(form, name)))
    window = _one(form, "target.birthday_window_days")
    try:
        _set(target, "birthday_window_days", int(window) if window else None)
    except ValueError:
        errors["target.birthday_window_days"] = "a whole number of days"
    _set(target, "registered_only", _one(form, "target.registered_only") == "on")
    own = _one(form, "lines.own_brand")
    _set(lines, "own_brand", {"yes": True, "no": False}.get(own))
    if own == "no":
        lines["own_brand"] = False
    try:
        _set(lines, "min_price", parse_value(_MONEY, _one(form, "lines.min_price")))
    except ValueError as exc:
        errors["lines.min_price"] = str(exc)
    _set(rule, "target", target or None)
    _set(rule, "lines", lines or None)

    condition = _one(form, "condition")
    try:
        _set(rule, "condition", json.loads(condition) if condition else None)
    except json.JSONDecodeError as exc:
        errors["condition"] = f"not valid JSON: {exc.msg}"

    kind = _one(form, "effect.kind")
    try:
        rule["effect"] = effect_from_form(kind, {k.removeprefix("effect."): _one(form, k) for k in form
                                                if k.startswith("effect.")})
    except FormErrors as exc:
        errors.update(exc.errors)
    if errors:
        raise FormErrors(errors)
    return rule


def rule_to_form(rule: dict[str, Any]) -> dict[str, Any]:
    """What each input shows for a stored rule (lists of choices as lists)."""
    schedule, target, lines = _part(rule, "schedule"), _part(rule, "target"), _part(rule, "lines")
    parts = {"target": target, "lines": lines}
    own = lines.get("own_brand")
    values: dict[str, Any] = {
        "code": rule.get("code", ""), "name": rule.get("name", ""), "priority": str(rule.get("priority", 0)),
        "active": rule.get("active", True),
        "schedule.valid_from": schedule.get("valid_from") or "", "schedule.valid_to": schedule.get("valid_to") or "",
        "schedule.weekdays": [str(d) for d in schedule.get("weekdays", [])],
        "schedule.hours": "; ".join(f"{h['start']}-{h['end']}" for h in schedule.get("hours", [])),
        "target.tiers": list(target.get("tiers", [])),
        "target.birthday_window_days": "" if target.get("birthday_window_days") is None
        else str(target["birthday_window_days"]),
        "target.registered_only": bool(target.get("registered_only")),
        "lines.own_brand": "" if own is None else ("yes" if own else "no"),
        "lines.min_price": show_value(_MONEY, lines.get("min_price")),
        "condition": json.dumps(rule["condition"], ensure_ascii=False) if rule.get("condition") else "",
        "effect.kind": (rule.get("effect") or {}).get("kind", ""),
    }
    for key in ("names", "descriptions"):
        for lang in ("ru", "en"):
            values[f"{key}.{lang}"] = _part(rule, key).get(lang, "")
    for name, (where, key) in _LISTS.items():
        values[name] = ", ".join(parts[where].get(key, []))
    for name, text in effect_to_form(rule.get("effect") or {}).items():
        values[f"effect.{name}"] = text
    return values


def group_from_form(form: Form, existing: dict[str, Any] | None) -> dict[str, Any]:
    """A group's own fields from its form (its rules are not part of it); FormErrors names each bad field."""
    group = {k: v for k, v in (existing or {}).items() if k != "rules"}
    errors: dict[str, str] = {}
    group["code"] = _one(form, "code")
    if not _CODE.match(group["code"]):
        errors["code"] = "letters, digits, - _ . (up to 64)"
    group["name"] = _one(form, "name")
    if not group["name"]:
        errors["name"] = "required"
    group["stage"] = _one(form, "stage")
    group["mode"] = _one(form, "mode") or "stack"
    group["cascade"] = _one(form, "cascade") == "on"
    group["active"] = _one(form, "active") == "on"
    try:
        group["priority"] = int(_one(form, "priority") or 0)
    except ValueError:
        errors["priority"] = "a whole number"
    if errors:
        raise FormErrors(errors)
    return group


def group_to_form(group: dict[str, Any]) -> dict[str, Any]:
    return {"code": group.get("code", ""), "name": group.get("name", ""), "stage": group.get("stage", "accrual"),
            "mode": group.get("mode", "stack"), "cascade": bool(group.get("cascade")),
            "active": group.get("active", True), "priority": str(group.get("priority", 0))}
