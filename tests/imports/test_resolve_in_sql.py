"""Who is who across the files is resolved in SQL over the staged rows (imports/run.py `resolve`): the merge policy is
sequential (the first row with a phone or e-mail is the customer; a merged row holds none of its contacts), so the
set-based rounds must give what reading the rows one by one gives."""

from __future__ import annotations

import secrets
from pathlib import Path

from loyalty_core import db
from tests.factories import Shop
from tests.imports.legacy import apply, phone, write


async def test_merges_chains_conflicts_and_repeats_follow_the_file_order(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    p1, p2, p3 = phone(), phone(), phone()
    e = lambda n: f"{tag}-{n}@example.com"  # noqa: E731
    files = {
        "members.csv": [
            {"legacy_id": f"{tag}-1", "phone": p1, "email": e(1)},
            {"legacy_id": f"{tag}-2", "phone": p2, "email": e(1)},  # merged into 1 by e-mail: p2 stays nobody's
            {"legacy_id": f"{tag}-3", "phone": p2, "email": e(3)},  # so p2 makes a customer here
            {"legacy_id": f"{tag}-4", "phone": p3, "email": e(4)},
            {"legacy_id": f"{tag}-5", "phone": p1, "email": e(4)},  # phone 1's, e-mail 4's: a conflict
            {"legacy_id": f"{tag}-6", "phone": p3, "email": e(6)},  # merged into 4 by phone
            {"legacy_id": f"{tag}-1", "phone": phone()},  # a legacy id again
        ],
        "cards.csv": [{"number": f"{tag}A", "member": f"{tag}-2", "status": "active"},
                      {"number": f"{tag}B", "member": f"{tag}-5", "status": "active"},
                      {"number": f"{tag}C", "member": "nobody", "status": "active"},
                      {"number": f"{tag}C", "member": f"{tag}-6", "status": "active"}],  # the first was refused
        "cards2.csv": [{"number": f"{tag}A", "member": f"{tag}-3", "status": "active"}],  # twice in the files
        "balances.csv": [{"member": f"{tag}-2", "points": "10"}, {"member": f"{tag}-6", "points": "5"},
                         {"member": f"{tag}-3", "points": "7"}],
    }
    rec = await apply(shop, write(tmp_path / "x", files))
    assert rec.balanced, rec
    assert rec.merges == [(f"{tag}-2", f"{tag}-1"), (f"{tag}-6", f"{tag}-4")]
    assert [(line, reason) for _, line, reason in rec.conflicts] == [
        (6, f"conflict: the phone is member {tag}-1's, the e-mail member {tag}-4's; a human decides")]
    rejects = {(r["file"], r["line"]): r["reason"] for r in await db.fetch(
        "SELECT file, line, reason FROM import_reject WHERE run = $1 AND action = 'rejected'", rec.run)}
    assert rejects == {
        ("members.csv", 6): f"conflict: the phone is member {tag}-1's, the e-mail member {tag}-4's; a human decides",
        ("members.csv", 8): f"duplicate legacy id {tag}-1",
        ("cards.csv", 3): f"unknown member '{tag}-5'",
        ("cards.csv", 4): "unknown member 'nobody'",
        ("cards2.csv", 2): f"duplicate card {tag}A",
    }
    owners = {r["legacy_id"]: r["phone"] for r in await db.fetch(
        "SELECT m.legacy_id, c.phone FROM import_member m JOIN customer c ON c.id = m.customer WHERE m.run = $1", rec.run)}
    assert owners == {f"{tag}-1": p1, f"{tag}-3": p2, f"{tag}-4": p3}
    cards = {r["number"]: r["legacy_id"] for r in await db.fetch(
        "SELECT k.number, ms.legacy_id FROM card k JOIN membership ms ON ms.id = k.membership WHERE k.number LIKE $1",
        f"{tag}%")}
    assert cards == {f"{tag}A": f"{tag}-1", f"{tag}C": f"{tag}-4"}  # a merged member's card is its customer's
    points = {r["legacy_id"]: r["active"] for r in await db.fetch(
        "SELECT ms.legacy_id, a.active FROM membership ms JOIN account a ON a.membership = ms.id "
        "WHERE ms.program = $1 AND ms.legacy_id LIKE $2", shop.program_id, f"{tag}-%")}
    assert points == {f"{tag}-1": 10, f"{tag}-3": 7, f"{tag}-4": 5}
