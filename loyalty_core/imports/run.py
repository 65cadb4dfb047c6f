"""An import run: validate and stage the files (COPY into the staging tables), then apply in phases with
set-based SQL, then reconcile.

- The run's id is a hash of the program, the mapping and every file's contents: the same files are the same run.
- Staging is one transaction; each apply phase (members, cards, lots, tiers, audit) is one transaction that also
  records the phase as done, so a run killed at any moment resumes at the first phase not done, and a finished run
  changes nothing when started again.
- The lots are written as the ledger writes them: a `point_lot`, an `import` entry into its bucket, and the account's
  sums (and version) moved by the same amounts, so `kopilka ledger verify` holds. The accounts are new ones (an
  import creates the memberships it fills), so no till's posting can be read at a version this bumps from under it.
"""

from __future__ import annotations

import datetime as dt
import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from loyalty_core import db
from loyalty_core.imports import read, validate
from loyalty_core.imports.validate import Reject
from loyalty_core.piccolo_conf import DB
from loyalty_core.office import audit

# `deltas` (a delta's balances through the ledger writer) commits in chunks of DELTA_CHUNK accounts: a till confirming
# on one of those accounts waits for one chunk, not for the whole phase
PHASES = ("members", "cards", "lots", "deltas", "receipts", "tiers", "audit")
DELTA_CHUNK = 200
BATCH = 5000
MEMBER_COLUMNS = ("file", "line", "legacy_id", "phone", "email", "name", "birth_date", "gender", "city", "consent_sms",
                  "consent_sms_at", "consent_email", "consent_email_at", "registered_at", "channel", "merged_into")
STAGING = {
    "members": ("import_member", MEMBER_COLUMNS),
    # `member` is the survivor a merged member's rows go to; `owner` the merged member itself (else NULL)
    "cards": ("import_card", ("file", "line", "number", "member", "status", "issued_at", "blocked_at", "owner")),
    "balances": ("import_lot", ("file", "line", "member", "points", "state", "activates_at", "expires_at", "source", "by_rule",
                                "owner")),
    "tiers": ("import_tier", ("file", "line", "member", "tier", "spend", "owner")),
    "history": ("import_receipt", ("file", "line", "receipt", "member", "occurred_at", "store", "amount", "discount",
                                   "to_pay", "earning", "lines", "owner")),
}
ORDER = {"members": 0, "cards": 1, "balances": 2, "tiers": 3, "history": 4}
TIER_CARRY = "365 days"  # a legacy tier's spend counts this long after the import (the tier window: members/tiers.py)


class Hooks:
    """What the CLI shows while a run works (a progress bar); the defaults show nothing."""

    def file_started(self, name: str, kind: str, total_lines: int) -> None: ...
    def rows_read(self, count: int) -> None: ...
    def file_done(self, name: str) -> None: ...
    def phase_done(self, phase: str) -> None: ...


@dataclass
class Program:
    id: int
    code: str
    tz: ZoneInfo
    expiry_days: int
    tiers: dict[str, int]  # code -> rank


@dataclass
class Staged:
    run: str
    fresh: bool  # staged now (False: the same files were staged by an earlier command)
    files: list[dict] = field(default_factory=list)


async def load_program(program_id: int) -> Program:
    row = await db.fetchrow("SELECT p.id, p.code, p.timezone, r.document FROM program p LEFT JOIN rules_version r "
                            "ON r.program = p.id AND r.version = p.rules_version WHERE p.id = $1", program_id)
    assert row is not None
    doc = row["document"]
    doc = json.loads(doc) if isinstance(doc, str) else (doc or {})
    tiers = await db.fetch("SELECT code, rank FROM tier WHERE program = $1", program_id)
    return Program(id=row["id"], code=row["code"], tz=ZoneInfo(row["timezone"]),
                   expiry_days=int((doc.get("settings") or {}).get("expiry_days", 365)),
                   tiers={t["code"]: t["rank"] for t in tiers})


def run_id(program: Program, files: list[Path], mapping: read.Mapping) -> str:
    h = hashlib.sha256(f"program:{program.code}\nmapping:{mapping.digest}\n".encode())
    for path in sorted(files, key=lambda p: p.name):
        h.update(f"{path.name}:{read.file_digest(path)}\n".encode())
    return h.hexdigest()


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


