"""The mechanics a rule can have, as form fields, generated from the engine's own effect Structs.

Each effect kind of `loyalty_core.engine.effects.Effect` becomes a `Mechanic` with its fields (read with
`msgspec.inspect`), so a new mechanic in the engine gets a form without a change here. A field shows in the unit a
marketer thinks in: rates in percent (the engine keeps basis points: 5 % = 500), money in roubles (kopecks),
multipliers as "x10" (factor_bp 100000); structured parts (a list of steps, a line filter) are JSON. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
import typing
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from loyalty_core.engine import effects

Unit = Literal["percent", "money", "factor", "points", "count", "text", "choice", "ints_percent", "json", "bool",
               "words"]

_MONEY = frozenset({"amount", "price", "max_discount", "per_amount", "min_amount", "min_price", "point_value_minor"})
_POINTS = frozenset({"points", "referrer_points", "max_points", "per_receipt", "per_day", "max_accrual_per_receipt",
                     "max_accrual_per_day"})
KIND_NAMES = {  # what a marketer calls each mechanic
    "percent_discount": "Percent discount", "amount_discount": "Fixed discount on the receipt",
    "threshold_discount": "Discount from a receipt amount", "ladder_discount": "Discount by item order",
    "nth_item_free": "Every n-th item free", "m_for_n": "Take m, pay for n", "bogo": "Buy X, get Y",
    "set_price": "Set price", "redeem_share": "Points pay at most a share", "no_redeem": "No payment with points",
    "no_accrual": "No points", "accrual_cap": "Points cap", "percent_points": "Accrual rate (percent in points)",
    "points_per_item": "Points per item", "points_per_amount": "Points per amount spent",
    "multiplier": "Points multiplier", "cheapest_item_bonus": "Bonus on the cheapest item",
    "fixed_points": "Fixed points per receipt", "issue_coupon": "Issue a coupon", "event_bonus": "Event bonus",
}


class Field(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # the effect's field
    unit: Unit
    required: bool
    choices: tuple[str, ...] = ()


class Mechanic(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # the effect's tag
    title: str
    help: str  # the engine's docstring
    stage: str  # the group stage it belongs in (issue_coupon: any but event)
    fields: tuple[Field, ...]


class FormErrors(Exception):
    """Field -> message, for the form to show next to each field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _unit(name: str, info: Any) -> tuple[Unit, tuple[str, ...]]:
    inner = info
    if isinstance(info, msgspec.inspect.UnionType):
        inner = next((t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)), info)
    if isinstance(inner, msgspec.inspect.LiteralType):
        return "choice", tuple(str(v) for v in inner.values)
    if isinstance(inner, msgspec.inspect.StrType):
        return "text", ()
    if isinstance(inner, msgspec.inspect.BoolType):
        return "bool", ()
    if isinstance(inner, msgspec.inspect.ListType) and isinstance(inner.item_type, msgspec.inspect.StrType):
        return "words", ()
    if isinstance(inner, msgspec.inspect.ListType) and isinstance(inner.item_type, msgspec.inspect.IntType):
        return ("ints_percent" if name.endswith("bp") else "json"), ()
    if isinstance(inner, msgspec.inspect.IntType):
        if name == "factor_bp":
            return "factor", ()
        if name.endswith("bp"):
            return "percent", ()
        if name in _MONEY:
            return "money", ()
        if name in _POINTS:
            return "points", ()
        return "count", ()
    return "json", ()


def _stage(kind_type: type) -> str:
    for stage, kinds in effects.STAGE_EFFECTS.items():
        if kind_type in kinds:
            return stage
    return "any"


def _mechanics() -> dict[str, Mechanic]:
    found: dict[str, Mechanic] = {}
    for kind_type in typing.get_args(effects.Effect):
        info = msgspec.inspect.type_info(kind_type)
        fields = []
        for field in info.fields:
            unit, choices = _unit(field.name, field.type)
            fields.append(Field(name=field.name, unit=unit, required=field.required, choices=choices))
        tag = str(info.tag)
        found[tag] = Mechanic(kind=tag, title=KIND_NAMES.get(tag, tag), help=(kind_type.__doc__ or "").strip(),
                              stage=_stage(kind_type), fields=tuple(fields))
    return found


MECHANICS: dict[str, Mechanic] = _mechanics()


def mechanic(kind: str) -> Mechanic:
    if kind not in MECHANICS:
        raise FormErrors({"effect.kind": f"unknown mechanic {kind!r}"})
    return MECHANICS[kind]


# --- form text <-> the engine's numbers ------------------------------------------------------


def _decimal(text: str) -> Decimal:
    cleaned = text.replace("\u00a0", "").replace(" ", "").replace(",", ".").removeprefix("x").removeprefix("×")
    return Decimal(cleaned)


