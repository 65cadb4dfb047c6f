"""Purchase history and delta imports.

History: legacy receipts become sales marked as imported (channel 'import'): they feed the tier's spend (compared with
the tiers file in the report), the purchase counters and analytics, never move points, and are written exactly once.
Delta: a later export of the same legacy system updates the members an earlier import brought (keyed by legacy id)
instead of duplicating them, and moves a balance by the difference only, through the ledger writer."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from types import SimpleNamespace

import msgspec

from loyalty_core import db
from loyalty_core.engine.program import CounterDef
from loyalty_core.imports import report
from loyalty_core.ledger.verify import verify_all
from loyalty_core.till import pricing, sales
from loyalty_core.till.types import SaleIn
from tests.factories import Shop, sale_body
from tests.imports.legacy import apply, membership, phone, write


async def _ledger_holds_for(accounts: list[int]) -> None:
    ours = {f"account {a}" for a in accounts}
    broken = [v for v in await verify_all(limit=100000) if v.subject in ours]
    assert not broken, broken


async def test_history_feeds_the_tier_counters_and_analytics_and_never_points(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    ago = lambda **kw: (now - dt.timedelta(**kw)).isoformat()  # noqa: E731
    receipts = [
        # at a store Kopilka has (same code), with lines
        {"receipt": f"{tag}-A", "member": f"{tag}-1", "occurred_at": ago(days=30), "store": shop.store_code,
         "amount": "60 000,00", "lines": [{"sku": "CHEESE-1", "quantity": 2, "price": "25 000", "amount": "50 000"},
                                          {"sku": "MILK", "quantity": "1,5", "amount": 10000}]},
        # at a store Kopilka does not know, without lines
        {"receipt": f"{tag}-B", "member": f"{tag}-1", "occurred_at": ago(days=40), "store": "OLD-7", "amount": "50 000"},
        # older than the tier's window: history, not tier spend
        {"receipt": f"{tag}-C", "member": f"{tag}-1", "occurred_at": ago(days=400), "store": "OLD-7", "amount": "90 000"},
        # the same receipt twice in the file: once
        {"receipt": f"{tag}-C", "member": f"{tag}-1", "occurred_at": ago(days=400), "store": "OLD-7", "amount": "90 000"},
        {"receipt": f"{tag}-D", "member": "nobody", "occurred_at": ago(days=1), "store": "OLD-7", "amount": "10"},
    ] + [{"receipt": f"{tag}-N{i}", "member": f"{tag}-2", "occurred_at": ago(minutes=10 + i), "store": "OLD-7",
          "amount": "100"} for i in range(4)]
    files = {
        "members.csv": [{"legacy_id": f"{tag}-1", "phone": phone()}, {"legacy_id": f"{tag}-2", "phone": phone()}],
        "tiers.csv": [{"member": f"{tag}-1", "tier": "silver", "spend": "40 000"}],
        "history.jsonl": receipts,
    }
    rec = await apply(shop, write(tmp_path / "x", files), now)
    assert rec.balanced, rec
    assert rec.history["receipts written"] == 7 and rec.history["already in Kopilka (not written again)"] == 0
    # the comparison: the legacy tier vs the one computed from the history (60 000 + 50 000 RUB: gold)
    assert rec.tier_vs_history == [f"{tag}-1: legacy silver, from history gold (spend 110000.00)"]
    assert "## Purchase history" in report.markdown(rec, dry_run=False)
    one = await membership(shop, f"{tag}-1")
    assert one["tier"] == "gold" and one["tier_spend"] == 11_000_000 and one["carried_spend"] == 0
    assert one["purchases_count"] == 3 and one["active"] == one["pending"] == 0
    sold = await db.fetch("SELECT s.id, s.channel, s.accrued_points, s.earning_spend, st.code store, t.code till, "
                          "(SELECT count(*) FROM sale_line l WHERE l.sale = s.id) lines, "
                          "(SELECT count(*) FROM ledger_entry e WHERE e.sale = s.id) entries FROM sale s "
                          "JOIN store st ON st.id = s.store JOIN till t ON t.id = s.till WHERE s.membership = $1 "
                          "ORDER BY s.occurred_at DESC", one["id"])
    assert [(r["store"], r["till"], r["lines"]) for r in sold] == [
        (shop.store_code, "import", 2), (f"legacy-{shop.program_code}", "import", 1), (f"legacy-{shop.program_code}", "import", 1)]
    assert all(r["channel"] == "import" and r["accrued_points"] == 0 and r["entries"] == 0 for r in sold)
    # four purchases this month before the next one: the engine's "every 5th purchase" counter sees them
    two = await membership(shop, f"{tag}-2")
    program = SimpleNamespace(settings=SimpleNamespace(counters=[CounterDef(name="month", period="month")]))
    counted = await pricing.period_counters(two["id"], program, now, "UTC")
    assert counted == {"month": 4} or now.day == 1  # (on the 1st some of them fell in the previous month)
    assert two["purchases_count"] == 4

    # a later export repeats the history: nothing is written twice (legacy receipt id per store, exactly once)
    files["members.csv"][0]["name"] = "Changed"
    again = await apply(shop, write(tmp_path / "x", files), now + dt.timedelta(hours=1))
    assert again.run != rec.run and again.history["receipts written"] == 0
    assert again.history["already in Kopilka (not written again)"] == 7
    assert await db.fetchrow("SELECT count(*) n FROM sale WHERE membership = $1", one["id"]) == (3,)
    await _ledger_holds_for([one["account"], two["account"]])


async def _buy(shop: Shop, card: str, rub: int, redeem: int, when: dt.datetime) -> None:
    till = sales.Till(till_id=shop.till_id, store_id=shop.store_id)
    body = msgspec.convert(sale_body(shop, [("bread", 1, rub * 100)], card=card, redeem=redeem, when=when), SaleIn)
    await sales.confirm_sale(body, till, when, offline=True)


async def test_a_delta_updates_members_cards_and_balances_by_the_difference(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    first_phone = phone()
    files = {
        "members.csv": [{"legacy_id": f"{tag}-1", "phone": first_phone, "name": "Анна"},
                        {"legacy_id": f"{tag}-2", "phone": phone(), "name": "Борис"}],
        "cards.csv": [{"number": f"{tag}C1", "member": f"{tag}-1", "status": "active"},
                      {"number": f"{tag}C2", "member": f"{tag}-2", "status": "active"}],
        "balances.csv": [{"member": f"{tag}-1", "points": "1000", "expires_at": "31.12.2099"},
                         {"member": f"{tag}-2", "points": "300"}],
    }
    assert (await apply(shop, write(tmp_path / "x", files), now)).balanced
    one = await membership(shop, f"{tag}-1")
    await _buy(shop, f"{tag}C1", 1000, 100, now + dt.timedelta(minutes=1))  # spends 100 points in Kopilka meanwhile
    spent = await membership(shop, f"{tag}-1")

    # the next export: Анна's name and balance changed, her card was blocked and a new one issued, her phone changed;
    # Борис spent points in the legacy system; a new member joined
    files["members.csv"][0].update(name="Анна К.", phone=phone())
    files["members.csv"].append({"legacy_id": f"{tag}-3", "phone": phone()})
    files["cards.csv"] = [{"number": f"{tag}C1", "member": f"{tag}-1", "status": "blocked"},
                          {"number": f"{tag}C1B", "member": f"{tag}-1", "status": "active"},
                          {"number": f"{tag}C2", "member": f"{tag}-2", "status": "active"}]
    files["balances.csv"] = [{"member": f"{tag}-1", "points": "1500", "expires_at": "31.12.2099"},
                             {"member": f"{tag}-2", "points": "120"}, {"member": f"{tag}-3", "points": "50"}]
    later = now + dt.timedelta(days=1)
    dry = await apply(shop, write(tmp_path / "x", files), later, dry=True)
    assert dry.delta["known"] == 2 and dry.delta["balances changed"] == 2
    assert dry.delta["points added"] == 500 and dry.delta["points taken"] == 180
    assert any(c.startswith(f"{tag}-1: name, phone (not applied") for c in dry.changes), dry.changes

    rec = await apply(shop, write(tmp_path / "x", files), later)
    assert rec.balanced, rec
    text = report.markdown(rec, dry_run=False)
    assert "## Delta" in text and "| points added | 500 |" in text and f"card {tag}C1 ({tag}-1): blocked" in text
    assert rec.delta["cards added"] == 1 and rec.delta["cards blocked"] == 1 and rec.delta["cards unchanged"] == 1
    assert await db.fetchrow("SELECT count(*) n FROM membership WHERE program = $1 AND legacy_id LIKE $2",
                             shop.program_id, f"{tag}-%") == (3,)  # updated, not duplicated
    after = await membership(shop, f"{tag}-1")
    assert after["id"] == one["id"] and after["active"] == spent["active"] + 500  # only the difference
    customer = await db.fetchrow("SELECT name, phone FROM customer WHERE id = $1", after["customer"])
    assert customer == ("Анна К.", first_phone)  # the name follows; a contact (a sign-in route) never does
    cards = {r["number"]: (r["status"], r["confirm_needed"]) for r in await db.fetch(
        "SELECT number, status, confirm_needed FROM card WHERE membership = $1", after["id"])}
    assert cards[f"{tag}C1"][0] == "blocked" and cards[f"{tag}C1B"] == ("active", True)
    two = await membership(shop, f"{tag}-2")
    assert two["active"] == 120
    posted = await db.fetch("SELECT kind, amount FROM ledger_entry WHERE account = $1 AND reason LIKE $2 ORDER BY id",
                            after["account"], f"import {rec.run[:12]} delta%")
    assert [tuple(r) for r in posted] == [("import", 500)]
    # the same delta again changes nothing; a third export posts only its own difference
    assert (await apply(shop, write(tmp_path / "x", files), later)).balanced
    assert (await membership(shop, f"{tag}-1"))["active"] == after["active"]
    files["balances.csv"] = [{"member": f"{tag}-1", "points": "1400", "expires_at": "31.12.2099"}]
    third = await apply(shop, write(tmp_path / "x", files), later + dt.timedelta(days=1))
    assert third.balanced and third.delta["points taken"] == 100
    assert (await membership(shop, f"{tag}-1"))["active"] == after["active"] - 100
    await _ledger_holds_for([after["account"], two["account"]])
