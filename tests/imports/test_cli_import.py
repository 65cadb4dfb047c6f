"""`kopilka import` end to end: the real CLI as a subprocess on small generated dirty exports, against the test
database; then the till and the shopper's app over real HTTP."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from loyalty_core import db
from loyalty_core.ledger.verify import verify_all
from tests.cli.conftest import kopilka_argv, run_kopilka
from tests.factories import Shop
from tests.identity.shopper import Shopper
from tests.imports.generator import Expected, generate

ROOT = Path(__file__).resolve().parents[2]


def _import(tmp: Path, shop: Shop, *extra: str, files: Path | None = None) -> subprocess.CompletedProcess[str]:
    files = files or tmp / "export"
    args = ["import", str(files), "--program", shop.program_code, "--report-dir", str(tmp / "reports")]
    if (files / "mapping.toml").exists():
        args += ["--mapping", str(files / "mapping.toml")]
    return run_kopilka(*args, *extra, env=dict(os.environ), timeout=300)


async def _run_accounts(run_prefix: str) -> list[int]:
    rows = await db.fetch("SELECT account FROM import_member WHERE left(run, 12) = $1 AND account IS NOT NULL", run_prefix)
    return [r["account"] for r in rows]


def _run_of(out: str) -> str:
    line = next(x for x in out.splitlines() if x.startswith("- run id:"))
    return line.split("`")[1][:12]


async def _totals(run: str) -> tuple[int, int, int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM import_member WHERE left(run, 12) = $1 AND customer IS NOT NULL) customers, "
        "(SELECT count(*) FROM card c JOIN import_member m ON m.membership = c.membership AND left(m.run, 12) = $1) cards, "
        "(SELECT count(*) FROM ledger_entry e JOIN import_member m ON m.account = e.account AND left(m.run, 12) = $1) entries, "
        "(SELECT COALESCE(SUM(a.active + a.pending), 0) FROM account a JOIN import_member m ON m.account = a.id "
        "AND left(m.run, 12) = $1) points", run)
    assert row is not None
    return row["customers"], row["cards"], row["entries"], int(row["points"])


async def _ledger_holds_for(accounts: list[int]) -> None:
    ours = {f"account {a}" for a in accounts}
    broken = [v for v in await verify_all(limit=100000) if v.subject in ours]
    assert not broken, broken


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, Expected]:
    exp = generate(tmp_path / "export", 120, seed=secrets.randbelow(10**6), tag=secrets.token_hex(3))
    return tmp_path, exp


async def test_dry_run_writes_nothing_then_apply_balances_to_the_point(shop: Shop, export: tuple[Path, Expected]) -> None:
    tmp, exp = export
    dry = _import(tmp, shop)
    assert dry.returncode == 0, dry.stderr + dry.stdout
    assert "DRY RUN" in dry.stdout and "cp1251" in dry.stdout and "';'" in dry.stdout
    run = _run_of(dry.stdout)
    assert await _totals(run) == (0, 0, 0, 0)  # nothing written but the staging tables
    rejects = (tmp / "reports" / f"import-{run}-rejects.csv").read_text(encoding="utf-8").splitlines()
    assert rejects[0] == "file,line,field,reason,action"
    if exp.rejected_lots:
        assert any(r.startswith("balances.csv,") and ",points," in r or ",member," in r for r in rejects[1:])

    applied = _import(tmp, shop, "--apply")
    assert applied.returncode == 0, applied.stderr + applied.stdout
    assert "BALANCED" in applied.stdout
    report = (tmp / "reports" / f"import-{run}.md").read_text(encoding="utf-8")
    assert f"| total | {exp.points} | {exp.points} |" in report
    customers, cards, entries, points = await _totals(run)
    assert points == exp.points and customers == exp.members - exp.merged
    await _ledger_holds_for(await _run_accounts(run))


async def test_the_same_files_again_change_nothing(shop: Shop, export: tuple[Path, Expected]) -> None:
    tmp, exp = export
    first = _import(tmp, shop, "--apply")
    assert first.returncode == 0, first.stderr + first.stdout
    run = _run_of(first.stdout)
    before = await _totals(run)
    again = _import(tmp, shop, "--apply")
    assert again.returncode == 0, again.stderr
    assert "applied before: nothing changed" in again.stderr
    assert await _totals(run) == before
    assert before[3] == exp.points


async def test_kill_9_mid_apply_then_the_same_command_finishes_with_the_same_totals(shop: Shop,
                                                                                  export: tuple[Path, Expected]) -> None:
    tmp, exp = export
    args = [*kopilka_argv(), "import", str(tmp / "export"), "--program", shop.program_code, "--mapping",
            str(tmp / "export" / "mapping.toml"), "--report-dir", str(tmp / "reports"), "--apply"]
    proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        run = ""
        for line in proc.stderr:  # the CLI's own progress line: the members phase is committed, the next is running
            if line.startswith("import: run "):
                run = line.split()[2]
            if line.startswith("import: members applied"):
                break
        else:
            pytest.fail(f"the import ended without applying: {proc.wait()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    status = await db.fetchrow("SELECT status, phases FROM import_run WHERE left(id, 12) = $1", run)
    assert status is not None and status["status"] != "applied" and list(status["phases"])[:1] == ["members"]
    in_flight = [p for p in ("cards", "lots", "receipts", "tiers", "audit") if p not in status["phases"]]

    resumed = _import(tmp, shop, "--apply")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "import: members applied" not in resumed.stderr
    assert all(f"import: {p} applied" in resumed.stderr for p in in_flight), resumed.stderr
    run = _run_of(resumed.stdout)
    customers, _, _, points = await _totals(run)
    assert points == exp.points and customers == exp.members - exp.merged
    await _ledger_holds_for(await _run_accounts(run))


async def test_the_exit_code_says_when_the_database_no_longer_matches_the_files(shop: Shop,
                                                                               export: tuple[Path, Expected]) -> None:
    tmp, _ = export
    first = _import(tmp, shop, "--apply")
    assert first.returncode == 0, first.stderr + first.stdout
    run = _run_of(first.stdout)
    entry = await db.fetchrow("SELECT e.id FROM ledger_entry e JOIN import_member m ON m.account = e.account "
                              "AND left(m.run, 12) = $1 WHERE e.kind = 'import' LIMIT 1", run)
    assert entry is not None
    await db.fetch("UPDATE ledger_entry SET amount = amount - 1 WHERE id = $1", entry["id"])  # a point gone missing
    try:
        again = _import(tmp, shop, "--apply")
        assert again.returncode == 1, again.stdout
        assert "NOT BALANCED" in again.stdout and "Members that differ" in again.stdout
    finally:
        await db.fetch("UPDATE ledger_entry SET amount = amount + 1 WHERE id = $1", entry["id"])


async def test_after_the_import_tills_identify_legacy_numbers_and_members_sign_in_with_their_phone(
    http: httpx.AsyncClient, shop: Shop, export: tuple[Path, Expected]
) -> None:
    tmp, exp = export
    applied = _import(tmp, shop, "--apply")
    assert applied.returncode == 0, applied.stderr + applied.stdout
    number, points = next((n, p) for n, p in exp.legacy_cards.items() if not n.isdigit() and p)  # e.g. "…K-000012"
    active = await db.fetchrow("SELECT status FROM card WHERE number = $1", number)
    assert active is not None
    r = await http.post("/pos/v1/identify", json={"scan": number}, headers=shop.headers)
    if active["status"] == "active":
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["balance"]["active"] + body["balance"]["pending"] == points
    else:
        assert r.status_code == 409 and r.json()["type"].endswith("/card-blocked")

    phone, expected = next((ph, p) for ph, p in exp.phones.items() if p)
    shopper = Shopper(http=http, to=phone, program=shop.program_code)
    await shopper.log_in()
    balance = (await shopper.get("/balance")).json()
    assert balance["active"] + balance["pending"] == expected, balance
    # every imported active lot has its expiry (from the file, or the program's rule)
    assert sum(e["points"] for e in balance["expiring"]) == balance["active"], balance
    # a member whose legacy tier came with spend sees that tier and spend
    tiered = await db.fetchrow(
        "SELECT c.phone, t.code, ms.tier_spend FROM import_member m JOIN customer c ON c.id = m.customer "
        "JOIN membership ms ON ms.id = m.membership JOIN tier t ON t.id = ms.tier "
        "WHERE left(m.run, 12) = $1 AND ms.tier_spend > 0 AND c.phone IS NOT NULL LIMIT 1", _run_of(applied.stdout))
    assert tiered is not None
    member = Shopper(http=http, to=tiered["phone"], program=shop.program_code)
    await member.log_in()
    tier = (await member.get("/tier")).json()
    assert tier["current"]["code"] == tiered["code"] and tier["spend"] == tiered["tier_spend"], tier


async def test_json_lines_and_utf8_comma_csv_with_kopilkas_own_names_need_no_mapping(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    src = tmp_path / "own"
    src.mkdir()
    phone = "+7981" + f"{secrets.randbelow(10**7):07d}"
    (src / "members.jsonl").write_text(
        json.dumps({"legacy_id": f"{tag}-1", "phone": phone, "name": "Вера", "registered_at": "2020-01-02"}) + "\n"
        + "{broken\n", encoding="utf-8")
    (src / "cards.csv").write_text(f"number,member,status\n{tag}CARD1,{tag}-1,active\n", encoding="utf-8")
    (src / "balances.csv").write_text(f"member,points,expires_at\n{tag}-1,\"1 234\",31.12.2099\n", encoding="utf-8")
    r = _import(tmp_path, shop, "--apply", files=src)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "| balances.csv | balances | utf-8 | ',' | 1 | 1 | 0 |" in r.stdout
    assert "| members.jsonl | members | utf-8 | '' | 2 | 1 | 1 |" in r.stdout
    assert "| total | 1234 | 1234 |" in r.stdout
    lot = await db.fetchrow("SELECT p.expires_at FROM point_lot p JOIN card c ON true JOIN account a ON a.id = p.account "
                            "AND a.membership = c.membership WHERE c.number = $1", f"{tag}CARD1")
    assert lot is not None and lot["expires_at"].date().isoformat() in ("2099-12-31", "2100-01-01")


def test_suggest_mapping_names_the_russian_columns(tmp_path: Path) -> None:
    generate(tmp_path / "export", 5, seed=1, tag="ee01")
    (tmp_path / "export" / "mapping.toml").unlink()
    r = run_kopilka("import", str(tmp_path / "export"), "--suggest-mapping")
    assert r.returncode == 0, r.stderr
    assert 'number = "Номер карты"' in r.stdout and 'points = "Остаток баллов"' in r.stdout
    assert 'expires_at = "Дата сгорания"' in r.stdout and 'phone = "Телефон"' in r.stdout
