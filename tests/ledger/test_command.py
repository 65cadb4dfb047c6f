"""The one exactly-once path: a confirm under an Idempotency-Key that fails at any step before its commit
leaves nothing (no sale, no points, no message, not even the key); sent again it lands once, with its key."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.ledger import command, writer
from loyalty_core.ledger.verify import verify_all
from loyalty_core.till import sale_write
from loyalty_core.till import sales
from loyalty_core.till.types import CalculationOut, SaleIn
from tests.factories import account_balance, count_rows, make_member, make_shop, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")
MSK = dt.timezone(dt.timedelta(hours=3))


class Died(Exception):
    """The process stops here (an exception leaves the transaction exactly as a killed connection does)."""


async def _footprint(member, key: str) -> tuple:
    return (
        await count_rows("sale", "membership = {}", member.membership_id),
        await count_rows("ledger_entry", "account = {}", member.account_id),
        await count_rows("point_lot", "account = {}", member.account_id),
        await count_rows("notification", "customer = {}", member.customer_id),
        await count_rows("idempotency_record", "key = {}", key),
        await account_balance(member.account_id),
    )


@pytest.mark.parametrize("step", ["after the key is claimed", "after the sale and points are written",
                                  "after the answer is stored"])
async def test_a_confirm_that_dies_before_commit_leaves_nothing_and_lands_once_when_sent_again(
    db_pool: None, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    shop = await make_shop()
    now = dt.datetime.now(MSK)
    member = await make_member(shop, 500, now=now)
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, [("cheese", 2, 50_000)], card=member.card, when=now, redeem=200), SaleIn)
    key = f"K-{step[:12]}-{member.account_id}"
    before = await _footprint(member, key)

    real_claim, real_write, real_store = command.claim, sale_write.write_confirmed_sale, command.store

    async def claim_then_die(*args, **kwargs):
        await real_claim(*args, **kwargs)
        raise Died(step)

    async def write_then_die(*args, **kwargs):
        await real_write(*args, **kwargs)
        raise Died(step)

    async def store_then_die(*args, **kwargs):
        await real_store(*args, **kwargs)
        raise Died(step)

    target = {"after the key is claimed": (command, "claim", claim_then_die),
              "after the sale and points are written": (sale_write, "write_confirmed_sale", write_then_die),
              "after the answer is stored": (command, "store", store_then_die)}[step]
    with monkeypatch.context() as patched:
        patched.setattr(*target)
        with pytest.raises(Died):
            await sales.confirm_sale(body, till, now, idempotency_key=key)
    assert await _footprint(member, key) == before  # nothing, not even the key

    first = await sales.confirm_sale(body, till, now, idempotency_key=key)
    again = await sales.confirm_sale(body, till, now, idempotency_key=key)
    assert msgspec.json.encode(first) == msgspec.json.encode(again)
    sale_count, entries, lots, messages, keys, balance = await _footprint(member, key)
    assert (sale_count, keys) == (before[0] + 1, 1)
    assert entries > before[1] and balance[0] == 300
    assert await verify_all() == []


async def test_a_conflicting_write_rolls_the_whole_try_back_and_the_next_try_lands(
    db_pool: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try's write finds the version moved (another till confirmed meanwhile): its sale row and key
    go with the rolled back transaction, the second try re-reads and lands once."""
    shop = await make_shop()
    now = dt.datetime.now(MSK)
    member = await make_member(shop, 500, now=now)
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, [("cheese", 1, 50_000)], card=member.card, when=now, redeem=100), SaleIn)
    real_write, tries = writer.write, []

    async def first_try_conflicts(posting, *args, **kwargs):
        tries.append(posting.version)
        if len(tries) == 1:
            posting.version -= 1  # as if another till wrote between this try's read and its write
        return await real_write(posting, *args, **kwargs)

    monkeypatch.setattr(writer, "write", first_try_conflicts)
    out = await sales.confirm_sale(body, till, now, idempotency_key=f"C-{member.account_id}")
    assert isinstance(out, CalculationOut) and out.sale_id is not None
    assert len(tries) == 2
    assert await count_rows("sale", "membership = {}", member.membership_id) == 1
    assert await count_rows("idempotency_record", "key = {}", f"C-{member.account_id}") == 1
    assert (await account_balance(member.account_id))[0] == 400
    assert await verify_all() == []
