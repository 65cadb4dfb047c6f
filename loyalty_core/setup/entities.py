"""Operator set-up use-cases: programs and rule versions, stores, tills and their keys, catalog, card series."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from loyalty_core import cache, db
from loyalty_core.cards import card_number
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.members.card_proof import new_secret, secret_hash
from loyalty_core.tables import (
    Brand,
    Card,
    Category,
    Product,
    Program,
    RulesVersion,
    Store,
    Tier,
    Till,
    TillKey,
)

# --- the statements ------------------------------------------------------------------------------------------

NEXT_CARD_NUMBER = "SELECT nextval('card_number_seq') AS n"
NEXT_CARD_NUMBERS = "SELECT nextval('card_number_seq') AS n FROM generate_series(1, $1)"
EMIT_CARDS = (
    "INSERT INTO card (number, program, series, kind, status, secret_hash, created_at) "
    "SELECT n, $1, $2, $3, 'emitted', h, now() FROM unnest($4::varchar[], $5::varchar[]) AS t(n, h)"
)


def hash_secret(secret: str) -> str:
    # keys are 256-bit random secrets, so a fast hash is enough (nothing to brute-force); lookups stay one index probe
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_program(code: str, name: str, rules: object, timezone: str = "Europe/Moscow") -> int:
    """A program with its tiers and rules version 1, in one transaction."""
    from loyalty_core.engine import ProgramRules, validate_program

    document = validate_program(msgspec.to_builtins(rules) if isinstance(rules, ProgramRules) else rules)
    async with DB.transaction():
        program = (
            await Program.insert(
                Program(code=code, name=name, currency=document.settings.currency, timezone=timezone, rules_version=1)
            ).returning(Program.id)
        )[0]
        program_id = program["id"]
        await _sync_tiers(program_id, document)
        await RulesVersion.insert(
            RulesVersion(program=program_id, version=1, document=msgspec.json.encode(document).decode(), comment="initial")
        )
    await cache.changed(["program"])  # the first program becomes the one the tills price anonymous sales by
    return program_id


async def publish_rules(program_id: int, rules: object, comment: str = "", author: str = "") -> int:
    """Store a new immutable rules version and make it live; confirmed sales keep the version they used."""
    from loyalty_core.engine import validate_program

    document = validate_program(rules if not isinstance(rules, msgspec.Struct) else msgspec.to_builtins(rules))
    async with DB.transaction():
        rows = await Program.select(Program.rules_version).where(Program.id == program_id).lock_rows()
        if not rows:
            raise NotFound(f"program {program_id} does not exist")
        version = rows[0]["rules_version"] + 1
        await RulesVersion.insert(
            RulesVersion(
                program=program_id,
                version=version,
                document=msgspec.json.encode(document).decode(),
                comment=comment,
                created_by=author,
            )
        )
        await Program.update({Program.rules_version: version}).where(Program.id == program_id)
        await _sync_tiers(program_id, document)
    await cache.changed(["program"])  # the tills' cached keys carry the live version of their program
    return version


async def _sync_tiers(program_id: int, document: object) -> None:
    tiers = document.settings.tiers  # type: ignore[attr-defined]
    if not tiers:
        raise ValidationFailed("a program needs at least one tier")
    for tier in tiers:
        existing = await Tier.select(Tier.id).where((Tier.program == program_id) & (Tier.code == tier.code))
        values = {
            Tier.name: tier.name,
            Tier.rank: tier.rank,
            Tier.threshold_spend: tier.threshold_spend_minor,
            Tier.accrual_bp: tier.accrual_bp,
        }
        if existing:
            await Tier.update(values).where(Tier.id == existing[0]["id"])
        else:
            await Tier.insert(
                Tier(
                    program=program_id,
                    code=tier.code,
                    name=tier.name,
                    rank=tier.rank,
                    threshold_spend=tier.threshold_spend_minor,
                    accrual_bp=tier.accrual_bp,
                )
            )


async def create_store(
    code: str,
    name: str,
    timezone: str = "Europe/Moscow",
    region: str = "",
    format: str = "",
    address: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
    program: int | None = None,
) -> int:
    """`program`: the one program whose receipts the store takes back; None when the deployment runs one."""
    rows = await Store.insert(
        Store(
            code=code, name=name, timezone=timezone, region=region, format=format,
            address=address, latitude=latitude, longitude=longitude, program=program,
        )
    ).returning(Store.id)
    return rows[0]["id"]


@dataclass(frozen=True)
class IssuedTillKey:
    store_code: str
    till_code: str
    till_id: int
    key: str
    key_id: int = 0  # what `till-key list` shows and `till-key revoke` takes


async def create_till_key(store_code: str, till_code: str) -> IssuedTillKey:
    """A new secret for a till (the till is created on first use). Only the hash is stored."""
    async with DB.transaction():
        store = await Store.select(Store.id).where(Store.code == store_code).first()
        if store is None:
            known = [r["code"] for r in await Store.select(Store.code).order_by(Store.code).limit(11)]
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "") if known else "none yet"
            raise NotFound(f"store {store_code!r} does not exist (known: {shown}); an operator opens stores with "
                           "POST /admin/v1/stores (docs/operator-api.md)")
        till = await Till.select(Till.id).where((Till.store == store["id"]) & (Till.code == till_code)).first()
        if till is None:
            till = (await Till.insert(Till(store=store["id"], code=till_code)).returning(Till.id))[0]
        secret = "tk_" + secrets.token_urlsafe(32)
        key = await TillKey.insert(TillKey(till=till["id"], key_hash=hash_secret(secret), prefix=secret[:10])).returning(TillKey.id)
    return IssuedTillKey(store_code=store_code, till_code=till_code, till_id=till["id"], key=secret, key_id=key[0]["id"])


class CategorySpec(msgspec.Struct, frozen=True):
    code: str
    name: str
    parent: str | None = None
    selectable_as_favourite: bool = False
    names: dict[str, str] = {}  # per language for the shopper ({"ru": ..., "en": ...}); `name` when one is missing


class BrandSpec(msgspec.Struct, frozen=True):
    code: str
    name: str
    own_brand: bool = False


class ProductSpec(msgspec.Struct, frozen=True):
    sku: str
    name: str
    category: str | None = None
    brand: str | None = None
    excluded: bool = False
    price: int | None = None
    names: dict[str, str] = {}  # per language, as the category's


async def import_catalog(
    categories: Sequence[CategorySpec] = (), brands: Sequence[BrandSpec] = (), products: Sequence[ProductSpec] = ()
) -> dict[str, int]:
    """Upsert categories (parents before children), brands and products, in one transaction."""
    async with DB.transaction():
        paths: dict[str, list[str]] = {}
        ids: dict[str, int] = {}
        for row in await Category.select(Category.id, Category.code, Category.path):
            ids[row["code"]], paths[row["code"]] = row["id"], row["path"]
        for spec in categories:
            if spec.parent is not None and spec.parent not in ids:
                raise ValidationFailed(f"category {spec.code!r}: parent {spec.parent!r} is unknown (list parents first)")
            path = [*(paths[spec.parent] if spec.parent else []), spec.code]
            values = dict(name=spec.name, parent=ids.get(spec.parent) if spec.parent else None, path=path,
                          selectable_as_favourite=spec.selectable_as_favourite,
                          names=msgspec.json.encode(spec.names).decode())
            if spec.code in ids:
                await Category.update({getattr(Category, k): v for k, v in values.items()}).where(Category.id == ids[spec.code])
            else:
                ids[spec.code] = (await Category.insert(Category(code=spec.code, **values)).returning(Category.id))[0]["id"]
            paths[spec.code] = path
        brand_ids = {r["code"]: r["id"] for r in await Brand.select(Brand.id, Brand.code)}
        for b in brands:
            if b.code in brand_ids:
                await Brand.update({Brand.name: b.name, Brand.own_brand: b.own_brand}).where(Brand.id == brand_ids[b.code])
            else:
                brand_ids[b.code] = (await Brand.insert(Brand(code=b.code, name=b.name, own_brand=b.own_brand)).returning(Brand.id))[0]["id"]
        existing = {r["sku"]: r["id"] for r in await Product.select(Product.id, Product.sku).where(Product.sku.is_in([p.sku for p in products] or [""]))}
        for p in products:
            if p.category is not None and p.category not in ids:
                raise ValidationFailed(f"product {p.sku!r}: category {p.category!r} is unknown")
            if p.brand is not None and p.brand not in brand_ids:
                raise ValidationFailed(f"product {p.sku!r}: brand {p.brand!r} is unknown")
            values = {
                Product.name: p.name,
                Product.category: ids.get(p.category) if p.category else None,
                Product.brand: brand_ids.get(p.brand) if p.brand else None,
                Product.excluded: p.excluded,
                Product.price: p.price,
                Product.names: msgspec.json.encode(p.names).decode(),
            }
            if p.sku in existing:
                await Product.update(values).where(Product.id == existing[p.sku])
            else:
                await Product.insert(Product(sku=p.sku, **{c._meta.name: v for c, v in values.items()}))
    await cache.changed(["catalog"])  # every worker drops its products' facts (a category moves many at once)
    return {"categories": len(categories), "brands": len(brands), "products": len(products)}


class EmittedCard(msgspec.Struct, frozen=True):
    number: str
    secret: str  # printed with the card (under a scratch layer or inside the envelope); only its hash is stored


async def emit_cards(program_id: int, series: str, count: int, kind: str = "plastic") -> list[EmittedCard]:
    """Emit `count` unregistered cards; numbers come from one sequence and carry a check digit. Each card gets
    a secret to print with it: the proof of possession that binds it in the app or on the website."""
    if count <= 0 or count > 1_000_000:
        raise ValidationFailed("count must be between 1 and 1 000 000")
    if not await Program.exists().where(Program.id == program_id):
        raise NotFound(f"program {program_id} does not exist")
    rows = await db.fetch(NEXT_CARD_NUMBERS, count)
    cards = [EmittedCard(card_number(r["n"]), new_secret()) for r in rows]
    await db.fetch(EMIT_CARDS, program_id, series, kind, [c.number for c in cards],
                   [secret_hash(c.number, c.secret) for c in cards])
    return cards


async def reissue_card_secrets(numbers: Sequence[str]) -> list[EmittedCard]:
    """New secrets for cards still `emitted` (nobody holds them yet): the demo prints its cards' secrets again
    after a restart, since only hashes are stored."""
    rows = await Card.select(Card.number).where(Card.number.is_in(list(numbers) or [""]) & (Card.status == "emitted"))
    cards = [EmittedCard(r["number"], new_secret()) for r in rows]
    for card in cards:
        await Card.update({Card.secret_hash: secret_hash(card.number, card.secret)}).where(Card.number == card.number)
    return cards


async def next_card_number() -> str:
    return card_number(await db.fetchval(NEXT_CARD_NUMBER))  # type: ignore[arg-type]
