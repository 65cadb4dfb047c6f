"""The legacy import (`kopilka import`) is a bulk write of customers, cards and points: an import file must not be a
way to take someone's card, to add a contact (a sign-in route) to a customer Kopilka already has, or to mint points."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from loyalty_core import db
from tests.cli.conftest import run_kopilka
from tests.factories import Shop, make_member


def _import(src: Path, shop: Shop, tmp: Path):  # type: ignore[no-untyped-def]
    return run_kopilka("import", str(src), "--program", shop.program_code, "--report-dir", str(tmp / "reports"),
                       "--apply", env=dict(os.environ), timeout=300)


def _rejects(tmp: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (tmp / "reports").glob("*-rejects.csv"))


async def test_an_import_cannot_take_a_registered_card(shop: Shop, tmp_path: Path) -> None:
    victim = await make_member(shop, points=500)
    tag = secrets.token_hex(3)
    src = tmp_path / "x"
    src.mkdir()
    (src / "members.csv").write_text(f"legacy_id;phone\n{tag}-1;+7982{secrets.randbelow(10**7):07d}\n", encoding="utf-8")
    (src / "cards.csv").write_text(f"number;member;status\n{victim.card};{tag}-1;active\n", encoding="utf-8")
    (src / "balances.csv").write_text(f"member;points\n{tag}-1;10\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "the card number is already in Kopilka" in _rejects(tmp_path)
    card = await db.fetchrow("SELECT membership, status FROM card WHERE number = $1", victim.card)
    assert card is not None and card["membership"] == victim.membership_id and card["status"] == "active"
    account = await db.fetchrow("SELECT active FROM account WHERE id = $1", victim.account_id)
    assert account is not None and account["active"] == 500


async def test_an_import_cannot_add_a_contact_to_an_existing_customer(shop: Shop, tmp_path: Path) -> None:
    from tests.factories import make_shop

    other = await make_shop()  # the customer is a member of another program of the chain
    existing = await make_member(other)
    tag = secrets.token_hex(3)
    attacker_mail = f"{tag}@attacker.example"
    src = tmp_path / "x"
    src.mkdir()
    (src / "members.csv").write_text(f"legacy_id;phone;email\n{tag}-1;{existing.phone};{attacker_mail}\n", encoding="utf-8")
    (src / "cards.csv").write_text(f"number;member;status\n{tag}LEG1;{tag}-1;active\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    customer = await db.fetchrow("SELECT email FROM customer WHERE id = $1", existing.customer_id)
    assert customer is not None and customer["email"] is None  # no new sign-in route
    assert await db.fetchrow("SELECT 1 FROM customer WHERE email = $1", attacker_mail) is None
    # the legacy card is the customer's in this program, but pays with points only once they confirm it
    card = await db.fetchrow("SELECT c.confirm_needed, m.customer FROM card c JOIN membership m ON m.id = c.membership "
                             "WHERE c.number = $1", f"{tag}LEG1")
    assert card is not None and card["confirm_needed"] is True and card["customer"] == existing.customer_id


async def test_an_existing_member_of_the_program_is_a_conflict_not_a_second_account(shop: Shop, tmp_path: Path) -> None:
    existing = await make_member(shop, points=5)
    tag = secrets.token_hex(3)
    src = tmp_path / "x"
    src.mkdir()
    (src / "members.csv").write_text(f"legacy_id;phone\n{tag}-1;{existing.phone}\n", encoding="utf-8")
    (src / "balances.csv").write_text(f"member;points\n{tag}-1;100000\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "already a member of this program" in r.stdout
    rows = await db.fetch("SELECT id FROM membership WHERE customer = $1 AND program = $2", existing.customer_id,
                          shop.program_id)
    assert len(rows) == 1
    account = await db.fetchrow("SELECT active FROM account WHERE id = $1", existing.account_id)
    assert account is not None and account["active"] == 5


async def test_negative_fractional_and_absurd_points_are_rejected(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    src = tmp_path / "x"
    src.mkdir()
    (src / "members.csv").write_text(f"legacy_id;phone\n{tag}-1;+7983{secrets.randbelow(10**7):07d}\n", encoding="utf-8")
    bad = ["-100", "0", "12,5", "99999999999", "1e9", "NaN", "Infinity", "сто"]
    (src / "balances.csv").write_text("member;points\n" + "".join(f"{tag}-1;{p}\n" for p in bad) + f"{tag}-1;7\n",
                                      encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"| balances.csv | balances | utf-8 | ';' | {len(bad) + 1} | 1 | {len(bad)} |" in r.stdout
    assert "| total | 7 | 7 |" in r.stdout
    rejects = _rejects(tmp_path)
    assert rejects.count(",points,") == len(bad)


async def test_the_rejects_file_does_not_carry_spreadsheet_formulas(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    src = tmp_path / "x"
    src.mkdir()
    evil = src / '=HYPERLINK("evil") members.csv'
    evil.write_text(f"legacy_id;phone\n{tag}-1;+7984{secrets.randbelow(10**7):07d}\n{tag}-2;12\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    rows = [line for line in _rejects(tmp_path).splitlines()[1:] if line]
    assert rows and all(not line.lstrip('"').startswith(("=", "+", "-", "@")) for line in rows), rows


async def test_nul_bytes_undecodable_text_and_huge_fields_are_refused_not_crashed_on(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    src = tmp_path / "x"
    src.mkdir()
    phone = f"+7985{secrets.randbelow(10**7):07d}"
    (src / "members.csv").write_text(f"legacy_id;phone;name\n{tag}-1;{phone};Ann\x00a\n{tag}-2;{phone[:-1]}9;Bob\n",
                                     encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "| members.csv | members | utf-8 | ';' | 2 | 1 | 1 |" in r.stdout
    assert "a NUL character" in _rejects(tmp_path)

    # valid UTF-8 for more than the megabyte the detection reads, then a byte that is not
    (src / "members.csv").write_bytes(b"legacy_id;phone;name\n" + b"".join(
        f"{tag}-{i};;Имя\n".encode() for i in range(60000))
        + b"x-1;;\xff\xfe\n")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 1 and "set its encoding" in r.stderr and "Traceback" not in r.stderr, r.stderr

    (src / "members.csv").write_text(f"legacy_id;phone;name\n{tag}-3;;{'x' * 200_000}\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 1 and "field larger than field limit" in r.stderr and "Traceback" not in r.stderr, r.stderr


# --- delta imports and purchase history (tests/imports/test_history_and_delta.py tells the stories) ----------------


async def test_a_delta_cannot_take_a_card_registered_to_another_member(shop: Shop, tmp_path: Path) -> None:
    from tests.imports.legacy import apply, membership, phone, write

    tag = secrets.token_hex(3)
    files = {"members.csv": [{"legacy_id": f"{tag}-1", "phone": phone()}, {"legacy_id": f"{tag}-2", "phone": phone()}],
             "cards.csv": [{"number": f"{tag}A", "member": f"{tag}-1", "status": "active"},
                           {"number": f"{tag}B", "member": f"{tag}-2", "status": "active"}]}
    assert (await apply(shop, write(tmp_path / "x", files))).balanced
    victim = await make_member(shop, points=500)
    # the next export hands member 1 a card registered in Kopilka and member 2's imported card
    files["cards.csv"] = [{"number": victim.card, "member": f"{tag}-1", "status": "active"},
                          {"number": f"{tag}B", "member": f"{tag}-1", "status": "active"}]
    rec = await apply(shop, write(tmp_path / "x", files))
    assert rec.delta["cards added"] == 0
    rejected = await db.fetch("SELECT number, rejected FROM import_card WHERE run = $1 ORDER BY number", rec.run)
    assert {r["number"]: r["rejected"] for r in rejected} == {
        victim.card: "the card number is already in Kopilka", f"{tag}B": "the card number is already in Kopilka"}
    card = await db.fetchrow("SELECT membership, status FROM card WHERE number = $1", victim.card)
    assert card == (victim.membership_id, "active")
    two = await membership(shop, f"{tag}-2")
    assert await db.fetchrow("SELECT membership FROM card WHERE number = $1", f"{tag}B") == (two["id"],)


async def test_a_delta_cannot_change_a_sign_in_contact_or_hand_out_a_card_that_pays(shop: Shop, tmp_path: Path) -> None:
    from tests.imports.legacy import apply, membership, phone, write

    tag = secrets.token_hex(3)
    own = phone()
    files = {"members.csv": [{"legacy_id": f"{tag}-1", "phone": own, "email": f"{tag}@example.com"}],
             "balances.csv": [{"member": f"{tag}-1", "points": "700"}]}
    assert (await apply(shop, write(tmp_path / "x", files))).balanced
    files["members.csv"] = [{"legacy_id": f"{tag}-1", "phone": phone(), "email": f"{tag}@attacker.example"}]
    files["cards.csv"] = [{"number": f"{tag}NEW", "member": f"{tag}-1", "status": "active"}]
    assert (await apply(shop, write(tmp_path / "x", files))).balanced
    member = await membership(shop, f"{tag}-1")
    assert await db.fetchrow("SELECT phone, email FROM customer WHERE id = $1", member["customer"]) == (own, f"{tag}@example.com")
    # the new card earns, but pays with the member's points only after they confirm it
    assert await db.fetchrow("SELECT confirm_needed FROM card WHERE number = $1", f"{tag}NEW") == (True,)


async def test_imported_receipts_cannot_be_returned_or_cancelled_for_points(http, shop: Shop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from tests.imports.legacy import apply, membership, phone, write

    tag = secrets.token_hex(3)
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    files = {"members.csv": [{"legacy_id": f"{tag}-1", "phone": phone()}],
             "history.jsonl": [{"receipt": f"{tag}R", "member": f"{tag}-1", "occurred_at": when.isoformat(),
                                "store": shop.store_code, "amount": "5 000",
                                "lines": [{"sku": "X", "quantity": 1, "amount": "5 000"}]}]}
    assert (await apply(shop, write(tmp_path / "x", files))).balanced
    member = await membership(shop, f"{tag}-1")
    sale = await db.fetchrow("SELECT id, business_date FROM sale WHERE membership = $1", member["id"])
    assert sale is not None
    body = {"return_id": f"{tag}-ret", "lines": [{"line_no": 1, "quantity": 1}]}
    r = await http.post(f"/pos/v1/sales/{sale['id']}/returns", json=body, headers=shop.headers)
    assert r.status_code == 404, r.text
    r = await http.post(f"/pos/v1/sales/{sale['id']}/cancel", headers=shop.headers)
    assert r.status_code == 404, r.text
    printed = {"store": shop.store_code, "business_date": sale["business_date"].isoformat(), "receipt_id": f"{tag}R"}
    r = await http.post("/pos/v1/returns", json={"original": printed, **body}, headers=shop.headers)
    assert r.status_code == 404, r.text
    assert await db.fetchrow("SELECT count(*) n FROM ledger_entry WHERE account = $1", member["account"]) == (0,)
    assert await db.fetchrow("SELECT count(*) n FROM sale_return WHERE sale = $1", sale["id"]) == (0,)


async def test_a_delta_cannot_merge_a_separate_member_into_another_to_move_points(shop: Shop, tmp_path: Path) -> None:
    from tests.imports.legacy import apply, membership, phone, write

    tag = secrets.token_hex(3)
    first, second = phone(), phone()
    files = {"members.csv": [{"legacy_id": f"{tag}-1", "phone": first}, {"legacy_id": f"{tag}-2", "phone": second}],
             "balances.csv": [{"member": f"{tag}-1", "points": "100"}, {"member": f"{tag}-2", "points": "900"}]}
    assert (await apply(shop, write(tmp_path / "x", files))).balanced
    # the next export gives member 2 member 1's phone: the merge policy would fold 2 (and its 900 points) into 1,
    # while 2's own account keeps the 900 the first import gave it
    files["members.csv"][1]["phone"] = first
    rec = await apply(shop, write(tmp_path / "x", files))
    assert any("came in an earlier import" in reason for _, _, reason in rec.conflicts), rec.conflicts
    assert rec.balanced and rec.delta["points added"] == 0
    assert (await membership(shop, f"{tag}-1"))["active"] == 100
    assert (await membership(shop, f"{tag}-2"))["active"] == 900
    lot = await db.fetchrow("SELECT rejected FROM import_lot WHERE run = $1 AND owner = $2", rec.run, f"{tag}-2")
    assert lot == ("its member is rejected",)


async def test_a_delta_cannot_re_grant_a_consent_the_shopper_withdrew_in_kopilka(shop: Shop, tmp_path: Path) -> None:
    import datetime as dt

    from loyalty_core.campaigns.links import unsubscribe

    tag = secrets.token_hex(3)
    src = tmp_path / "x"
    src.mkdir()
    phone = f"+7986{secrets.randbelow(10**7):07d}"
    (src / "members.csv").write_text(f"legacy_id;phone;consent_sms;consent_email\n{tag}-1;{phone};1;1\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    customer = await db.fetchval("SELECT customer FROM membership WHERE program = $1 AND legacy_id = $2",
                                 shop.program_id, f"{tag}-1")
    assert await unsubscribe(customer, "sms", dt.datetime.now(dt.UTC))  # the shopper's own link
    # a later export claims the shopper granted it again, dated after their withdrawal (a forged or stale file)
    granted_at = dt.datetime.now(dt.UTC).isoformat()
    (src / "members.csv").write_text(f"legacy_id;phone;consent_sms;consent_sms_at;consent_email\n"
                                     f"{tag}-1;{phone};1;{granted_at};1\n", encoding="utf-8")
    r = _import(src, shop, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "sms consent granted in the legacy system (not applied: the shopper's choice in Kopilka stands)" in r.stdout
    latest = await db.fetch("SELECT channel, granted, source FROM consent WHERE customer = $1 "
                            "ORDER BY changed_at DESC, id DESC", customer)
    assert [tuple(x) for x in latest if x["channel"] == "sms"][0] == ("sms", False, "unsubscribe")
    assert sum(1 for x in latest if x["channel"] == "sms" and x["source"] == "import") == 1  # only the first import's
