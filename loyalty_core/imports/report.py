"""The reconciliation report of an import run: what the files held, what was accepted and rejected, and what the
database holds after the apply, point for point (a finance team signs it). Read from the staging tables and the
ledger, so the report of a resumed or repeated run is the same as the first one's."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from loyalty_core import db

TABLES = {"members": "import_member", "cards": "import_card", "balances": "import_lot", "tiers": "import_tier",
          "history": "import_receipt"}
_NEW = "(SELECT legacy_id FROM import_member WHERE run = $1 AND NOT known)"  # members this run creates
# members whose tier comes from the tiers file: not from history, and (a delta) only when the file names one
_TIER_FROM_FILE = ("NOT EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = m.run AND r.member = m.legacy_id "
                   "AND r.rejected IS NULL) AND (NOT m.known OR EXISTS (SELECT 1 FROM import_tier x WHERE x.run = m.run "
                   "AND x.member = m.legacy_id AND x.rejected IS NULL))")


@dataclass
class FileLine:
    name: str
    kind: str
    encoding: str
    delimiter: str
    read: int
    accepted: int
    rejected: int


@dataclass
class Reconciliation:
    run: str
    status: str
    phases: list[str]
    default_rule: str
    files: list[FileLine] = field(default_factory=list)
    points_files: dict[str, int] = field(default_factory=dict)  # state -> points accepted
    points_db: dict[str, int] = field(default_factory=dict)  # bucket -> points the ledger holds from this run
    by_rule: int = 0  # lots without dates, given the program's rule
    tiers_files: dict[str, int] = field(default_factory=dict)
    tiers_db: dict[str, int] = field(default_factory=dict)
    checksum_files: str = ""
    checksum_db: str = ""
    mismatched: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    merges: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, int, str]] = field(default_factory=list)
    # a delta (members an earlier import brought): what changed
    delta: dict[str, int] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    # purchase history: receipts written / already in Kopilka; the tiers file vs the tier computed from history
    history: dict[str, int] = field(default_factory=dict)
    tier_vs_history: list[str] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return self.status == "applied"

    @property
    def balanced(self) -> bool:
        """Everything accepted is in the database, to the point (and every row read is accepted or rejected)."""
        rows_ok = all(f.read == f.accepted + f.rejected for f in self.files)
        return (self.applied and rows_ok and self.points_files == self.points_db
                and self.checksum_files == self.checksum_db and self.tiers_files == self.tiers_db and not self.mismatched)


_PER_MEMBER_FILES = (
    "SELECT m.legacy_id, COALESCE(SUM(l.points) FILTER (WHERE l.state = 'active'), 0) act, "
    "COALESCE(SUM(l.points) FILTER (WHERE l.state = 'pending'), 0) pen FROM import_member m "
    "JOIN import_lot l ON l.run = m.run AND l.member = m.legacy_id AND l.rejected IS NULL "
    "WHERE m.run = $1 AND m.rejected IS NULL AND m.merged_into IS NULL AND NOT m.known GROUP BY m.legacy_id"
)
_PER_MEMBER_DB = (
    "SELECT m.legacy_id, COALESCE(SUM(e.amount) FILTER (WHERE e.bucket = 'active'), 0) act, "
    "COALESCE(SUM(e.amount) FILTER (WHERE e.bucket = 'pending'), 0) pen FROM import_member m "
    "JOIN ledger_entry e ON e.account = m.account AND e.kind = 'import' AND e.reason LIKE 'import ' || left($1, 12) || ' %' "
    "WHERE m.run = $1 AND m.account IS NOT NULL AND NOT m.known GROUP BY m.legacy_id"
)
# a known member's legacy balance in this run's files vs everything the imports posted to their account (any run)
_DELTA_BALANCES = (
    "SELECT m.legacy_id, f.points, COALESCE((SELECT SUM(e.amount) FROM ledger_entry e WHERE e.account = m.account "
    "AND e.kind = 'import'), 0) posted, COALESCE((SELECT SUM(e.amount) FROM ledger_entry e WHERE e.account = m.account "
    "AND e.kind = 'import' AND e.reason LIKE 'import ' || left($1, 12) || ' %'), 0) this_run FROM import_member m "
    "JOIN (SELECT member, SUM(points) points FROM import_lot WHERE run = $1 AND rejected IS NULL GROUP BY member) f "
    "ON f.member = m.legacy_id WHERE m.run = $1 AND m.known"
)
_DIGEST = "SELECT md5(COALESCE(string_agg(legacy_id || ':' || act || ':' || pen, ',' ORDER BY legacy_id), '')) FROM ({q}) x"


async def reconcile(run: str) -> Reconciliation:
    head = await db.fetchrow("SELECT status, phases, default_rule, program FROM import_run WHERE id = $1", run)
    assert head is not None
    rec = Reconciliation(run=run, status=head["status"], phases=list(head["phases"]), default_rule=head["default_rule"])
    for f in await db.fetch("SELECT name, kind, encoding, delimiter, rows_read FROM import_file WHERE run = $1 ORDER BY "
                            "array_position(ARRAY['members','cards','balances','tiers','history']::varchar[], kind), name", run):
        accepted = await db.fetchrow(
            f"SELECT count(*) FILTER (WHERE rejected IS NULL) ok, count(*) FILTER (WHERE rejected IS NOT NULL) bad "
            f"FROM {TABLES[f['kind']]} WHERE run = $1 AND file = $2", run, f["name"])
        python_rejected = await db.fetchrow(
            "SELECT count(DISTINCT line) n FROM import_reject WHERE run = $1 AND file = $2 AND action = 'rejected'", run, f["name"])
        rec.files.append(FileLine(f["name"], f["kind"], f["encoding"], f["delimiter"], f["rows_read"], accepted["ok"],  # type: ignore[index]
                                  accepted["bad"] + python_rejected["n"]))  # type: ignore[index]
    for r in await db.fetch("SELECT state, SUM(points) p, count(*) FILTER (WHERE by_rule) r FROM import_lot "
                            f"WHERE run = $1 AND rejected IS NULL AND member IN {_NEW} GROUP BY state", run):
        rec.points_files[r["state"]] = int(r["p"])
        rec.by_rule += r["r"]
    for r in await db.fetch(
        "SELECT e.bucket, SUM(e.amount) p FROM import_member m JOIN ledger_entry e ON e.account = m.account "
        "AND e.kind = 'import' AND e.reason LIKE 'import ' || left($1, 12) || ' %' WHERE m.run = $1 AND NOT m.known "
        "GROUP BY e.bucket", run,
    ):
        rec.points_db[r["bucket"]] = int(r["p"])
    if not rec.applied:
        rec.points_db = {}
    # members per tier: from the files (the best tier of a member's rows, else the program's first) and the database
    for r in await db.fetch(
        "SELECT COALESCE(best.code, (SELECT code FROM tier WHERE program = $2 ORDER BY rank, id LIMIT 1)) code, count(*) n "
        "FROM import_member m LEFT JOIN (SELECT DISTINCT ON (x.member) x.member, tr.code FROM import_tier x "
        "JOIN tier tr ON tr.program = $2 AND tr.code = x.tier WHERE x.run = $1 AND x.rejected IS NULL "
        "ORDER BY x.member, tr.rank DESC) best ON best.member = m.legacy_id "
        f"WHERE m.run = $1 AND m.rejected IS NULL AND m.merged_into IS NULL AND {_TIER_FROM_FILE} GROUP BY 1 ORDER BY 1",
        run, head["program"],
    ):
        rec.tiers_files[r["code"]] = r["n"]
    if rec.applied:
        for r in await db.fetch("SELECT t.code, count(*) n FROM import_member m JOIN membership ms ON ms.id = m.membership "
                                f"JOIN tier t ON t.id = ms.tier WHERE m.run = $1 AND {_TIER_FROM_FILE} GROUP BY 1 ORDER BY 1", run):
            rec.tiers_db[r["code"]] = r["n"]
    rec.checksum_files = str(await _value(_DIGEST.format(q=_PER_MEMBER_FILES), run))
    if rec.applied:
        rec.checksum_db = str(await _value(_DIGEST.format(q=_PER_MEMBER_DB), run))
        rec.mismatched = [
            f"{r['legacy_id']}: files {r['fa']}/{r['fp']}, database {r['da']}/{r['dp']} (active/pending)"
            for r in await db.fetch(
                f"SELECT COALESCE(f.legacy_id, d.legacy_id) legacy_id, f.act fa, f.pen fp, d.act da, d.pen dp "
                f"FROM ({_PER_MEMBER_FILES}) f FULL JOIN ({_PER_MEMBER_DB}) d ON d.legacy_id = f.legacy_id "
                f"WHERE f.act IS DISTINCT FROM d.act OR f.pen IS DISTINCT FROM d.pen ORDER BY 1 LIMIT 50", run)
        ]
    await _delta(rec, run)
    await _history(rec, run, head["program"])
    counts = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE rejected IS NULL AND merged_into IS NULL AND NOT known) customers, "
        "count(*) FILTER (WHERE rejected IS NULL AND merged_into IS NOT NULL) merged, "
        "count(*) FILTER (WHERE rejected IS NULL AND merged_into IS NULL AND existing_customer IS NOT NULL) existing, "
        "count(*) FILTER (WHERE rejected IS NULL AND merged_into IS NULL AND NOT known AND phone IS NULL AND email IS NULL) anonymous "
        "FROM import_member WHERE run = $1", run)
    rec.members = dict(counts)  # type: ignore[arg-type]
    rec.merges = [(r["legacy_id"], r["merged_into"]) for r in await db.fetch(
        "SELECT legacy_id, merged_into FROM import_member WHERE run = $1 AND merged_into IS NOT NULL ORDER BY file, line", run)]
    rec.conflicts = [(r["file"], r["line"], r["reason"]) for r in await db.fetch(
        "SELECT file, line, reason FROM import_reject WHERE run = $1 AND reason LIKE 'conflict%' "
        "UNION ALL SELECT file, line, rejected FROM import_member WHERE run = $1 AND rejected IS NOT NULL "
        "ORDER BY 1, 2", run)]
    return rec


async def _delta(rec: Reconciliation, run: str) -> None:
    """What a delta changes of the members an earlier import brought (by legacy id)."""
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE known) known, count(*) FILTER (WHERE known AND changes IS NOT NULL) changed "
        "FROM import_member WHERE run = $1 AND rejected IS NULL", run)
    if not row or not row["known"]:
        return
    cards = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE c.card IS NULL) added, count(*) FILTER (WHERE c.changes = 'blocked') blocked, "
        "count(*) FILTER (WHERE c.card IS NOT NULL AND c.changes IS NULL) unchanged, "
        "count(*) FILTER (WHERE c.changes LIKE '%not applied%') not_applied FROM import_card c "
        "JOIN import_member m ON m.run = c.run AND m.legacy_id = c.member AND m.known WHERE c.run = $1 AND c.rejected IS NULL", run)
    # the balance before this run: what the imports had posted, less this run's own difference once applied
    sums = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE points <> before) changed, COALESCE(SUM(GREATEST(points - before, 0)), 0) added, "
        "COALESCE(SUM(GREATEST(before - points, 0)), 0) taken, count(*) FILTER (WHERE points = 0 AND before <> 0) zero FROM (SELECT points, posted - CASE WHEN $2 THEN this_run "
        f"ELSE 0 END before FROM ({_DELTA_BALANCES}) b) x", run, rec.applied)
    # consents: the tokens the checks wrote (imports/run.py `_consent_change`)
    consents = await db.fetchrow(
        "SELECT COALESCE(SUM((SELECT count(*) FROM unnest(t) x WHERE x IN ('sms consent withdrawn', "
        "'e-mail consent withdrawn'))), 0) withdrawn, COALESCE(SUM((SELECT count(*) FROM unnest(t) x WHERE x IN "
        "('sms consent granted', 'e-mail consent granted'))), 0) granted, COALESCE(SUM((SELECT count(*) FROM unnest(t) x "
        "WHERE x LIKE '%consent%not applied%')), 0) not_applied FROM (SELECT string_to_array(changes, ', ') t "
        "FROM import_member WHERE run = $1 AND known AND rejected IS NULL AND changes LIKE '%consent%') c", run)
    rec.delta = {"known": row["known"], "changed": row["changed"], "cards added": cards["added"],  # type: ignore[index]
                 "cards blocked": cards["blocked"], "cards unchanged": cards["unchanged"],  # type: ignore[index]
                 "card changes not applied": cards["not_applied"],  # type: ignore[index]
                 "balances changed": sums["changed"], "points added": int(sums["added"]),  # type: ignore[index]
                 "points taken": int(sums["taken"]),  # type: ignore[index]
                 "balances now zero": sums["zero"],  # type: ignore[index]
                 "consents withdrawn": consents["withdrawn"], "consents granted": consents["granted"],  # type: ignore[index]
                 "consent changes not applied": consents["not_applied"]}  # type: ignore[index]
    rec.changes = [f"{r['legacy_id']}: {r['changes']}" for r in await db.fetch(
        "SELECT legacy_id, changes FROM import_member WHERE run = $1 AND known AND changes IS NOT NULL ORDER BY legacy_id "
        "LIMIT 1000", run)]
    rec.changes += [f"card {r['number']} ({r['member']}): {r['changes']}" for r in await db.fetch(
        "SELECT number, member, changes FROM import_card WHERE run = $1 AND changes IS NOT NULL ORDER BY number LIMIT 1000", run)]
    if rec.applied:
        # after the apply every known member's account holds, from imports, exactly their legacy balance now
        rec.mismatched += [f"{b['legacy_id']}: legacy balance {b['points']}, imported {b['posted']} (delta)"
                           for b in await db.fetch(f"SELECT * FROM ({_DELTA_BALANCES}) b WHERE points <> posted "
                                                   "ORDER BY legacy_id LIMIT 50", run)]


async def _history(rec: Reconciliation, run: str, program: int) -> None:
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE rejected IS NULL) accepted, count(*) FILTER (WHERE sale IS NOT NULL) written, "
        "COALESCE(SUM(earning) FILTER (WHERE rejected IS NULL), 0) spend FROM import_receipt WHERE run = $1", run)
    if not row or not row["accepted"]:
        return
    rec.history = {"receipts accepted": row["accepted"], "spend (kopecks)": int(row["spend"])}
    if rec.applied:
        rec.history["receipts written"] = row["written"]
        rec.history["already in Kopilka (not written again)"] = row["accepted"] - row["written"]
        # the comparison: the tier the legacy system gave vs the tier Kopilka computes from the history
        compared = (
            "SELECT m.legacy_id, best.code file_tier, t.code computed, ms.tier_spend FROM import_member m "
            "JOIN membership ms ON ms.id = m.membership JOIN tier t ON t.id = ms.tier "
            "JOIN LATERAL (SELECT tr.code FROM import_tier x JOIN tier tr ON tr.program = $2 AND tr.code = x.tier "
            "WHERE x.run = m.run AND x.member = m.legacy_id AND x.rejected IS NULL ORDER BY tr.rank DESC LIMIT 1) best ON true "
            "WHERE m.run = $1 AND EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = m.run AND r.member = m.legacy_id "
            "AND r.rejected IS NULL)")
        counts = await db.fetchrow(f"SELECT count(*) n, count(*) FILTER (WHERE file_tier <> computed) d FROM ({compared}) c",
                                   run, program)
        rec.history["tiers compared"], rec.history["tiers that differ"] = counts["n"], counts["d"]  # type: ignore[index]
        rec.tier_vs_history = [
            f"{r['legacy_id']}: legacy {r['file_tier']}, from history {r['computed']} (spend {r['tier_spend'] / 100:.2f})"
            for r in await db.fetch(f"SELECT * FROM ({compared}) c WHERE file_tier <> computed ORDER BY legacy_id "
                                    "LIMIT 1000", run, program)]


async def _value(query: str, *args: object) -> object:
    row = await db.fetchrow(query, *args)
    return row[0] if row else None


async def write_rejects(run: str, path: Path) -> int:
    """file, line, field, reason, action: every row not imported (and every field dropped from a row that was).
    Streamed through a cursor: a million-row export's rejects are not held in memory."""
    from loyalty_core.piccolo_conf import DB

    query = (
        "SELECT file, line, field, reason, action FROM import_reject WHERE run = $1 "
        "UNION ALL SELECT file, line, 'legacy_id', rejected, 'rejected' FROM import_member WHERE run = $1 AND rejected IS NOT NULL "
        "UNION ALL SELECT file, line, 'number', rejected, 'rejected' FROM import_card WHERE run = $1 AND rejected IS NOT NULL "
        "UNION ALL SELECT file, line, CASE WHEN points = 0 THEN 'points' ELSE 'member' END, rejected, 'rejected' FROM import_lot "
        "WHERE run = $1 AND rejected IS NOT NULL "
        "UNION ALL SELECT file, line, 'member', rejected, 'rejected' FROM import_tier WHERE run = $1 AND rejected IS NOT NULL "
        "UNION ALL SELECT file, line, 'member', rejected, 'rejected' FROM import_receipt WHERE run = $1 AND rejected IS NOT NULL "
        "ORDER BY 1, 2")
    rejected = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "line", "field", "reason", "action"])
        async with DB.transaction():
            conn = DB.current_transaction.get().connection  # type: ignore[union-attr]
            async for r in conn.cursor(query, run, prefetch=2000):
                out.writerow([_cell(r["file"]), r["line"], _cell(r["field"]), _cell(r["reason"]), r["action"]])
                rejected += r["action"] == "rejected"
    return rejected


