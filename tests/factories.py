"""Real rows in the real database: a shop (program, store, till, key, catalog) and members with points.

Every call makes fresh codes, so tests never step on each other and need no cleanup.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from loyalty_core.ledger import ops
from loyalty_core.piccolo_conf import DB
from loyalty_core.setup import entities as setup
from loyalty_core.members import tiers
from loyalty_core.tables import Card, Customer, Membership

UTC = dt.timezone.utc
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{secrets.token_hex(3)}"


def basic_rules(**settings: Any) -> Any:
    """The foundation's program: Basic 3% / Silver 5% from 30 000 RUB / Gold 7% from 100 000 RUB, 30% with points."""
    from loyalty_core.engine.program import ProgramRules, ProgramSettings, TierDef

    values: dict[str, Any] = dict(
        currency="RUB",
        point_value_minor=100,
        max_redeem_share_bp=3000,
        pending_days=14,
        expiry_days=365,
        tiers=[
            TierDef(code="basic", name="Basic", rank=1, threshold_spend_minor=0, accrual_bp=300),
            TierDef(code="silver", name="Silver", rank=2, threshold_spend_minor=3_000_000, accrual_bp=500),
            TierDef(code="gold", name="Gold", rank=3, threshold_spend_minor=10_000_000, accrual_bp=700),
        ],
    )
    values.update(settings)
    return ProgramRules(settings=ProgramSettings(**values))


class Shop(msgspec.Struct, kw_only=True):
    program_id: int
    program_code: str
    store_id: int
    store_code: str
    till_id: int
    key: str
    skus: dict[str, str]  # role -> sku

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Member(msgspec.Struct, kw_only=True):
    customer_id: int | None
    membership_id: int | None
    card: str
    card_id: int
    account_id: int | None
    phone: str | None = None


async def make_shop(rules: Any = None, timezone: str = "Europe/Moscow") -> Shop:
    program_code = unique("prog")
    program_id = await setup.create_program(program_code, "Test program", rules or basic_rules())
    store_code = unique("store")
    store_id = await setup.create_store(store_code, "Test store", timezone=timezone, region="Moscow", format="hyper")
    key = await setup.create_till_key(store_code, "till-1")
    cat_dairy, cat_alcohol, brand_own = unique("dairy"), unique("alcohol"), unique("own")
    skus = {"milk": unique("sku-milk"), "cheese": unique("sku-cheese"), "wine": unique("sku-wine"), "bread": unique("sku-bread")}
    await setup.import_catalog(
        categories=[
            setup.CategorySpec(code=cat_dairy, name="Dairy", selectable_as_favourite=True),
            setup.CategorySpec(code=cat_alcohol, name="Alcohol"),
        ],
        brands=[setup.BrandSpec(code=brand_own, name="Own", own_brand=True)],
        products=[
            setup.ProductSpec(sku=skus["milk"], name="Milk", category=cat_dairy, price=9_990),
            setup.ProductSpec(sku=skus["cheese"], name="Cheese", category=cat_dairy, brand=brand_own, price=59_900),
            setup.ProductSpec(sku=skus["wine"], name="Wine", category=cat_alcohol, excluded=True, price=99_900),
            setup.ProductSpec(sku=skus["bread"], name="Bread", price=4_990),
        ],
    )
    return Shop(
        program_id=program_id, program_code=program_code, store_id=store_id, store_code=store_code,
        till_id=key.till_id, key=key.key, skus=skus,
    )


async def make_member(shop: Shop, points: int = 0, *, registered: bool = True, now: dt.datetime | None = None,
                      expires_in_days: int = 365) -> Member:
    """A member with a card; `points` are granted active at once (as an import would)."""
    now = now or dt.datetime.now(UTC)
    number = await setup.next_card_number()
    async with DB.transaction():
        customer_id = None
        phone = None
        if registered:
            phone = "+7999" + f"{secrets.randbelow(10**7):07d}"
            customer_id = (
                await Customer.insert(Customer(phone=phone, name="Анна Петрова")).returning(Customer.id)
            )[0]["id"]
        membership_id = (
            await Membership.insert(
                Membership(program=shop.program_id, customer=customer_id, status="active" if registered else "anonymous")
            ).returning(Membership.id)
        )[0]["id"]
        await tiers.assign_initial_tier(membership_id, shop.program_id)
        card_id = (
            await Card.insert(
                Card(number=number, program=shop.program_id, membership=membership_id, status="active")
            ).returning(Card.id)
        )[0]["id"]
        account_id = await ops.ensure_account(membership_id)
        if points:
            state = await ops.lock_account(account_id, now)
            await ops.accrue(
                state, points, now, kind="import", source="import", activates_at=now - dt.timedelta(seconds=1),
                expires_at=now + dt.timedelta(days=expires_in_days), reason="test grant",
            )
    return Member(customer_id=customer_id, membership_id=membership_id, card=number, card_id=card_id,
                  account_id=account_id, phone=phone)


async def emit_card(shop: Shop) -> str:
    return (await setup.emit_cards(shop.program_id, unique("series"), 1))[0].number


async def emit_card_with_secret(shop: Shop) -> tuple[str, str]:
    """An emitted plastic card and the secret printed with it."""
    card = (await setup.emit_cards(shop.program_id, unique("series"), 1))[0]
    return card.number, card.secret


def sale_body(shop: Shop, lines: list[tuple[str, float, int]], *, card: str | None = None, redeem: int = 0,
              receipt: str | None = None, when: dt.datetime | None = None, coupons: list[str] | None = None,
              **extra: Any) -> dict[str, Any]:
    """lines: (role or sku, quantity, unit price in kopecks)."""
    when = when or dt.datetime.now(dt.timezone(dt.timedelta(hours=3)))
    body: dict[str, Any] = {
        "receipt_id": receipt or unique("r"),
        "business_date": when.date().isoformat(),
        "occurred_at": when.isoformat(),
        "lines": [
            {"line_no": i, "sku": shop.skus.get(sku, sku), "quantity": qty, "price": price,
             "amount": round(qty * price)}
            for i, (sku, qty, price) in enumerate(lines, start=1)
        ],
        "redeem_points": redeem,
    }
    if card:
        body["card"] = card
    if coupons:
        body["coupons"] = coupons
    body.update(extra)
    return body


@pytest.fixture
async def shop(db_pool: None) -> Shop:
    return await make_shop()


@pytest.fixture
def member_factory(shop: Shop) -> Callable[..., Any]:
    async def factory(points: int = 0, **kw: Any) -> Member:
        return await make_member(shop, points, **kw)

    return factory


async def account_balance(account_id: int) -> tuple[int, int]:
    rows = await Card.raw("SELECT active, pending FROM account WHERE id = {}", account_id)
    return rows[0]["active"], rows[0]["pending"]


async def count_rows(table: str, where: str = "true", *args: Any) -> int:
    rows = await Card.raw(f"SELECT count(*) AS n FROM {table} WHERE {where}", *args)
    return rows[0]["n"]
