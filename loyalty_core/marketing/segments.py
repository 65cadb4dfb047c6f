"""Segments: named groups of a program's members, static (an uploaded list) or dynamic (a condition over member
facts, loyalty_core/marketing/conditions.py). Who is in a segment is `membership.segments`, the one place the
till's rules (target.segments) and the campaigns read, so a recompute is all it takes for a rule to fire.

Each recompute is one set-based statement per segment that finds who joins and who leaves (queries.diff_statement),
then the writes in chunks of CHUNK memberships, each a short transaction under a lock that keeps two recomputes from
writing the same memberships at once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from loyalty_core import db
from loyalty_core.errors import ValidationFailed
from loyalty_core.marketing import queries
from loyalty_core.marketing.conditions import parse_condition
from loyalty_core.office import audit
from loyalty_core.marketing.errors import (
    SegmentExists,
    SegmentKindMismatch,
    SegmentNotFound,
    UploadInvalid,
)
from loyalty_core.piccolo_conf import DB

log = logging.getLogger("kopilka.segments")
Code = str
_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
MAX_UPLOAD_ROWS = 1_000_000
CHUNK = 5_000  # memberships written per transaction by a recompute (a till waits at most for one chunk)
UPLOAD_KINDS = ("card", "phone", "member")


class Segment(msgspec.Struct, frozen=True):
    id: int
    program: int
    program_code: str
    code: str
    name: str
    kind: Literal["static", "dynamic"]
    condition: Any | None
    status: Literal["active", "archived"]
    member_count: int
    recomputed_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    name: str = ""
    kind: Literal["static", "dynamic"] = "dynamic"
    condition: Any | None = None  # dynamic: the condition language (docs/marketing.md)


class SegmentUpdate(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    condition: Any | msgspec.UnsetType = msgspec.UNSET
    status: Literal["active", "archived"] | msgspec.UnsetType = msgspec.UNSET


class RecomputeResult(msgspec.Struct, frozen=True):
    segment: str
    members: int
    added: int
    removed: int
    seconds: float


class UnmatchedRow(msgspec.Struct, frozen=True):
    line: int
    kind: str
    value: str
    reason: str


class UploadResult(msgspec.Struct, frozen=True):
    segment: str
    rows: int
    matched: int
    members: int  # in the segment after the upload
    unmatched: list[UnmatchedRow]  # the first 100
    unmatched_count: int


class _Row(msgspec.Struct):
    id: int
    program: int
    program_code: str
    code: str
    name: str
    kind: str
    condition: str | None
    status: str
    member_count: int
    recomputed_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    timezone: str = ""


def _segment(row: Any) -> Segment:
    r = msgspec.convert(dict(row), _Row)
    return Segment(id=r.id, program=r.program, program_code=r.program_code, code=r.code, name=r.name,
                   kind=r.kind, condition=msgspec.json.decode(r.condition) if r.condition else None,  # type: ignore[arg-type]
                   status=r.status, member_count=r.member_count, recomputed_at=r.recomputed_at,  # type: ignore[arg-type]
                   created_by=r.created_by, created_at=r.created_at, updated_at=r.updated_at)


async def _program(program_code: str) -> Any:
    row = await db.fetchrow(queries.PROGRAM_BY_CODE, program_code)
    if row is None:
        raise SegmentNotFound(f"program {program_code!r} does not exist")
    return row


async def get_segment(program_code: str, code: str) -> Segment:
    row = await db.fetchrow(queries.SEGMENT_BY_CODE, program_code, code)
    if row is None:
        raise SegmentNotFound(f"segment {code!r} does not exist in program {program_code!r}")
    return _segment(row)


async def list_segments(program_code: str) -> list[Segment]:
    await _program(program_code)
    return [_segment(r) for r in await db.fetch(queries.SEGMENTS_OF_PROGRAM, program_code)]


async def create_segment(program_code: str, spec: SegmentCreate, actor: str, now: dt.datetime,
                         origin: str = "") -> Segment:
    """A new segment; a dynamic one is computed at once (its members are in `membership.segments` on return)."""
    if not _CODE.match(spec.code):
        raise ValidationFailed("code: lower-case letters, digits, '-' and '_', 1..64 characters, e.g. 'lapsing-gold'")
    if len(spec.name) > 200:
        raise ValidationFailed("name: up to 200 characters")
    condition = None
    if spec.kind == "dynamic":
        if spec.condition is None:
            raise ValidationFailed("condition: a dynamic segment needs a condition (docs/marketing.md)")
        parse_condition(spec.condition)
        condition = msgspec.json.encode(spec.condition).decode()
    elif spec.condition is not None:
        raise ValidationFailed("condition: a static segment has no condition; upload its list instead")
    program = await _program(program_code)
    async with DB.transaction():
        rows = await db.fetch(queries.INSERT_SEGMENT, program["id"], spec.code, spec.name or spec.code, spec.kind,
                              condition, actor, now)
        if not rows:
            raise SegmentExists(f"segment {spec.code!r} exists in program {program_code!r}")
        await audit.record(actor, "segment.create", f"segment:{program_code}/{spec.code}", {},
                           {"kind": spec.kind, "name": spec.name, "condition": spec.condition}, "", now, origin)
    if spec.kind == "dynamic":  # after the commit: the writes go in short chunks (the job retries a failure)
        await recompute_segment(program_code, spec.code, now)
    return await get_segment(program_code, spec.code)


async def update_segment(program_code: str, code: str, change: SegmentUpdate, actor: str, now: dt.datetime,
                         origin: str = "") -> Segment:
    """Rename, change the condition (recomputed at once) or archive (nobody is in an archived segment)."""
    segment = await get_segment(program_code, code)
    condition = None
    if change.condition is not msgspec.UNSET:
        if segment.kind != "dynamic":
            raise SegmentKindMismatch(f"segment {code!r} is static: upload its list instead of a condition")
        parse_condition(change.condition)
        condition = msgspec.json.encode(change.condition).decode()
    name = segment.name if change.name is msgspec.UNSET else change.name
    if len(name) > 200:
        raise ValidationFailed("name: up to 200 characters")
    status = segment.status if change.status is msgspec.UNSET else change.status
    async with DB.transaction():
        await db.fetch(queries.UPDATE_SEGMENT, segment.id, name, condition, status, now)
        await audit.record(actor, "segment.update", f"segment:{program_code}/{code}",
                           {"name": segment.name, "condition": segment.condition, "status": segment.status},
                           msgspec.to_builtins(change), "", now, origin)
    if condition is not None or status != segment.status:
        await recompute_segment(program_code, code, now)
    return await get_segment(program_code, code)


async def recompute_segment(program_code: str, code: str, now: dt.datetime) -> RecomputeResult:
    """Make `membership.segments` say who is in the segment now: one statement, one transaction."""
    segment = await get_segment(program_code, code)
    program = await _program(program_code)
    return await _recompute(segment, program["timezone"], now)


async def _recompute(segment: Segment, timezone: str, now: dt.datetime) -> RecomputeResult:
    """Who must join and leave (one statement, no lock), then the writes in chunks of CHUNK ids, each a short
    transaction under the program's recompute lock (two recomputes never write the same memberships at once, so
    they cannot deadlock). Inside a caller's transaction (an upload) it all lands with the caller's commit."""
    started = dt.datetime.now(dt.UTC)
    static = segment.kind == "static" and segment.status == "active"
    node = parse_condition(segment.condition) if segment.kind == "dynamic" and segment.status == "active" else None
    statement, args = queries.diff_statement(node, static)
    fixed: list[Any] = [segment.program, now, timezone, segment.code]
    if static:
        fixed.append(segment.id)
    diff = (await db.fetch(statement, *fixed, *args))[0]
    moved = {"joining": 0, "leaving": 0}
    for column, apply in (("leaving", queries.APPLY_LEAVE), ("joining", queries.APPLY_JOIN)):
        ids = diff[column]
        for low in range(0, len(ids), CHUNK):
            async with DB.transaction():
                await db.fetch(queries.RECOMPUTE_LOCK, segment.program)
                moved[column] += (await db.fetch(apply, ids[low:low + CHUNK], segment.code))[0]["n"]
    await db.fetch(queries.SEGMENT_RECOMPUTED, segment.id, diff["members"], now)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return RecomputeResult(segment=segment.code, members=diff["members"], added=moved["joining"],
                           removed=moved["leaving"], seconds=round(seconds, 3))


async def recompute_all(now: dt.datetime, progress: Callable[[RecomputeResult], None] | None = None) -> list[RecomputeResult]:
    """Every active dynamic segment of every program (the `segments` job). A segment that fails is logged and
    skipped: the others are still computed, and the next run tries it again."""
    results = []
    for row in await db.fetch(queries.SEGMENTS_TO_RECOMPUTE):
        try:
            result = await _recompute(_segment(row), row["timezone"], now)
        except Exception:
            log.exception("segment %s/%s: the recompute failed", row["program_code"], row["code"])
            continue
        results.append(result)
        if progress is not None:
            progress(result)
    return results


class Preview(msgspec.Struct, frozen=True):
    members: int
    seconds: float


class PreviewIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    condition: Any


async def preview(program_code: str, condition: Any, now: dt.datetime) -> Preview:
    """How many of the program's members a condition selects now, before it is saved (nothing is written)."""
    node = parse_condition(condition)
    program = await _program(program_code)
    started = dt.datetime.now(dt.UTC)
    statement, args = queries.count_statement(node)
    row = (await db.fetch(statement, program["id"], now, program["timezone"], *args))[0]
    return Preview(members=row["members"], seconds=round((dt.datetime.now(dt.UTC) - started).total_seconds(), 3))


