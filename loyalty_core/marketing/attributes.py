"""Custom member attributes (`member_attribute`: a key and a text value per member), the facts a segment's
`{"fact": "attribute", "key": ...}` reads: loaded from a CSV whose header names the key (a survey's answers, an
import from the CRM). An empty value clears the attribute."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import msgspec

from loyalty_core import db
from loyalty_core.marketing import queries
from loyalty_core.marketing.errors import UploadInvalid
from loyalty_core.marketing.segments import UPLOAD_KINDS, UnmatchedRow, _normalise, _program
from loyalty_core.office import audit
from loyalty_core.piccolo_conf import DB

_KEY = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
MAX_ROWS = 1_000_000
MAX_VALUE = 200



class AttributesResult(msgspec.Struct, frozen=True):
    key: str
    rows: int
    set: int
    cleared: int
    unmatched: list[UnmatchedRow]  # the first 100
    unmatched_count: int


def read_attributes(text: str) -> tuple[str, str, list[tuple[int, str, str]]]:
    """(the kind of member key, the attribute's key, [(line, member key, value)]) from `phone,pet` + rows."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or len(rows[0]) != 2:
        raise UploadInvalid("the first line names the member column and the attribute: e.g. 'phone,pet'")
    kind, key = rows[0][0].strip().lower().lstrip("\ufeff"), rows[0][1].strip().lower()
    if kind not in UPLOAD_KINDS:
        raise UploadInvalid(f"line 1: the first column is card, phone or member, not {kind!r}")
    if not _KEY.match(key):
        raise UploadInvalid(f"line 1: {key!r} is not an attribute key (lower-case letters, digits, '-', '_')")
    found = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 2 or len(cells[1]) > MAX_VALUE:
            raise UploadInvalid(f"line {number}: two columns, the value up to {MAX_VALUE} characters")
        found.append((number, cells[0].strip(), cells[1].strip()))
        if len(found) > MAX_ROWS:
            raise UploadInvalid(f"more than {MAX_ROWS} rows: split the file")
    return kind, key, found


async def upload_attributes(program_code: str, text: str, actor: str, now: dt.datetime,
                            origin: str = "") -> AttributesResult:
    """Set (or clear, for an empty value) one attribute of the program's members named by card, phone or id."""
    kind, key, rows = read_attributes(text)
    program = await _program(program_code)
    unmatched: list[UnmatchedRow] = []
    lines, values, normal = [], [], []
    for line, member, value in rows:
        resolved = _normalise(kind, member)
        if resolved is None:
            unmatched.append(UnmatchedRow(line=line, kind=kind, value=member[:64], reason="not a phone number"))
            continue
        lines.append(line)
        normal.append(resolved)
        values.append(value)
    async with DB.transaction():
        found = await db.fetch(queries.RESOLVE_UPLOAD, program["id"], lines, [kind] * len(lines), normal)
        by_line = dict(zip(lines, values, strict=True))
        to_set = [(r["membership"], by_line[r["n"]]) for r in found if r["membership"] is not None and by_line[r["n"]]]
        to_clear = [r["membership"] for r in found if r["membership"] is not None and not by_line[r["n"]]]
        unmatched += [UnmatchedRow(line=r["n"], kind=kind, value=r["value"], reason="not a member of the program")
                      for r in found if r["membership"] is None]
        if to_set:
            await db.fetch(queries.SET_ATTRIBUTE, [m for m, _ in to_set], key, [v for _, v in to_set], now)
        if to_clear:
            await db.fetch(queries.CLEAR_ATTRIBUTE, to_clear, key)
        await audit.record(actor, "member_attribute.upload", f"attribute:{program_code}/{key}", {},
                           {"rows": len(rows), "set": len(to_set), "cleared": len(to_clear)}, "", now, origin)
    unmatched.sort(key=lambda u: u.line)
    return AttributesResult(key=key, rows=len(rows), set=len(to_set), cleared=len(to_clear),
                            unmatched=unmatched[:100], unmatched_count=len(unmatched))
