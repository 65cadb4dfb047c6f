"""What a draft changes against the live rules, in a marketer's words: which group or rule was added, removed or
changed, and each changed field with its value before and after ("effect.bp: 500 -> 1000"). Pure.

Both documents go through the engine's decoder first, so a field left out and the same field at its default
compare equal, and a field moved around inside a rule is no change.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from loyalty_core.engine import ProgramRules

What = Literal["settings", "group", "rule"]
How = Literal["added", "removed", "changed"]


class FieldChange(msgspec.Struct, frozen=True, kw_only=True):
    path: str  # effect.bp, schedule.hours, max_redeem_share_bp, ...
    before: Any = None
    after: Any = None


class Change(msgspec.Struct, frozen=True, kw_only=True):
    what: What
    how: How
    code: str  # the group's or rule's code; "" for the settings
    name: str = ""
    group: str = ""  # a rule's group
    fields: list[FieldChange] = []


def normalised(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the engine reads it, every default filled in (raises msgspec.ValidationError)."""
    return msgspec.to_builtins(msgspec.convert(document, ProgramRules))  # type: ignore[no-any-return]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dicts flattened to dotted paths; lists are values (a list of hours or steps reads as a whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else key))
        return out if out or not prefix else {prefix: {}}
    return {prefix: value}


def _fields(before: dict[str, Any], after: dict[str, Any], skip: tuple[str, ...] = ()) -> list[FieldChange]:
    old, new = _flat(before), _flat(after)
    changes = []
    for path in sorted(old.keys() | new.keys()):
        if path.split(".")[0] in skip or (not old and new.get(path) in (None, [], {}, "")):
            continue  # a new group or rule: only what it sets
        before_, after_ = old.get(path), new.get(path)
        if before_ != after_ and not (before_ in (None, [], {}) and after_ in (None, [], {})):
            changes.append(FieldChange(path=path, before=before_, after=after_))
    return changes


def diff(live: dict[str, Any], draft: dict[str, Any]) -> list[Change]:
    """Changes from `live` to `draft`: the settings first, then each group with its rules in the draft's order,
    then what the draft removed."""
    before, after = normalised(live), normalised(draft)
    changes: list[Change] = []
    settings = _fields(before["settings"], after["settings"])
    if settings:
        changes.append(Change(what="settings", how="changed", code="", fields=settings))
    old_groups = {g["code"]: g for g in before["groups"]}
    new_groups = {g["code"]: g for g in after["groups"]}
    old_rules = {r["code"]: (g["code"], r) for g in before["groups"] for r in g["rules"]}
    new_rules = {r["code"]: (g["code"], r) for g in after["groups"] for r in g["rules"]}
    for code, group in new_groups.items():
        if code not in old_groups:
            changes.append(Change(what="group", how="added", code=code, name=group["name"],
                                  fields=_fields({}, group, skip=("rules",))))
        else:
            fields = _fields(old_groups[code], group, skip=("rules",))
            if fields:
                changes.append(Change(what="group", how="changed", code=code, name=group["name"], fields=fields))
        for rule in group["rules"]:
            if rule["code"] not in old_rules:
                changes.append(Change(what="rule", how="added", code=rule["code"], name=rule["name"], group=code,
                                      fields=_fields({}, rule)))
                continue
            old_group, old_rule = old_rules[rule["code"]]
            fields = _fields(old_rule, rule)
            if old_group != code:
                fields.insert(0, FieldChange(path="group", before=old_group, after=code))
            if fields:
                changes.append(Change(what="rule", how="changed", code=rule["code"], name=rule["name"], group=code,
                                      fields=fields))
    for code, (group_code, rule) in old_rules.items():
        if code not in new_rules:
            changes.append(Change(what="rule", how="removed", code=code, name=rule["name"], group=group_code))
    for code, group in old_groups.items():
        if code not in new_groups:
            changes.append(Change(what="group", how="removed", code=code, name=group["name"]))
    return changes