# --- static lists --------------------------------------------------------------------------------------------


def read_upload(text: str) -> list[tuple[int, str, str]]:
    """CSV -> (line, kind, value). Either one column under a header `card`, `phone` or `member` (a member id),
    or two columns `kind,value` (a header line of exactly that is skipped). Blank lines are skipped."""
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, str, str]] = []
    single: str | None = None
    for number, cells in enumerate(reader, start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if number == 1 or (single is None and not rows and len(cells) == 1):
            head = [c.lower().lstrip("\ufeff") for c in cells]
            if len(head) == 1 and head[0] in UPLOAD_KINDS:
                single = head[0]
                continue
            if head == ["kind", "value"]:
                continue
        if single is not None:
            if len(cells) != 1:
                raise UploadInvalid(f"line {number}: one value per line under the header '{single}'")
            rows.append((number, single, cells[0]))
        elif len(cells) == 2 and cells[0].lower() in UPLOAD_KINDS:
            rows.append((number, cells[0].lower(), cells[1]))
        else:
            raise UploadInvalid(f"line {number}: expected 'kind,value' with kind card, phone or member, or a file "
                                "whose first line is the header card, phone or member")
        if len(rows) > MAX_UPLOAD_ROWS:
            raise UploadInvalid(f"more than {MAX_UPLOAD_ROWS} rows: split the list")
    if not rows:
        raise UploadInvalid("the file has no rows")
    return rows


def _normalise(kind: str, value: str) -> str | None:
    from loyalty_core.shopper_auth.otp import normalise_phone

    if kind == "phone":
        try:
            return normalise_phone(value)
        except ValidationFailed:
            return None
    return value[:64]


async def upload_static(program_code: str, code: str, text: str, mode: Literal["replace", "add"], actor: str,
                        now: dt.datetime, origin: str = "") -> UploadResult:
    """A static segment's list from a CSV of cards / phones / member ids of the program. One transaction: the list
    is replaced (or added to) and `membership.segments` follows; values of other programs never match."""
    segment = await get_segment(program_code, code)
    if segment.kind != "static":
        raise SegmentKindMismatch(f"segment {code!r} is dynamic: its members come from its condition")
    rows = read_upload(text)
    program = await _program(program_code)
    numbers, kinds, values, unreadable = [], [], [], []
    for line, kind, value in rows:
        normal = _normalise(kind, value)
        if normal is None:
            unreadable.append(UnmatchedRow(line=line, kind=kind, value=value[:64], reason="not a phone number"))
            continue
        numbers.append(line)
        kinds.append(kind)
        values.append(normal)
    async with DB.transaction():
        found = await db.fetch(queries.RESOLVE_UPLOAD, program["id"], numbers, kinds, values)
        members = sorted({r["membership"] for r in found if r["membership"] is not None})
        unknown = [UnmatchedRow(line=r["n"], kind=r["kind"], value=r["value"], reason="not a member of the program")
                   for r in found if r["membership"] is None]
        if mode == "replace":
            await db.fetch(queries.CLEAR_STATIC, segment.id)
        await db.fetch(queries.ADD_STATIC, segment.id, members, now)
        await db.fetch(queries.UPDATE_SEGMENT, segment.id, segment.name, None, segment.status, now)
        result = await _recompute(segment, program["timezone"], now)
        await audit.record(actor, "segment.upload", f"segment:{program_code}/{code}", {"members": segment.member_count},
                           {"members": result.members, "mode": mode, "rows": len(rows)}, "", now, origin)
    unmatched = sorted(unreadable + unknown, key=lambda u: u.line)
    return UploadResult(segment=code, rows=len(rows), matched=len(rows) - len(unmatched), members=result.members,
                        unmatched=unmatched[:100], unmatched_count=len(unmatched))