async def stage(program: Program, inputs: list[Path], mapping: read.Mapping, now: dt.datetime,
                hooks: Hooks | None = None) -> Staged:
    """Validate every row and COPY the accepted ones (and the rejects) into the staging tables, in one transaction."""
    hooks = hooks or Hooks()
    files = read.list_files(inputs)
    opened = sorted((read.open_file(p, mapping) for p in files), key=lambda o: (ORDER[o.kind], o.path.name))
    if not any(o.kind == "members" for o in opened):
        raise read.ReadError("a members file is needed (the other files name its members)")
    names = [o.path.name for o in opened]
    if len(set(names)) != len(names):
        raise read.ReadError("two files have the same name: the rejects would not say which is which")
    run = run_id(program, files, mapping)
    async with DB.transaction():
        conn: asyncpg.Connection = DB.current_transaction.get().connection  # type: ignore[union-attr]
        status = await conn.fetchval("SELECT status FROM import_run WHERE id = $1 FOR UPDATE", run)
        if status is not None and status != "staging":
            return Staged(run=run, fresh=False)
        if status is None:
            await conn.execute("INSERT INTO import_run (id, program, default_rule) VALUES ($1, $2, $3)", run, program.id,
                               f"a legacy balance without dates is active from the import and expires "
                               f"{program.expiry_days} days later (the program's expiry_days)"
                               if program.expiry_days else "a legacy balance without dates never expires (the program's rule)")
        ctx = validate.Context(now=now, tz=program.tz, expiry_days=program.expiry_days, tiers=set(program.tiers))
        # members are COPYed as read (a legacy id may repeat) into a table of this transaction, with their order in
        # the files; `resolve` settles repeats and merges in SQL and fills import_member. No per-row state in Python.
        # (cards and receipts too: a number may repeat in the files, and the staging tables' keys refuse that)
        for table in ("import_member", "import_card", "import_receipt"):
            await conn.execute(f"CREATE TEMP TABLE {table}_in (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
        await conn.execute("ALTER TABLE import_member_in ADD seq bigint, ADD state char(1)")
        seq = 0
        staged = Staged(run=run, fresh=True)
        for o in opened:
            ctx.date_format = o.mapping.date_format
            table, columns = STAGING[o.kind]
            if o.kind == "members":
                table, columns = "import_member_in", ("seq", *columns)
            elif o.kind in ("cards", "history"):
                table = f"{table}_in"
            hooks.file_started(o.path.name, o.kind, _lines(o.path))
            batch: list[tuple] = []
            rejects: list[Reject] = []
            count = 0
            for line, raw, broken in _guarded(o):
                count += 1
                if raw is None:
                    rejects.append(Reject(o.path.name, line, "", f"broken row: {broken}"))
                    record = None
                elif o.kind == "members":
                    record = validate.member(raw, o.path.name, line, ctx, rejects)
                    if record is not None:
                        seq += 1
                        record = (seq, *record)
                elif o.kind == "cards":
                    record = validate.card(raw, o.path.name, line, ctx, rejects)
                elif o.kind == "balances":
                    record = validate.lot(raw, o.path.name, line, ctx, rejects)
                elif o.kind == "history":
                    record = validate.receipt(raw, o.path.name, line, ctx, rejects)
                else:
                    record = validate.tier(raw, o.path.name, line, ctx, rejects)
                if record is not None:
                    batch.append(record)
                if len(batch) >= BATCH or len(rejects) >= BATCH:
                    await _copy(conn, run, table, columns, batch, rejects)
                    hooks.rows_read(BATCH)
                    batch, rejects = [], []
            await _copy(conn, run, table, columns, batch, rejects)
            await conn.execute(
                "INSERT INTO import_file (run, name, kind, sha256, encoding, delimiter, rows_read) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                run, o.path.name, o.kind, read.file_digest(o.path), o.encoding, o.delimiter, count)
            hooks.file_done(o.path.name)
        await resolve(conn, run)
        await check(conn, run, program)
        await conn.execute("UPDATE import_run SET status = 'staged', staged_at = $2 WHERE id = $1", run, now)
    return staged


def _guarded(o: read.Opened):  # type: ignore[no-untyped-def]
    """The rows of a file; a file that turns out undecodable or malformed past its first megabyte stops the run
    with its name (the staging transaction rolls back: nothing is half staged)."""
    rows = read.rows(o)
    while True:
        try:
            yield next(rows)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise read.ReadError(f"{o.path.name}: not {o.encoding} at byte {exc.start} of a chunk: set its encoding "
                                 "in the mapping") from None
        except csv.Error as exc:
            raise read.ReadError(f"{o.path.name}: {exc}") from None


async def _copy(conn: asyncpg.Connection, run: str, table: str, columns: tuple[str, ...], batch: list[tuple],
                rejects: list[Reject]) -> None:
    if batch:
        await conn.copy_records_to_table(table, records=[(run, *r) for r in batch], columns=("run", *columns))
    if rejects:
        await conn.copy_records_to_table(
            "import_reject", records=[(run, r.file, r.line, r.field, r.reason, r.action) for r in rejects],
            columns=("run", "file", "line", "field", "reason", "action"))


def _latest_consent(channel: str) -> str:
    """The customer's consent of a channel now (the latest row), and whether they ever chose it in Kopilka."""
    return (f"LEFT JOIN LATERAL (SELECT k.granted, k.changed_at, k.source, EXISTS (SELECT 1 FROM consent o "
            f"WHERE o.customer = c.id AND o.channel = '{channel}' AND o.source <> 'import') chosen FROM consent k "
            f"WHERE k.customer = c.id AND k.channel = '{channel}' ORDER BY k.changed_at DESC, k.id DESC LIMIT 1) "
            f"cs_{channel} ON true ")


def _consent_change(channel: str, label: str) -> str:
    """A delta's consent of a known member against Kopilka's latest (`cs_<channel>`). A withdrawal in the legacy
    system is applied when it is newer than Kopilka's grant (a withdrawal always wins over an older grant; without a
    date, only over a grant an import wrote), for any known member: it can only make Kopilka send less. A grant is
    applied only to a customer an import created who never chose that channel in Kopilka (and newer than an imported
    withdrawal): a file never re-grants what the shopper withdrew. Tokens without commas: the apply reads them."""
    cs, at, value = f"cs_{channel}", f"n.consent_{channel}_at", f"n.consent_{channel}"
    when = f"COALESCE('on ' || to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'without a date')"
    return (
        f"CASE WHEN {value} = false AND {cs}.granted IS DISTINCT FROM false THEN CASE WHEN {cs}.granted IS NULL "
        f"OR ({at} IS NOT NULL AND {at} > {cs}.changed_at) OR ({at} IS NULL AND {cs}.source = 'import') "
        f"THEN '{label} consent withdrawn' ELSE '{label} consent withdrawn in the legacy system ' || {when} || "
        f"' (not applied: granted in Kopilka on ' || to_char({cs}.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ' after it)' END "
        f"WHEN {value} = true AND {cs}.granted IS DISTINCT FROM true THEN CASE WHEN p.legacy_id IS NOT NULL "
        f"AND NOT COALESCE({cs}.chosen, false) AND ({cs}.granted IS NULL OR {at} IS NULL OR {at} > {cs}.changed_at) "
        f"THEN '{label} consent granted' ELSE '{label} consent granted in the legacy system (not applied: the "
        f"shopper''s choice in Kopilka stands)' END END"
    )


def _rejects_out(table: str, where: str, field_sql: str, reason_sql: str) -> str:
    """Move the staged rows `where` selects into the rejects (as a row Python refused would be)."""
    return (f"WITH gone AS (DELETE FROM {table} t WHERE t.run = $1 AND {where} RETURNING t.*) "
            f"INSERT INTO import_reject (run, file, line, field, reason, action) "
            f"SELECT run, file, line, {field_sql}, {reason_sql}, 'rejected' FROM gone")


_KNOWN = "EXISTS (SELECT 1 FROM import_member m WHERE m.run = $1 AND m.legacy_id = t.member)"
# files are read in name order (Python's, by code point: collation "C" here); rows in line order
_FILE_ORDER = 'file COLLATE "C", line'
_CONFLICT = "x.ph IS NOT NULL AND x.em IS NOT NULL AND x.ph <> x.em"

RESOLVE_MEMBERS = [
    "CREATE INDEX ON import_member_in (legacy_id, seq)",
    "CREATE INDEX ON import_member_in (phone, seq) WHERE phone IS NOT NULL",
    "CREATE INDEX ON import_member_in (email, seq) WHERE email IS NOT NULL",
    "CREATE UNIQUE INDEX ON import_member_in (seq)",
    "ANALYZE import_member_in",
    # a legacy id repeated: every row after its first is refused
    "UPDATE import_member_in m SET rejected = 'duplicate legacy id ' || m.legacy_id, state = 'r' FROM (SELECT seq, "
    "row_number() OVER (PARTITION BY legacy_id ORDER BY seq) n FROM import_member_in) d WHERE d.seq = m.seq AND d.n > 1",
    # the merge policy, set-based. Most rows are the first with their phone and with their e-mail: customers at once
    "UPDATE import_member_in m SET state = 's' FROM (SELECT seq, min(seq) FILTER (WHERE phone IS NOT NULL) OVER "
    "(PARTITION BY phone) fp, min(seq) FILTER (WHERE email IS NOT NULL) OVER (PARTITION BY email) fe "
    "FROM import_member_in WHERE state IS NULL) f WHERE m.seq = f.seq AND (m.phone IS NULL OR f.fp = m.seq) "
    "AND (m.email IS NULL OR f.fe = m.seq)",
]
# ... the rest in rounds, in file order: a row is decided once every earlier row sharing its phone or e-mail is (the
# customer who holds a contact is the first decided customer with it; a merged or conflicting row holds none)
RESOLVE_ROUND = (
    f"UPDATE import_member_in r SET state = CASE WHEN {_CONFLICT} THEN 'c' "
    "WHEN COALESCE(x.ph, x.em) IS NOT NULL THEN 'm' ELSE 's' END, "
    f"merged_into = CASE WHEN {_CONFLICT} THEN NULL ELSE COALESCE(x.ph, x.em) END, "
    f"rejected = CASE WHEN {_CONFLICT} THEN 'conflict: the phone is member ' "
    "|| x.ph || '''s, the e-mail member ' || x.em || '''s; a human decides' END "
    "FROM (SELECT u.seq, "
    "(SELECT s.legacy_id FROM import_member_in s WHERE s.phone = u.phone AND s.seq < u.seq AND s.state = 's' LIMIT 1) ph, "
    "(SELECT s.legacy_id FROM import_member_in s WHERE s.email = u.email AND s.seq < u.seq AND s.state = 's' LIMIT 1) em, "
    "EXISTS (SELECT 1 FROM import_member_in s WHERE s.phone = u.phone AND s.seq < u.seq AND s.state IS NULL) ph_open, "
    "EXISTS (SELECT 1 FROM import_member_in s WHERE s.email = u.email AND s.seq < u.seq AND s.state IS NULL) em_open "
    "FROM import_member_in u WHERE u.state IS NULL) x "
    "WHERE r.seq = x.seq AND (x.ph IS NOT NULL OR NOT x.ph_open) AND (x.em IS NOT NULL OR NOT x.em_open)"
)
_STAGED = ("import_card_in", "import_lot", "import_tier", "import_receipt_in")
RESOLVE_REST = [
    # the refused rows to the rejects (without the fields dropped from them: the row is not imported at all)
    "DELETE FROM import_reject j USING import_member_in m WHERE j.run = $1 AND m.state IN ('r', 'c') "
    "AND j.file = m.file AND j.line = m.line AND j.action = 'dropped'",
    "INSERT INTO import_reject (run, file, line, field, reason, action) SELECT run, file, line, "
    "CASE WHEN state = 'c' THEN 'phone,email' ELSE 'legacy_id' END, rejected, 'rejected' FROM import_member_in "
    "WHERE state IN ('r', 'c')",
    # a merged row keeps none of its contacts (the customer is the one it was merged into)
    f"INSERT INTO import_member (run, {', '.join(MEMBER_COLUMNS)}) SELECT run, file, line, legacy_id, "
    "CASE WHEN state = 's' THEN phone END, CASE WHEN state = 's' THEN email END, "
    f"{', '.join(MEMBER_COLUMNS[5:-1])}, merged_into FROM import_member_in WHERE state IN ('s', 'm') ORDER BY seq",
    "ANALYZE import_member, import_card_in, import_lot, import_tier, import_receipt_in",
    # the other files' rows: a member the files do not have is refused; a merged member's rows go to the customer it
    # was merged into (`owner` keeps its own id: the database checks may refuse it)
    *(_rejects_out(table, f"NOT {_KNOWN}", "'member'", "'unknown member ''' || member || ''''") for table in _STAGED),
    *(f"UPDATE {table} t SET owner = t.member, member = m.merged_into FROM import_member m WHERE t.run = $1 "
      "AND m.run = $1 AND m.legacy_id = t.member AND m.merged_into IS NOT NULL" for table in _STAGED),
    # a card number, or a store's receipt number, twice in the files: the first row (file and line order) counts
    _rejects_out("import_card_in", "(t.file, t.line) IN (SELECT file, line FROM (SELECT file, line, row_number() OVER "
                 f"(PARTITION BY number ORDER BY {_FILE_ORDER}) n FROM import_card_in) d WHERE d.n > 1)",
                 "'number'", "'duplicate card ' || number"),
    _rejects_out("import_receipt_in", "(t.file, t.line) IN (SELECT file, line FROM (SELECT file, line, row_number() "
                 f"OVER (PARTITION BY store, receipt ORDER BY {_FILE_ORDER}) n FROM import_receipt_in) d "
                 "WHERE d.n > 1)", "'receipt'",
                 "'duplicate receipt ' || receipt || ' of store ' || COALESCE(NULLIF(store, ''), '(none)')"),
    "INSERT INTO import_card SELECT * FROM import_card_in",
    "INSERT INTO import_receipt SELECT * FROM import_receipt_in",
]


async def resolve(conn: asyncpg.Connection, run: str) -> None:
    """Who is who across the staged rows, in SQL (memory stays flat): repeated legacy ids, the merge policy (first
    row wins: a fixed point in rounds, usually two or three), conflicts, unknown members, repeated card and receipt
    numbers. Refused rows leave the staging tables for the rejects, as rows refused while reading do."""
    for statement in RESOLVE_MEMBERS:
        await conn.execute(statement)
    while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM import_member_in WHERE state IS NULL)"):
        if (await conn.execute(RESOLVE_ROUND)) == "UPDATE 0":  # cannot happen: the earliest open row is decidable
            raise RuntimeError("the merge policy did not converge")
    for statement in RESOLVE_REST:
        if "$1" in statement:
            await conn.execute(statement, run)
        else:
            await conn.execute(statement)


# the checks that need the database; run when staging and again before the first phase is applied (the database
# may have moved since a dry run)
CHECKS = [
    # only the rows a check marked: rewriting every staged row is most of the time at a million members
    "UPDATE import_member SET rejected = NULL, existing_customer = NULL, known = false, changes = NULL, customer = NULL, "
    "membership = NULL, account = NULL WHERE run = $1 AND (rejected IS NOT NULL OR existing_customer IS NOT NULL OR known)",
    "UPDATE import_card SET rejected = NULL, card = NULL, changes = NULL WHERE run = $1 "
    "AND (rejected IS NOT NULL OR card IS NOT NULL)",
    "UPDATE import_lot SET rejected = NULL WHERE run = $1 AND rejected IS NOT NULL",
    "UPDATE import_tier SET rejected = NULL WHERE run = $1 AND rejected IS NOT NULL",
    "UPDATE import_receipt SET rejected = NULL WHERE run = $1 AND rejected IS NOT NULL",
    # a delta: a member an earlier import of this program brought (the same legacy id) is updated, not duplicated
    "UPDATE import_member m SET known = true, membership = ms.id, customer = ms.customer, account = a.id "
    "FROM membership ms JOIN account a ON a.membership = ms.id WHERE m.run = $1 AND m.merged_into IS NULL "
    "AND ms.program = {program} AND ms.legacy_id = m.legacy_id",
    # ... but one the file's merge policy now merges into another member is for a human: its points, cards and history
    # would be counted on the survivor while its own account keeps what the earlier import gave it
    "UPDATE import_member m SET rejected = 'member ' || m.legacy_id || ' came in an earlier import; its phone or e-mail "
    "now matches member ' || m.merged_into || ': a human merges them' FROM membership ms WHERE m.run = $1 "
    "AND m.merged_into IS NOT NULL AND ms.program = {program} AND ms.legacy_id = m.legacy_id",
    # a contact of a customer Kopilka already has: the member is that customer (nothing of theirs is changed)
    "UPDATE import_member m SET existing_customer = c.id FROM customer c WHERE m.run = $1 AND NOT m.known AND c.phone = m.phone",
    "UPDATE import_member m SET rejected = 'conflict: the phone is customer ' || m.existing_customer || "
    "'''s, the e-mail customer ' || c.id || '''s; a human decides' FROM customer c "
    "WHERE m.run = $1 AND c.email = m.email AND m.existing_customer IS NOT NULL AND m.existing_customer <> c.id",
    "UPDATE import_member m SET existing_customer = c.id FROM customer c "
    "WHERE m.run = $1 AND NOT m.known AND c.email = m.email AND m.existing_customer IS NULL",
    "UPDATE import_member m SET rejected = 'customer ' || m.existing_customer || ' is already a member of this "
    "program (an earlier import or a registration): a human merges them' FROM membership ms "
    "WHERE m.run = $1 AND m.rejected IS NULL AND ms.customer = m.existing_customer AND ms.program = {program}",
    "UPDATE import_member m SET rejected = 'no phone, no e-mail and no card: nobody could ever use this account' "
    "WHERE m.run = $1 AND m.rejected IS NULL AND NOT m.known AND m.merged_into IS NULL AND m.phone IS NULL AND m.email IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM import_card c WHERE c.run = m.run AND c.member = m.legacy_id AND c.status = 'active')",
    "UPDATE import_member m SET rejected = 'merged into member ' || s.legacy_id || ', which is rejected' "
    "FROM import_member s WHERE m.run = $1 AND s.run = $1 AND s.legacy_id = m.merged_into AND s.rejected IS NOT NULL",
    # what a delta changes of a known member: the name and birth date unless the shopper changed them in Kopilka
    # since (the customer's value is not what the previous import wrote; without that run's staging rows, or for a
    # customer Kopilka had before the import, nothing); contacts never (a sign-in route)
    "UPDATE import_member m SET changes = x.changes FROM (SELECT n.legacy_id, NULLIF(concat_ws(', ', "
    "CASE WHEN n.name <> '' AND n.name IS DISTINCT FROM c.name THEN CASE WHEN p.legacy_id IS NOT NULL "
    "AND c.name IS NOT DISTINCT FROM p.name THEN 'name' ELSE 'name (not applied: not the imported value)' END END, "
    "CASE WHEN n.birth_date IS NOT NULL AND n.birth_date IS DISTINCT FROM c.birth_date THEN CASE WHEN p.legacy_id IS NOT NULL "
    "AND (c.birth_date IS NULL OR c.birth_date = p.birth_date) THEN 'birth date' "
    "ELSE 'birth date (not applied: not the imported value)' END END, "
    "CASE WHEN n.phone IS NOT NULL AND n.phone IS DISTINCT FROM c.phone THEN 'phone (not applied: a sign-in route)' END, "
    "CASE WHEN n.email IS NOT NULL AND n.email IS DISTINCT FROM c.email THEN 'e-mail (not applied: a sign-in route)' END, "
    + _consent_change("sms", "sms") + ", " + _consent_change("email", "e-mail") + "), '') changes "
    "FROM import_member n JOIN customer c ON c.id = n.customer LEFT JOIN LATERAL (SELECT p.legacy_id, p.name, p.birth_date "
    "FROM import_member p JOIN import_run r ON r.id = p.run AND r.program = {program} AND r.status = 'applied' "
    "WHERE p.legacy_id = n.legacy_id AND p.run <> n.run AND p.membership = n.membership AND p.existing_customer IS NULL "
    "ORDER BY r.applied_at DESC LIMIT 1) p ON true "
    + _latest_consent("sms") + _latest_consent("email") +
    "WHERE n.run = $1 AND n.known) x "
    "WHERE m.run = $1 AND m.legacy_id = x.legacy_id",
    # a known member's card that is already theirs: unchanged, or blocked by the legacy system (never unblocked by a
    # file: a card blocked in Kopilka was blocked by its holder or staff)
    "UPDATE import_card c SET card = k.id, changes = CASE WHEN c.status = 'blocked' AND k.status = 'active' THEN 'blocked' "
    "WHEN c.status = 'active' AND k.status <> 'active' THEN 'active in the legacy system (not applied: ' || k.status "
    "|| ' in Kopilka)' END FROM card k JOIN import_member m ON m.membership = k.membership "
    "WHERE c.run = $1 AND m.run = $1 AND m.known AND m.legacy_id = c.member AND k.number = c.number",
    # any other number Kopilka has is not the import's to take, in a delta too (another member's, emitted, ...)
    "UPDATE import_card c SET rejected = 'the card number is already in Kopilka' FROM card k "
    "WHERE c.run = $1 AND c.card IS NULL AND k.number = c.number",
    "UPDATE import_card c SET rejected = 'its member is rejected' FROM import_member m "
    "WHERE c.run = $1 AND m.run = $1 AND m.legacy_id = c.member AND m.rejected IS NOT NULL AND c.rejected IS NULL",
    "UPDATE import_lot l SET rejected = 'its member is rejected' FROM import_member m "
    "WHERE l.run = $1 AND m.run = $1 AND m.legacy_id = l.member AND m.rejected IS NOT NULL",
    # a legacy balance that fell to zero: only in a delta, for a member an earlier import gave a balance (the
    # difference is taken through the ledger writer); a first import's 0 is not a lot
    "UPDATE import_lot l SET rejected = '0 points: accepted only in a delta, for a member an earlier import gave a "
    "balance' WHERE l.run = $1 AND l.points = 0 AND l.rejected IS NULL AND NOT EXISTS (SELECT 1 FROM import_member m "
    "JOIN ledger_entry e ON e.account = m.account AND e.kind = 'import' WHERE m.run = $1 AND m.legacy_id = l.member "
    "AND m.known)",
    "UPDATE import_tier t SET rejected = 'its member is rejected' FROM import_member m "
    "WHERE t.run = $1 AND m.run = $1 AND m.legacy_id = t.member AND m.rejected IS NOT NULL",
    "UPDATE import_receipt t SET rejected = 'its member is rejected' FROM import_member m "
    "WHERE t.run = $1 AND m.run = $1 AND m.legacy_id = t.member AND m.rejected IS NOT NULL",
    # the rows of a rejected merged member (its survivor is fine)
    *(f"UPDATE {table} t SET rejected = 'its member is rejected' FROM import_member m WHERE t.run = $1 "
      "AND t.owner IS NOT NULL AND t.rejected IS NULL AND m.run = $1 AND m.legacy_id = t.owner AND m.rejected IS NOT NULL"
      for table in ("import_card", "import_lot", "import_tier", "import_receipt")),
]


async def check(conn: asyncpg.Connection, run: str, program: Program) -> None:
    # freshly COPYed tables have no statistics: without them the planner nests loops over every row
    await conn.execute("ANALYZE import_member, import_card, import_lot, import_tier, import_receipt")
    for statement in CHECKS:
        await _execute(conn, statement, run, program, None)


async def _execute(conn: asyncpg.Connection, statement: str, run: str, program: Program, now: dt.datetime | None) -> None:
    """$1 is the run, $2 the run's clock; the program's id (an integer) is written into the statement."""
    sql = statement.replace("{program}", str(int(program.id)))
    await conn.execute(sql, *((run, now) if "$2" in sql else (run,)))


_EAN = ("'2' || lpad(n::text, 11, '0') || ((10 - (SELECT sum(substr('2' || lpad(n::text, 11, '0'), i, 1)::int * "
        "CASE WHEN i % 2 = 0 THEN 3 ELSE 1 END) FROM generate_series(1, 12) i) % 10) % 10)::text")

APPLY: dict[str, list[str]] = {
    "members": [
        # every id drawn in one pass over staging (each UPDATE rewrites a million rows): a new customer only for
        # members whose contacts nobody has, the existing customer otherwise; the membership and its account
        "UPDATE import_member SET customer = CASE WHEN existing_customer IS NOT NULL THEN existing_customer "
        "WHEN phone IS NOT NULL OR email IS NOT NULL THEN nextval('customer_id_seq') END, "
        "membership = nextval('membership_id_seq'), account = nextval('account_id_seq') "
        "WHERE run = $1 AND rejected IS NULL AND merged_into IS NULL AND NOT known",
        "INSERT INTO customer (id, phone, email, name, birth_date, birth_date_set_at, created_at) "
        "SELECT customer, phone, email, name, birth_date, CASE WHEN birth_date IS NOT NULL THEN COALESCE(registered_at, $2::timestamptz) END, "
        "COALESCE(registered_at, $2::timestamptz) FROM import_member WHERE run = $1 AND customer IS NOT NULL "
        "AND existing_customer IS NULL AND NOT known",
        "INSERT INTO membership (id, program, customer, tier, registration_channel, status, joined_at, legacy_id) "
        "SELECT m.membership, {program}, m.customer, (SELECT id FROM tier WHERE program = {program} ORDER BY rank, id LIMIT 1), 'import', "
        "CASE WHEN m.customer IS NULL THEN 'anonymous' ELSE 'active' END, COALESCE(m.registered_at, $2::timestamptz), m.legacy_id "
        "FROM import_member m WHERE m.run = $1 AND m.membership IS NOT NULL AND NOT m.known",
        "INSERT INTO account (id, membership, updated_at) SELECT account, membership, $2::timestamptz FROM import_member "
        "WHERE run = $1 AND membership IS NOT NULL AND NOT known",
        # consents only for customers the import creates: an existing customer's choices stay theirs
        "INSERT INTO consent (customer, channel, granted, source, changed_at) "
        "SELECT customer, 'sms', consent_sms, 'import', COALESCE(consent_sms_at, registered_at, $2::timestamptz) FROM import_member "
        "WHERE run = $1 AND customer IS NOT NULL AND existing_customer IS NULL AND NOT known AND consent_sms IS NOT NULL "
        "UNION ALL SELECT customer, 'email', consent_email, 'import', COALESCE(consent_email_at, registered_at, $2::timestamptz) "
        "FROM import_member WHERE run = $1 AND customer IS NOT NULL AND existing_customer IS NULL AND NOT known "
        "AND consent_email IS NOT NULL",
        # a delta: the name and birth date the checks found changed in the legacy system and untouched in Kopilka
        "UPDATE customer c SET name = CASE WHEN 'name' = ANY(string_to_array(m.changes, ', ')) THEN m.name ELSE c.name END, "
        "birth_date = CASE WHEN 'birth date' = ANY(string_to_array(m.changes, ', ')) THEN m.birth_date ELSE c.birth_date END, "
        "birth_date_set_at = CASE WHEN 'birth date' = ANY(string_to_array(m.changes, ', ')) "
        "THEN COALESCE(c.birth_date_set_at, $2::timestamptz) ELSE c.birth_date_set_at END "
        "FROM import_member m WHERE m.run = $1 AND m.known AND m.changes IS NOT NULL AND c.id = m.customer",
        # a delta's consents the checks found to apply (a withdrawal newer than Kopilka's grant; a grant only where
        # the shopper never chose in Kopilka, checked again here: a choice made since the checks stands)
        "INSERT INTO consent (customer, channel, granted, source, changed_at) "
        "SELECT m.customer, ch.channel, ch.granted, 'import', COALESCE(ch.at, $2::timestamptz) FROM import_member m "
        "CROSS JOIN LATERAL (VALUES ('sms', m.consent_sms, m.consent_sms_at, 'sms consent'), "
        "('email', m.consent_email, m.consent_email_at, 'e-mail consent')) ch(channel, granted, at, label) "
        "WHERE m.run = $1 AND m.known AND m.changes IS NOT NULL AND ch.granted IS NOT NULL "
        "AND ch.label || CASE WHEN ch.granted THEN ' granted' ELSE ' withdrawn' END = ANY(string_to_array(m.changes, ', ')) "
        "AND (NOT ch.granted OR NOT EXISTS (SELECT 1 FROM consent k WHERE k.customer = m.customer "
        "AND k.channel = ch.channel AND k.source <> 'import'))",
    ],
    "cards": [
        # a card given to a customer who existed before the import waits for that customer's confirmation
        "INSERT INTO card (number, program, membership, series, kind, status, blocked_reason, created_at, confirm_needed, "
        "linked_via, linked_at) SELECT c.number, {program}, m.membership, 'import', 'plastic', c.status, "
        "CASE WHEN c.status = 'blocked' THEN 'blocked in the legacy system' || COALESCE(' on ' || c.blocked_at::date, '') END, "
        # (and a card a delta adds to a member already in Kopilka: their account is live, a file alone must not
        # hand someone a card that pays with its points)
        "COALESCE(c.issued_at, $2::timestamptz), m.existing_customer IS NOT NULL OR m.known, 'an import', $2::timestamptz "
        "FROM import_card c JOIN import_member m ON m.run = c.run AND m.legacy_id = c.member "
        "WHERE c.run = $1 AND c.rejected IS NULL AND c.card IS NULL",
        "UPDATE card k SET status = 'blocked', blocked_reason = 'blocked in the legacy system' || "
        "COALESCE(' on ' || c.blocked_at::date, '') FROM import_card c WHERE c.run = $1 AND c.card = k.id "
        "AND c.changes = 'blocked' AND k.status = 'active'",
        # a member without an active legacy card gets a virtual one (the app, the wallet pass)
        f"INSERT INTO card (number, program, membership, kind, status, created_at, linked_via, linked_at) "
        f"SELECT {_EAN}, {{program}}, x.membership, 'virtual', 'active', $2::timestamptz, 'an import', $2::timestamptz "
        f"FROM (SELECT nextval('card_number_seq') n, m.membership FROM import_member m WHERE m.run = $1 "
        f"AND m.membership IS NOT NULL AND NOT m.known AND NOT EXISTS (SELECT 1 FROM import_card c WHERE c.run = m.run "
        f"AND c.member = m.legacy_id AND c.rejected IS NULL AND c.status = 'active')) x",
    ],
    "lots": [
        # set-based for the members this run creates; a known member's balance moves by the difference only, through
        # the ledger writer (post_deltas)
        "UPDATE import_lot SET lot = nextval('point_lot_id_seq') WHERE run = $1 AND rejected IS NULL "
        "AND member NOT IN (SELECT legacy_id FROM import_member WHERE run = $1 AND known)",
        "INSERT INTO point_lot (id, account, amount, remaining, state, activates_at, expires_at, source, created_at) "
        "SELECT l.lot, m.account, l.points, l.points, l.state, l.activates_at, l.expires_at, 'import', $2::timestamptz "
        "FROM import_lot l JOIN import_member m ON m.run = l.run AND m.legacy_id = l.member "
        "WHERE l.run = $1 AND l.lot IS NOT NULL",
        "INSERT INTO ledger_entry (account, lot, kind, bucket, amount, reason, created_at) "
        "SELECT m.account, l.lot, 'import', l.state, l.points, "
        "'import ' || left($1, 12) || ' ' || l.file || ':' || l.line || COALESCE(' ' || NULLIF(l.source, ''), ''), $2::timestamptz "
        "FROM import_lot l JOIN import_member m ON m.run = l.run AND m.legacy_id = l.member "
        "WHERE l.run = $1 AND l.lot IS NOT NULL",
        "UPDATE account a SET active = a.active + s.act, pending = a.pending + s.pen, version = a.version + 1, "
        "updated_at = $2::timestamptz FROM (SELECT m.account, COALESCE(SUM(l.points) FILTER (WHERE l.state = 'active'), 0) act, "
        "COALESCE(SUM(l.points) FILTER (WHERE l.state = 'pending'), 0) pen FROM import_lot l "
        "JOIN import_member m ON m.run = l.run AND m.legacy_id = l.member WHERE l.run = $1 AND l.lot IS NOT NULL "
        "GROUP BY m.account) s WHERE a.id = s.account",
    ],
    "receipts": [
        # imported receipts are sales of the store with the legacy store's code (a store of this program or of every
        # program), else of the program's `legacy-<code>` store; each store's `import` till (no key: no till signs in
        # as it) holds them; they never accrue or move points and tills cannot return them (channel 'import')
        "INSERT INTO store (code, name, timezone, program) SELECT 'legacy-' || p.code, 'Legacy receipts (' || p.code || ')', "
        "p.timezone, p.id FROM program p WHERE p.id = {program} AND EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = $1 "
        "AND r.rejected IS NULL AND NOT EXISTS (SELECT 1 FROM store s WHERE s.code = r.store AND (s.program IS NULL "
        "OR s.program = {program}))) ON CONFLICT (code) DO NOTHING",
        "INSERT INTO till (store, code) SELECT s.id, 'import' FROM store s WHERE ((s.program IS NULL OR s.program = {program}) "
        "AND s.code IN (SELECT store FROM import_receipt WHERE run = $1 AND rejected IS NULL) "
        "OR s.code = (SELECT 'legacy-' || code FROM program WHERE id = {program})) "
        "AND NOT EXISTS (SELECT 1 FROM till t WHERE t.store = s.id AND t.code = 'import')",
        "UPDATE import_receipt r SET till = t.id FROM store s JOIN till t ON t.store = s.id AND t.code = 'import' "
        "WHERE r.run = $1 AND r.rejected IS NULL AND s.code = r.store AND (s.program IS NULL OR s.program = {program})",
        "UPDATE import_receipt r SET till = t.id FROM store s JOIN till t ON t.store = s.id AND t.code = 'import' "
        "WHERE r.run = $1 AND r.rejected IS NULL AND r.till IS NULL AND s.code = (SELECT 'legacy-' || code FROM program "
        "WHERE id = {program})",
        # exactly once: a receipt an earlier run brought is not written again (also a unique index on the sale)
        "UPDATE import_receipt r SET sale = nextval(pg_get_serial_sequence('sale', 'id')) WHERE r.run = $1 "
        "AND r.till IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sale s WHERE s.till = r.till AND s.receipt_id = r.receipt "
        "AND s.channel = 'import')",
        "INSERT INTO sale (id, store, till, receipt_id, business_date, occurred_at, membership, account, channel, status, "
        "amount, discount, redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version, earning_spend, "
        "returned_earning_spend, request_hash, response, trace, created_at) "
        "SELECT r.sale, t.store, t.id, r.receipt, (r.occurred_at AT TIME ZONE st.timezone)::date, r.occurred_at, m.membership, "
        "m.account, 'import', 'confirmed', r.amount, r.discount, 0, 0, r.to_pay, 0, 0, r.earning, 0, '', "
        "jsonb_build_object('imported', jsonb_build_object('run', left($1, 12), 'file', r.file, 'line', r.line, "
        "'store', r.store)), '[]'::jsonb, $2::timestamptz FROM import_receipt r JOIN till t ON t.id = r.till "
        "JOIN store st ON st.id = t.store JOIN import_member m ON m.run = r.run AND m.legacy_id = r.member "
        "WHERE r.run = $1 AND r.sale IS NOT NULL",
        "INSERT INTO sale_line (sale, line_no, sku, quantity_milli, price, amount, discount, redeemed_points, "
        "redeemed_amount, to_pay, accrued_points, returned_quantity_milli) "
        "SELECT r.sale, e.n, e.v->>'sku', (e.v->>'quantity_milli')::bigint, (e.v->>'price')::bigint, (e.v->>'amount')::bigint, "
        "0, 0, 0, (e.v->>'amount')::bigint, 0, 0 FROM import_receipt r CROSS JOIN LATERAL jsonb_array_elements("
        # a receipt without lines gets one line of its total (sku ''): the purchase counters count sales with a line
        # not returned ('every 5th purchase'), and analytics sees the amount
        "COALESCE(r.lines, jsonb_build_array(jsonb_build_object('sku', '', 'quantity_milli', 1000, 'price', r.to_pay, "
        "'amount', r.to_pay)))) WITH ORDINALITY e(v, n) WHERE r.run = $1 AND r.sale IS NOT NULL",
        # the member's purchase count (`member.purchases_count` in rules)
        "UPDATE membership ms SET purchases_count = ms.purchases_count + x.n, "
        "first_purchase_at = LEAST(ms.first_purchase_at, x.first), last_purchase_at = GREATEST(ms.last_purchase_at, x.last) "
        "FROM (SELECT m.membership, count(*) n, min(r.occurred_at) first, max(r.occurred_at) last FROM import_receipt r "
        "JOIN import_member m ON m.run = r.run AND m.legacy_id = r.member WHERE r.run = $1 AND r.sale IS NOT NULL "
        "GROUP BY m.membership) x WHERE ms.id = x.membership",
    ],
    "tiers": [
        # the legacy spend is carried for TIER_CARRY after the import, raised to the threshold of the member's imported
        # tier so that tier holds until then (a merged member's spend adds to the customer's; the best tier is kept);
        # a member whose purchase history came has their tier computed from it instead (compared in the report)
        "UPDATE membership ms SET tier = t.id, carried_spend = GREATEST(s.spend, t.threshold_spend), "
        f"carried_until = $2::timestamptz + interval '{TIER_CARRY}' FROM (SELECT m.membership, SUM(x.spend) spend, "
        "(array_agg(tr.id ORDER BY tr.rank DESC))[1] tier FROM import_tier x JOIN tier tr ON tr.program = {program} AND tr.code = x.tier "
        "JOIN import_member m ON m.run = x.run AND m.legacy_id = x.member WHERE x.run = $1 AND x.rejected IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = $1 AND r.member = x.member AND r.rejected IS NULL) "
        "GROUP BY m.membership) s JOIN tier t ON t.id = s.tier WHERE ms.id = s.membership",
        "UPDATE membership ms SET carried_spend = 0, carried_until = NULL FROM import_member m WHERE m.run = $1 "
        "AND ms.id = m.membership AND EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = $1 AND r.member = m.legacy_id "
        "AND r.rejected IS NULL)",
        # the spend as the ledger writer computes it (sales in the window plus the carry); from history: the tier too
        "UPDATE membership ms SET tier_spend = w.s, tier = CASE WHEN w.history THEN COALESCE(w.best, ms.tier) ELSE ms.tier END "
        "FROM (SELECT x.membership, x.s, x.history, (SELECT t.id FROM tier t WHERE t.program = {program} "
        "AND t.threshold_spend <= x.s ORDER BY t.threshold_spend DESC, t.rank DESC LIMIT 1) best "
        "FROM (SELECT m.membership, EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = $1 AND r.member = m.legacy_id "
        "AND r.rejected IS NULL) history, COALESCE((SELECT SUM(s.earning_spend - s.returned_earning_spend) FROM sale s "
        f"WHERE s.membership = m.membership AND s.status = 'confirmed' AND s.occurred_at > $2::timestamptz - interval '{TIER_CARRY}' "
        "AND s.occurred_at <= $2::timestamptz), 0) + CASE WHEN mm.carried_until > $2::timestamptz THEN mm.carried_spend "
        "ELSE 0 END s FROM import_member m JOIN membership mm ON mm.id = m.membership WHERE m.run = $1 "
        "AND (EXISTS (SELECT 1 FROM import_tier x WHERE x.run = $1 AND x.member = m.legacy_id AND x.rejected IS NULL) "
        "OR EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = $1 AND r.member = m.legacy_id AND r.rejected IS NULL))) x) w "
        "WHERE ms.id = w.membership",
        # the tier is read by a confirm under the account's version: bump it with the tier
        "UPDATE account a SET version = a.version + 1 FROM import_member m WHERE m.run = $1 AND a.id = m.account "
        "AND {program} > 0 AND $2::timestamptz IS NOT NULL AND (EXISTS (SELECT 1 FROM import_tier x WHERE x.run = $1 "
        "AND x.member = m.legacy_id AND x.rejected IS NULL) OR EXISTS (SELECT 1 FROM import_receipt r WHERE r.run = $1 "
        "AND r.member = m.legacy_id AND r.rejected IS NULL))",
    ],
}


# a known member's legacy balance in this run's files against what the imports posted to their account so far (every
# `import` entry, any run: the first import's lots plus every delta since), with the lots' dates for a new lot
_DELTAS = """
SELECT m.legacy_id, m.account, f.points, f.activates_at, f.expires_at,
       COALESCE((SELECT SUM(e.amount) FROM ledger_entry e WHERE e.account = m.account AND e.kind = 'import'), 0) AS posted
FROM import_member m JOIN (
  SELECT member, SUM(points) AS points, min(activates_at) AS activates_at,
         CASE WHEN bool_or(expires_at IS NULL) THEN NULL ELSE max(expires_at) END AS expires_at
  FROM import_lot WHERE run = $1 AND rejected IS NULL GROUP BY member) f ON f.member = m.legacy_id
WHERE m.run = $1 AND m.known AND m.account > $2 ORDER BY m.account LIMIT $3
"""


async def post_deltas(run: str, now: dt.datetime) -> tuple[int, int, int]:
    """A delta's balances: for each known member with rows in the balances file, only the difference between the
    legacy balance now and what the imports posted before is posted, through the ledger writer (each account under
    its row lock, what fell due applied first): more -> one new lot (`import`, active from now, or pending until the
    file's earliest activation; expiring with the file's latest expiry); less -> taken from active lots, earliest
    expiry first (an `import` entry out), as far as the active points go. Safe to repeat: the difference is read from
    the ledger. Returns (points added, points taken, points that could not be taken)."""
    from loyalty_core.ledger import ops, writer
    from loyalty_core.ledger.posting import Plan

    added = taken = short = 0
    reason = f"import {run[:12]} delta"
    last = 0
    while True:
        # one short transaction per chunk, under the run's row lock (two applies at once: the second reads the
        # ledger after the first's chunk committed, so nothing is posted twice)
        async with DB.transaction():
            conn: asyncpg.Connection = DB.current_transaction.get().connection  # type: ignore[union-attr]
            await conn.execute("SELECT 1 FROM import_run WHERE id = $1 FOR UPDATE", run)
            rows = await conn.fetch(_DELTAS, run, last, DELTA_CHUNK)
            for row in rows:
                diff = int(row["points"]) - int(row["posted"])
                if diff == 0:
                    continue
                view = (await ops.load_views([row["account"]], lock="lock", holder=True))[0]
                await ops.apply_due(view, now)
                plan = Plan(view, now)
                if diff > 0:
                    starts = row["activates_at"] if row["activates_at"] > now else now
                    plan.accrue(diff, now, kind="import", source="import", activates_at=starts,
                                expires_at=row["expires_at"], reason=f"{reason} {row['legacy_id']}"[:200])
                    added += diff
                else:
                    take = min(-diff, view.active)
                    plan.spend(take, kind="import", reason=f"{reason} {row['legacy_id']}"[:200])
                    taken += take
                    short += -diff - take
                plan.pass_update(view.card)
                if plan.posting().moves_points():
                    await writer.write(plan.posting(), view=view)
        if len(rows) < DELTA_CHUNK:
            break
        last = rows[-1]["account"]
    return added, taken, short


async def apply(program: Program, run: str, now: dt.datetime, actor: str, hooks: Hooks | None = None) -> list[str]:
    """Apply the phases not done yet; returns the phases applied by this call."""
    hooks = hooks or Hooks()
    applied: list[str] = []
    for phase in PHASES:
        if phase == "deltas":
            async with DB.transaction():
                conn = DB.current_transaction.get().connection  # type: ignore[union-attr]
                if phase in await conn.fetchval("SELECT phases FROM import_run WHERE id = $1", run):
                    continue
            await post_deltas(run, now)  # its own short transactions (safe to repeat: read from the ledger)
            async with DB.transaction():
                conn = DB.current_transaction.get().connection  # type: ignore[union-attr]
                await conn.execute("UPDATE import_run SET phases = array_append(phases, $2) WHERE id = $1 "
                                   "AND NOT $2 = ANY(phases)", run, phase)
            applied.append(phase)
            hooks.phase_done(phase)
            continue
        async with DB.transaction():
            conn: asyncpg.Connection = DB.current_transaction.get().connection  # type: ignore[union-attr]
            row = await conn.fetchrow("SELECT status, phases FROM import_run WHERE id = $1 FOR UPDATE", run)
            if row is None or row["status"] == "staging":
                raise read.ReadError("the run is not staged")
            if phase in row["phases"]:
                continue
            if not row["phases"]:
                await check(conn, run, program)  # the database may have moved since the dry run
            if phase == "audit":
                totals = await conn.fetchrow(
                    "SELECT (SELECT count(*) FROM import_member WHERE run = $1 AND membership IS NOT NULL) members, "
                    "(SELECT count(*) FROM import_card WHERE run = $1 AND rejected IS NULL) cards, "
                    "(SELECT COALESCE(SUM(points), 0) FROM import_lot WHERE run = $1 AND lot IS NOT NULL) points", run)
                # an import writes points: who ran which files, and how many (staff are audited)
                await audit.record(actor, "members.import", f"program:{program.code}", {},
                                   {"run": run, "members": totals["members"], "cards": totals["cards"],
                                    "points": int(totals["points"])}, "kopilka import --apply", now)
                await conn.execute("UPDATE import_run SET status = 'applied', applied_at = $2 WHERE id = $1", run, now)
            else:
                for statement in APPLY[phase]:
                    await _execute(conn, statement, run, program, now)
            await conn.execute("UPDATE import_run SET phases = array_append(phases, $2) WHERE id = $1", run, phase)
        applied.append(phase)
        hooks.phase_done(phase)
    return applied