def _scaled(text: str, scale: int) -> int:
    value = _decimal(text) * scale
    if value != value.to_integral_value():
        raise ValueError("too many decimals")
    return int(value)


def parse_value(field: Field, text: str) -> Any:
    """One field's text as the engine's value (None: left empty). ValueError with a readable message."""
    text = text.strip()
    if field.unit == "bool":
        return text == "on"
    if field.unit == "words":
        return [w for w in re.split(r"[,;\s]+", text) if w]
    if not text:
        if field.required and field.unit not in ("json",):
            raise ValueError("required")
        return None
    try:
        if field.unit == "percent":
            return _scaled(text, 100)
        if field.unit == "money":
            return _scaled(text, 100)
        if field.unit == "factor":
            return _scaled(text, 10_000)
        if field.unit in ("points", "count"):
            return _scaled(text, 1)
        if field.unit == "ints_percent":
            return [_scaled(part, 100) for part in re.split(r"[/;]", text) if part.strip()]
        if field.unit == "choice":
            if text not in field.choices:
                raise ValueError("choose from the list")
            return text
        if field.unit == "json":
            return json.loads(text)
    except (InvalidOperation, ValueError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise ValueError(f"not valid JSON: {exc.msg}") from None
        if str(exc) in ("required", "choose from the list"):
            raise
        raise ValueError({"percent": "a number of percent, e.g. 5 or 2.5", "money": "an amount, e.g. 1500 or 99.90",
                          "factor": "a factor, e.g. 2 or 1.5", "ints_percent": "percents separated by /, e.g. 0/10/20"}
                         .get(field.unit, "a whole number")) from None
    return text


def show_value(field: Field, value: Any) -> str:
    """The engine's value as the form shows it."""
    if value is None:
        return ""
    if field.unit == "bool":
        return "on" if value else ""
    if field.unit == "words":
        return ", ".join(value)
    if field.unit in ("percent", "money"):
        return _plain(Decimal(value) / 100)
    if field.unit == "factor":
        return _plain(Decimal(value) / 10_000)
    if field.unit == "ints_percent":
        return "/".join(_plain(Decimal(v) / 100) for v in value)
    if field.unit == "json":
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def effect_from_form(kind: str, values: dict[str, str]) -> dict[str, Any]:
    """The effect's JSON from the form's `effect.<field>` texts; FormErrors names each bad field."""
    found = mechanic(kind)
    effect: dict[str, Any] = {"kind": kind}
    errors: dict[str, str] = {}
    for field in found.fields:
        try:
            value = parse_value(field, values.get(field.name, ""))
        except ValueError as exc:
            errors[f"effect.{field.name}"] = str(exc)
            continue
        if value is not None:
            effect[field.name] = value
    if errors:
        raise FormErrors(errors)
    return effect


def effect_to_form(effect: dict[str, Any]) -> dict[str, str]:
    found = MECHANICS.get(str(effect.get("kind")))
    if found is None:
        return {}
    return {field.name: show_value(field, effect.get(field.name)) for field in found.fields}


# --- the program's settings, the same way ------------------------------------------------------


def _settings_fields() -> tuple[Field, ...]:
    from loyalty_core.engine import ProgramSettings

    fields = []
    for field in msgspec.inspect.type_info(ProgramSettings).fields:
        unit, choices = _unit(field.name, field.type)
        if field.name == "max_redeem_share_bp":
            unit = "percent"
        fields.append(Field(name=field.name, unit=unit, required=False, choices=choices))
    return tuple(fields)


SETTINGS_FIELDS: tuple[Field, ...] = _settings_fields()


def settings_from_form(values: dict[str, str], existing: dict[str, Any]) -> dict[str, Any]:
    """The settings' JSON from the form (an empty optional cap is no cap); FormErrors names each bad field."""
    settings = dict(existing)
    errors: dict[str, str] = {}
    for field in SETTINGS_FIELDS:
        try:
            value = parse_value(field, values.get(field.name, ""))
        except ValueError as exc:
            errors[field.name] = str(exc)
            continue
        if value is None and field.unit == "json":
            value = []
        settings[field.name] = value
    if errors:
        raise FormErrors(errors)
    return {k: v for k, v in settings.items() if v is not None or k in _NULLABLE}


_NULLABLE = frozenset({"default_tier", "max_accrual_per_receipt", "max_accrual_per_day"})


def settings_to_form(settings: dict[str, Any]) -> dict[str, str]:
    from loyalty_core.engine import ProgramSettings

    full = msgspec.to_builtins(msgspec.convert(settings, ProgramSettings))
    return {field.name: show_value(field, full.get(field.name)) for field in SETTINGS_FIELDS}
