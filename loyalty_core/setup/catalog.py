"""Operator set-up over the API: catalog import, stores and their till keys, card series emission.

Thin use-cases over services.setup that turn database clashes into domain errors.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import msgspec
from msgspec import Meta

from loyalty_core.engine.language import LANGUAGES
from loyalty_core.errors import Conflict, ValidationFailed
from loyalty_core.setup import entities as setup
from loyalty_core.members.identity import resolve_program
from loyalty_core.setup.entities import BrandSpec, CategorySpec, ProductSpec

Code = Annotated[str, Meta(min_length=1, max_length=64)]


class CatalogIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Upserted by code/sku; categories parents first."""

    categories: Annotated[list[CategorySpec], Meta(max_length=100_000)] = []
    brands: Annotated[list[BrandSpec], Meta(max_length=100_000)] = []
    products: Annotated[list[ProductSpec], Meta(max_length=100_000)] = []


class CatalogOut(msgspec.Struct, kw_only=True):
    categories: int
    brands: int
    products: int


class StoreIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "Europe/Moscow"
    region: Annotated[str, Meta(max_length=100)] = ""
    format: Annotated[str, Meta(max_length=50)] = ""
    address: Annotated[str, Meta(max_length=500)] = ""
    latitude: Annotated[float, Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Meta(ge=-180, le=180)] | None = None
    program: Code | None = None  # bind the store to one program of several (returns across stores stay inside it)


class StoreOut(msgspec.Struct, kw_only=True):
    id: int
    code: str
    name: str
    timezone: str


class TillKeyOut(msgspec.Struct, kw_only=True):
    store: str
    till: str
    key: str  # shown once; only its hash is stored


class EmitIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    series: Code
    count: Annotated[int, Meta(ge=1, le=100_000)]
    kind: Literal["plastic", "virtual"] = "plastic"
    program: Code | None = None


class EmittedCardOut(msgspec.Struct, kw_only=True):
    number: str
    secret: str  # print it with the card; shown once, only its hash is stored


class EmitOut(msgspec.Struct, kw_only=True):
    program: str
    series: str
    numbers: list[str]
    cards: list[EmittedCardOut]


def _check_catalog(catalog: CatalogIn) -> None:
    for what, codes in (("category", [c.code for c in catalog.categories]), ("brand", [b.code for b in catalog.brands]),
                        ("product", [p.sku for p in catalog.products])):
        twice = sorted({c for c in codes if codes.count(c) > 1}) if len(codes) < 5000 else []
        if twice:
            raise ValidationFailed(f"{what} {twice[0]!r} is listed twice")
        if any(not c or len(c) > 64 for c in codes):
            raise ValidationFailed(f"{what} codes must be 1..64 characters")
    for product in catalog.products:
        if product.price is not None and product.price < 0:
            raise ValidationFailed(f"product {product.sku!r}: price must not be negative")
    for what, code, names in [*(("category", c.code, c.names) for c in catalog.categories),
                              *(("product", p.sku, p.names) for p in catalog.products)]:
        _check_names(what, code, names)


def _check_names(what: str, code: str, names: dict[str, str]) -> None:
    """`names: {ru, en}`: the shopper's languages only, each a name a shelf label could carry."""
    for language, name in names.items():
        if language not in LANGUAGES:
            raise ValidationFailed(f"{what} {code!r}: names: {language!r} is not one of {', '.join(LANGUAGES)}")
        if not isinstance(name, str) or not name.strip() or len(name) > 300:
            raise ValidationFailed(f"{what} {code!r}: names.{language} must be 1..300 characters")


async def import_catalog(catalog: CatalogIn) -> CatalogOut:
    """All or nothing: one bad row and nothing is written."""
    _check_catalog(catalog)
    counts = await setup.import_catalog(catalog.categories, catalog.brands, catalog.products)
    return CatalogOut(**counts)


async def create_store(store: StoreIn) -> StoreOut:
    try:
        ZoneInfo(store.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"timezone: {store.timezone!r} is not an IANA time zone") from None
    try:
        fields = msgspec.structs.asdict(store)
        fields["program"] = (await resolve_program(store.program)).id if store.program else None
        store_id = await setup.create_store(**fields)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"store {store.code!r} already exists") from None
    return StoreOut(id=store_id, code=store.code, name=store.name, timezone=store.timezone)


async def issue_till_key(store_code: str, till_code: str) -> TillKeyOut:
    key = await setup.create_till_key(store_code, till_code)
    return TillKeyOut(store=store_code, till=till_code, key=key.key)


async def emit_cards(request: EmitIn) -> EmitOut:
    program = await resolve_program(request.program)
    cards = await setup.emit_cards(program.id, request.series, request.count, kind=request.kind)
    return EmitOut(program=program.code, series=request.series, numbers=[c.number for c in cards],
                   cards=[EmittedCardOut(number=c.number, secret=c.secret) for c in cards])
