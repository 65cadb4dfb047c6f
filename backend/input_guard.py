"""Malformed input stops at the door: one middleware in front of every route (docs/security-input.md).

Litestar converts request bodies with msgspec in lax mode (`"8990"` and `8990.0` become the integer 8990),
reads any body as JSON whatever its Content-Type, and lets through values PostgreSQL or Python cannot hold:
a NUL character in a string, an integer past its column, a date in year 1 or 9999, JSON nested deeper than
the decoder's recursion limit. Each used to end as a 500 somewhere inside a handler. Here they are refused
before the handler runs, so nothing is written and nothing is logged as a failure.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import msgspec
import msgspec.inspect as mi
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException, NotFoundException, ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

# every id in a path is a PostgreSQL `integer` (serial) key
PATH_ID_MAX = 2**31 - 1
# no count, price or amount comes near this; sums of a thousand such values still fit a bigint
BODY_INT_MAX = 2**53 - 1
# a birth date, a sale, an expiry: anything outside this is a typing error, and year 1 / 9999 overflow
# date arithmetic and time-zone conversion
YEAR_MIN, YEAR_MAX = 1900, 2199
# nested JSON this deep is never ours; deeper hits msgspec's recursion limit
MAX_DEPTH = 32

_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$", re.IGNORECASE)
# only a body containing one of these can hold a value the walk below refuses: a NUL escape, a date outside
# YEAR_MIN..YEAR_MAX, a 16-digit number; everything else skips the walk
_SUSPECT = re.compile(rb'\\u0000|"[+-]?(?:0\d{3}|1[0-8]\d\d|2[2-9]\d\d|[3-9]\d{3}|\d{5,})-\d\d-\d\d|\d{16}')
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

# shown on the website too (translated in personal_account/i18n.py)
NUL_IN_ADDRESS = "The address contains a character that is not allowed (NUL)."
NUL_IN_FORM = "The form contains a character that is not allowed (NUL)."

_decoders: dict[int, tuple[msgspec.json.Decoder | None, bool]] = {}

def _refuse(detail: str, key: str = "", source: str = "body") -> ValidationException:
    return ValidationException(detail=detail, status_code=422, extra=[{"message": detail, "key": key, "source": source}])


def _open(info: Any, seen: set[type]) -> bool:
    """Whether a body type admits nesting of any depth (Any, Raw, a struct that contains itself): only then
    does the depth need checking; a fixed shape fails validation at the first level that does not fit."""
    if isinstance(info, (mi.AnyType, mi.RawType, mi.CustomType)):
        return True
    if isinstance(info, (mi.StructType, mi.DataclassType, mi.TypedDictType, mi.NamedTupleType)):
        if info.cls in seen:
            return True
        seen = seen | {info.cls}
        return any(_open(field.type, seen) for field in info.fields)
    if isinstance(info, mi.UnionType):
        return any(_open(member, seen) for member in info.types)
    if isinstance(info, mi.TupleType):
        return any(_open(item, seen) for item in info.item_types)
    return any(_open(getattr(info, attr), seen) for attr in ("item_type", "key_type", "value_type") if hasattr(info, attr))


def _body_type(handler: Any, annotation: Any) -> tuple[msgspec.json.Decoder | None, bool]:
    """(the body type's strict decoder: no str->int, no float->int; whether it nests without bound).
    No decoder if msgspec cannot type it: then the body is decoded untyped and its depth always checked."""
    key = id(handler)
    if key not in _decoders:
        try:
            _decoders[key] = (msgspec.json.Decoder(annotation, strict=True), _open(mi.type_info(annotation), set()))
        except TypeError:
            _decoders[key] = (None, True)
    return _decoders[key]


def _too_deep(body: bytes) -> bool:
    """Nesting deeper than MAX_DEPTH (or brackets that do not pair), at C speed: strings out, brackets only,
    then each pass removes the innermost pairs, so a body of depth d is empty after d passes."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if shorter == brackets:
            break
        brackets = shorter
    return bool(brackets)


def bad_value(value: Any, where: str = "$") -> tuple[str, str] | None:
    """(where, why) for the first value no column can hold, walking structs, mappings and sequences."""
    if isinstance(value, str):
        return (where, "must not contain a NUL character") if "\x00" in value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (where, f"must be between {-BODY_INT_MAX} and {BODY_INT_MAX}") if abs(value) > BODY_INT_MAX else None
    if isinstance(value, dt.date):  # datetime too
        return None if YEAR_MIN <= value.year <= YEAR_MAX else (where, f"year must be between {YEAR_MIN} and {YEAR_MAX}")
    if isinstance(value, msgspec.Struct):
        items: Any = ((name, getattr(value, name)) for name in value.__struct_fields__)
    elif isinstance(value, dict):
        items = [entry for key, item in value.items() for entry in ((str(key), key), (str(key), item))]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = enumerate(value)
    else:
        return None
    for name, item in items:
        if (found := bad_value(item, f"{where}.{name}" if isinstance(name, str) else f"{where}[{name}]")) is not None:
            return found
    return None


def _check_location(scope: Scope) -> None:
    if "\x00" in scope["path"]:
        raise _refuse(NUL_IN_ADDRESS, source="path")
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        raise _refuse(NUL_IN_ADDRESS, source="query")
    for name, value in scope.get("path_params", {}).items():
        # no row has such an id: the same answer as for any id that matches nothing
        if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= PATH_ID_MAX:
            raise NotFoundException(f"Nothing has {name} {value}")


# a handler whose body is a list of independent items (the till's batch) refuses a bad value in one item
# as that item's result: the walk for values no column can hold is left to it (`opt={ITEMS_CHECKED_BY_HANDLER: True}`)
ITEMS_CHECKED_BY_HANDLER = "items_checked_by_handler"


def _check_json_body(handler: Any, annotation: Any, body: bytes, content_type: str) -> None:
    if not _JSON_TYPE.match(content_type):
        raise HTTPException(status_code=415, detail="Send the body as application/json")
    decoder, unbounded = _body_type(handler, annotation)
    if unbounded and _too_deep(body):
        raise ClientException(detail=f"The JSON body is nested deeper than {MAX_DEPTH} levels, or its brackets do not pair")
    try:
        value = decoder.decode(body) if decoder is not None else msgspec.json.decode(body)
    except msgspec.ValidationError as exc:
        raise _refuse(str(exc), key=str(exc).rpartition("at `")[2].rstrip("`")) from None
    except (msgspec.DecodeError, RecursionError):
        raise ClientException(detail="The body is not valid JSON") from None
    if getattr(handler, "opt", {}).get(ITEMS_CHECKED_BY_HANDLER):
        return
    if _SUSPECT.search(body) and (found := bad_value(value)) is not None:
        where, why = found
        raise _refuse(f"{why} - at `{where}`", key=where)


def _check_form_body(body: bytes) -> None:
    if b"%00" in body or b"\x00" in body:
        raise _refuse(NUL_IN_FORM)


class InputGuard(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        _check_location(scope)
        handler = scope.get("route_handler")
        data = getattr(handler, "parsed_fn_signature", None)
        data_field = data.parameters.get("data") if data is not None else None
        request: Request = Request(scope, receive)
        content_type = request.content_type[0]
        if data_field is not None or content_type == "application/x-www-form-urlencoded":
            body = await request.body()  # cached on the connection: the handler reads the same bytes
            if body.strip():
                if data_field is not None:
                    _check_json_body(handler, data_field.annotation, body, content_type)
                else:
                    _check_form_body(body)
        await next_app(scope, receive, send)
