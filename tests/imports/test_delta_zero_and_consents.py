"""A delta (a later export of the same legacy system): a balance that fell to zero takes back what the imports gave,
through the ledger writer; a consent withdrawn in the legacy system is applied and listed (a withdrawal wins over an
older grant; a file never re-grants what the shopper chose in Kopilka)."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from loyalty_core import db
from loyalty_core.campaigns.links import unsubscribe
from loyalty_core.imports import report
from loyalty_core.ledger.verify import verify_all
from loyalty_core.members.identity import ConsentIn, record_consents
from tests.factories import Shop
from tests.imports.legacy import apply, membership, phone, write


async def _consent(customer: int, channel: str) -> tuple[bool, str] | None:
    row = await db.fetchrow("SELECT granted, source FROM consent WHERE customer = $1 AND channel = $2 "
                            "ORDER BY changed_at DESC, id DESC LIMIT 1", customer, channel)
    return None if row is None else (row["granted"], row["source"])


async def test_a_balance_that_fell_to_zero_is_taken_back_through_the_ledger(shop: Shop, tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    files = {
        "members.csv": [{"legacy_id": f"{tag}-{i}", "phone": phone()} for i in (1, 2, 3)],
        "balances.csv": [{"member": f"{tag}-1", "points": "1000", "expires_at": "31.12.2099"},
                         {"member": f"{tag}-1", "points": "250"},
                         {"member": f"{tag}-2", "points": "0"}],  # a first import's 0 is not a lot
    }
    first = await apply(shop, write(tmp_path / "x", files), now)
    assert first.balanced, first
    assert await db.fetchrow("SELECT rejected FROM import_lot WHERE run = $1 AND member = $2", first.run, f"{tag}-2") == (
        "0 points: accepted only in a delta, for a member an earlier import gave a balance",)
    assert (await membership(shop, f"{tag}-1"))["active"] == 1250

    # the next export: member 1's balance is 0 now; member 3 never had an imported balance (0 means nothing); a
    # new member with 0 is refused as in a first import
    files["members.csv"].append({"legacy_id": f"{tag}-4", "phone": phone()})
    files["balances.csv"] = [{"member": f"{tag}-1", "points": "0"}, {"member": f"{tag}-3", "points": "0"},
                             {"member": f"{tag}-4", "points": "0"}]
    later = now + dt.timedelta(days=1)
    dry = await apply(shop, write(tmp_path / "x", files), later, dry=True)
    assert dry.delta["balances now zero"] == 1 and dry.delta["points taken"] == 1250
    rec = await apply(shop, write(tmp_path / "x", files), later)
    assert rec.balanced, rec
    assert "| balances now zero | 1 |" in report.markdown(rec, dry_run=False)
    rejected = {r["member"]: r["rejected"] for r in await db.fetch(
        "SELECT member, rejected FROM import_lot WHERE run = $1", rec.run)}
    assert rejected[f"{tag}-1"] is None and rejected[f"{tag}-3"] and rejected[f"{tag}-4"]
    one = await membership(shop, f"{tag}-1")
    assert one["active"] == 0
    # the difference went through the ledger writer: `import` entries out of the lots, earliest expiry first
    out = await db.fetch("SELECT e.amount, l.expires_at FROM ledger_entry e JOIN point_lot l ON l.id = e.lot "
                         "WHERE e.account = $1 AND e.reason LIKE $2 ORDER BY e.id", one["account"],
                         f"import {rec.run[:12]} delta%")
    assert sorted(r["amount"] for r in out) == [-1000, -250]
    assert await db.fetchrow("SELECT SUM(remaining) FROM point_lot WHERE account = $1", one["account"]) == (0,)
    # again: nothing more is taken
    assert (await apply(shop, write(tmp_path / "x", files), later)).balanced
    assert (await membership(shop, f"{tag}-1"))["active"] == 0
    ours = {f"account {one['account']}"}
    assert not [v for v in await verify_all(limit=100000) if v.subject in ours]


async def test_a_delta_applies_legacy_consent_withdrawals_and_never_overrides_the_shopper(shop: Shop,
                                                                                         tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    now = dt.datetime.now(dt.UTC)
    ago = lambda **kw: (now - dt.timedelta(**kw)).isoformat()  # noqa: E731
    files = {"members.csv": [
        # A: granted both in the legacy system a month ago
        {"legacy_id": f"{tag}-A", "phone": phone(), "email": f"{tag}a@example.com", "consent_sms": "1",
         "consent_sms_at": ago(days=30), "consent_email": "1", "consent_email_at": ago(days=30)},
        # B: granted; the shopper will withdraw in Kopilka (an unsubscribe link)
        {"legacy_id": f"{tag}-B", "phone": phone(), "consent_sms": "1", "consent_sms_at": ago(days=30)},
        # D: granted; the shopper will grant again in Kopilka (the app) after the legacy withdrawal
        {"legacy_id": f"{tag}-D", "phone": phone(), "consent_sms": "1", "consent_sms_at": ago(days=30)},
        # E: withdrawn in the legacy system; it will grant there later (never chose in Kopilka)
        {"legacy_id": f"{tag}-E", "phone": phone(), "consent_sms": "0", "consent_sms_at": ago(days=30)},
    ]}
    assert (await apply(shop, write(tmp_path / "x", files), now)).balanced
    a, b, d, e = [await membership(shop, f"{tag}-{x}") for x in "ABDE"]
    assert await unsubscribe(b["customer"], "sms", now)
    await record_consents(d["customer"], [ConsentIn(channel="sms", granted=True)], "app", now)

    later = now + dt.timedelta(days=1)
    rows = files["members.csv"]
    rows[0].update(consent_sms="0", consent_sms_at=ago(days=1), consent_email="нет", consent_email_at="")  # both withdrawn
    rows[1].update(consent_sms="1", consent_sms_at=(later - dt.timedelta(minutes=1)).isoformat())  # "granted" after
    rows[2].update(consent_sms="0", consent_sms_at=ago(days=2))  # withdrawn before the shopper's grant in Kopilka
    rows[3].update(consent_sms="1", consent_sms_at=ago(hours=1))
    dry = await apply(shop, write(tmp_path / "x", files), later, dry=True)
    assert (dry.delta["consents withdrawn"], dry.delta["consents granted"], dry.delta["consent changes not applied"]) \
        == (2, 1, 2), dry.delta
    assert await _consent(a["customer"], "sms") == (True, "import")  # a dry run writes nothing

    rec = await apply(shop, write(tmp_path / "x", files), later)
    assert rec.balanced, rec
    changes = "\n".join(rec.changes)
    assert f"{tag}-A: sms consent withdrawn, e-mail consent withdrawn" in changes, changes
    assert f"{tag}-B: sms consent granted in the legacy system (not applied: the shopper's choice in Kopilka stands)" \
        in changes
    assert f"{tag}-D: sms consent withdrawn in the legacy system on {(now - dt.timedelta(days=2)):%Y-%m-%d} " \
           f"(not applied: granted in Kopilka on {now:%Y-%m-%d} after it)" in changes, changes
    assert "| consents withdrawn | 2 |" in report.markdown(rec, dry_run=False)
    assert await _consent(a["customer"], "sms") == (False, "import")
    assert await _consent(a["customer"], "email") == (False, "import")
    assert await _consent(b["customer"], "sms") == (False, "unsubscribe")  # the shopper's withdrawal stands
    assert await _consent(d["customer"], "sms") == (True, "app")  # the shopper's newer grant stands
    assert await _consent(e["customer"], "sms") == (True, "import")  # never chosen in Kopilka: the legacy grant
    withdrawn = await db.fetchrow("SELECT changed_at FROM consent WHERE customer = $1 AND channel = 'sms' "
                                  "ORDER BY changed_at DESC, id DESC LIMIT 1", a["customer"])
    assert withdrawn is not None and abs(withdrawn["changed_at"] - (now - dt.timedelta(days=1))) < dt.timedelta(seconds=1)
    # the same export again: nothing changes (the consents are what the file says, or the shopper's)
    count = await db.fetchrow("SELECT count(*) FROM consent WHERE customer = ANY($1::int[])",
                              [a["customer"], b["customer"], d["customer"], e["customer"]])
    rows[0]["name"] = "Анна"  # (other files: a new run)
    again = await apply(shop, write(tmp_path / "x", files), later + dt.timedelta(hours=1))
    assert again.delta["consents withdrawn"] == 0 and again.delta["consents granted"] == 0
    assert await db.fetchrow("SELECT count(*) FROM consent WHERE customer = ANY($1::int[])",
                             [a["customer"], b["customer"], d["customer"], e["customer"]]) == count