def _cell(value: str) -> str:
    """The rejects file is opened in a spreadsheet by the finance team: a cell that starts like a formula (a file
    named `=HYPERLINK(...).csv`) is written as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def markdown(rec: Reconciliation, dry_run: bool) -> str:
    lines = [f"# Import {rec.run[:12]}", "",
             f"- run id: `{rec.run}`",
             f"- status: {'DRY RUN (nothing written; --apply writes)' if dry_run and not rec.applied else rec.status}"
             f"{' (phases done: ' + ', '.join(rec.phases) + ')' if rec.phases else ''}",
             f"- legacy balances without dates: {rec.by_rule} lots; {rec.default_rule}",
             f"- members: {rec.members.get('customers', 0)} accounts ({rec.members.get('existing', 0)} for customers "
             f"Kopilka already had: their contacts unchanged, their legacy cards wait for their confirmation; "
             f"{rec.members.get('anonymous', 0)} without a contact: their card only), {rec.members.get('merged', 0)} merged",
             "", "## Files", "", "| file | kind | encoding | delimiter | read | accepted | rejected |",
             "|---|---|---|---|---:|---:|---:|"]
    for f in rec.files:
        lines.append(f"| {f.name} | {f.kind} | {f.encoding} | {f.delimiter!r} | {f.read} | {f.accepted} | {f.rejected} |")
    states = sorted(set(rec.points_files) | set(rec.points_db))
    lines += ["", "## Points", "", "| status | in the files (accepted) | in the database |", "|---|---:|---:|"]
    for s in states:
        lines.append(f"| {s} | {rec.points_files.get(s, 0)} | {rec.points_db.get(s, 0) if rec.applied else '-'} |")
    lines.append(f"| total | {sum(rec.points_files.values())} | {sum(rec.points_db.values()) if rec.applied else '-'} |")
    lines += ["", "## Members per tier", "", "| tier | files | database |", "|---|---:|---:|"]
    for t in sorted(set(rec.tiers_files) | set(rec.tiers_db)):
        lines.append(f"| {t} | {rec.tiers_files.get(t, 0)} | {rec.tiers_db.get(t, 0) if rec.applied else '-'} |")
    lines += ["", "## Per-member checksum", "",
              "md5 over `legacy id:active:pending` of every member with points, in legacy id order.", "",
              f"- files: `{rec.checksum_files}`", f"- database: `{rec.checksum_db or '-'}`"]
    if rec.mismatched:
        lines += ["", "Members that differ:", *[f"- {m}" for m in rec.mismatched]]
    if rec.delta:
        lines += ["", "## Delta: members an earlier import brought (by legacy id)", "",
                  "Updated, not duplicated: the name and birth date when Kopilka still holds the imported value, a card "
                  "blocked in the legacy system, new cards (they wait for the member's confirmation), the balance by "
                  "the difference only (posted through the ledger; a balance now 0 takes what the imports gave), and a "
                  "consent withdrawn in the legacy system after Kopilka's grant. Contacts are never changed by a file, "
                  "and a file never re-grants a consent the shopper chose in Kopilka.", "",
                  "| | |", "|---|---:|", *[f"| {k} | {v} |" for k, v in rec.delta.items()]]
        if rec.changes:
            lines += ["", "Changes:", *[f"- {c}" for c in rec.changes]]
    if rec.history:
        lines += ["", "## Purchase history", "",
                  "Imported receipts feed the tier's spend, the purchase counters and analytics; they never move points "
                  "and cannot be returned at a till.", "",
                  "| | |", "|---|---:|", *[f"| {k} | {v} |" for k, v in rec.history.items()]]
        if rec.tier_vs_history:
            lines += ["", "Tier in the tiers file vs computed from the history (Kopilka keeps the computed one; the first "
                      "1 000):", *[f"- {t}" for t in rec.tier_vs_history]]
    lines += ["", f"## Merged duplicates ({len(rec.merges)})", "",
              "Policy: the first row with a phone or e-mail is the customer; a later row with the same normalised phone "
              "or e-mail is merged into it (its cards, points and spend go to that customer).", ""]
    lines += [f"- {a} -> {b}" for a, b in rec.merges[:1000]]
    if len(rec.merges) > 1000:
        lines.append(f"- ... and {len(rec.merges) - 1000} more")
    lines += ["", f"## Conflicts for a human ({len(rec.conflicts)})", ""]
    lines += [f"- {f}:{n}: {r}" for f, n, r in rec.conflicts[:1000]]
    verdict = ("BALANCED: everything accepted is in the database, to the point" if rec.balanced else
               "dry run: nothing written" if not rec.applied else "NOT BALANCED: see the differences above")
    lines += ["", f"**{verdict}**", ""]
    return "\n".join(lines)
