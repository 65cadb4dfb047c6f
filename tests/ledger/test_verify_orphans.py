"""`kopilka ledger verify` holds what the dropped foreign keys held: a sale line without its sale and a ledger
entry without its lot (or with another account's lot) and a message to a customer or card that does not exist
are reported."""

from __future__ import annotations

import pytest

from loyalty_core.ledger.verify import verify_all
from loyalty_core.tables import LedgerEntry
from tests.factories import make_member, make_shop

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_verify_reports_a_sale_line_without_its_sale_an_entry_without_its_lot_and_a_stray_message(db_pool: None) -> None:
    member = await make_member(await make_shop(), 10)
    other = await make_member(await make_shop(), 10)
    missing = (await LedgerEntry.raw("SELECT COALESCE(MAX(id), 0) + 1000000 AS id FROM sale"))[0]["id"]
    lot = (await LedgerEntry.raw("SELECT id FROM point_lot WHERE account = {}", other.account_id))[0]["id"]
    line = entries = message = None
    try:
        line = (await LedgerEntry.raw(
            "INSERT INTO sale_line (sale, line_no, sku, quantity_milli, price, amount, discount, redeemed_points, "
            "redeemed_amount, to_pay, accrued_points, returned_quantity_milli) "
            "VALUES ({}, 1, 'orphan', 1000, 100, 100, 0, 0, 0, 100, 0, 0) RETURNING id", missing))[0]["id"]
        # zero amounts: only the reference is wrong, every sum still holds
        entries = [r["id"] for r in await LedgerEntry.raw(
            "INSERT INTO ledger_entry (account, lot, kind, bucket, amount, reason, created_at) "
            "VALUES ({}, {}, 'adjust', 'active', 0, 'orphan', now()), ({}, {}, 'adjust', 'active', 0, 'orphan', now()) "
            "RETURNING id", member.account_id, missing, member.account_id, lot)]
        message = (await LedgerEntry.raw(
            "INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error, "
            "created_at) VALUES ({}, {}, 'pass_update', '{{}}', 'sent', 0, now(), '', now()) RETURNING id",
            missing, missing))[0]["id"]
        found = {(v.invariant, v.subject) for v in await verify_all()}
        assert ("every message's customer and card exist", f"notification {message}") in found
        assert ("every sale line belongs to a sale", f"sale line {line}") in found
        assert ("every ledger entry's lot is a lot of its account", f"ledger entry {entries[0]}") in found
        assert ("every ledger entry's lot is a lot of its account", f"ledger entry {entries[1]}") in found
    finally:  # the shared database stays clean for every other test's verify
        if line is not None:
            await LedgerEntry.raw("DELETE FROM sale_line WHERE id = {}", line)
        if entries:
            await LedgerEntry.raw("DELETE FROM ledger_entry WHERE id = ANY({}::bigint[])", entries)
        if message is not None:
            await LedgerEntry.raw("DELETE FROM notification WHERE id = {}", message)
    assert await verify_all() == []
