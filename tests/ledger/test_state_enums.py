"""States are Enums: the Piccolo columns carry them as choices and the database refuses any other value."""

from __future__ import annotations

import asyncpg
import pytest

from loyalty_core import tables
from tests.factories import Shop, emit_card

pytestmark = pytest.mark.asyncio(loop_scope="session")

COLUMNS = [
    (tables.Customer.status, tables.CustomerStatus),
    (tables.Membership.status, tables.MembershipStatus),
    (tables.Card.status, tables.CardStatus),
    (tables.Coupon.status, tables.CouponStatus),
    (tables.PointLot.state, tables.LotState),
    (tables.Sale.status, tables.SaleStatus),
]


async def test_every_state_column_names_its_enum() -> None:
    for column, enum in COLUMNS:
        assert column._meta.choices is enum, column


async def test_the_database_refuses_a_state_no_enum_names(shop: Shop) -> None:
    rows = await tables.Card.raw("SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
                        "WHERE conname LIKE '%allowed' AND convalidated")
    constraints = {row["conname"]: row["def"] for row in rows}
    for column, enum in COLUMNS:
        table, name = column._meta.table._meta.tablename, column._meta.db_column_name
        definition = constraints[f"{table}_{name}_allowed"]
        assert sorted(enum) == sorted(v.strip("'") for v in definition.split("ARRAY[")[1].split("]")[0]
                                      .replace("::character varying", "").replace("::text", "").split(", "))
    number = await emit_card(shop)
    with pytest.raises(asyncpg.CheckViolationError):
        await tables.Card.raw("UPDATE card SET status = 'stolen' WHERE number = {}", number)
    assert (await tables.Card.raw("SELECT status FROM card WHERE number = {}", number))[0]["status"] == "emitted"
