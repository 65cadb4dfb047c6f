"""The audit trail: who changed what, when, from what to what, and why. Written in the caller's transaction,
so a change and its record commit together (or neither does)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from loyalty_core import db
from loyalty_core.tables import AuditEvent

_EVENT = "SELECT id, actor, action, subject, before, after, reason, created_at, origin FROM audit_event "
EVENTS_OF = _EVENT + "WHERE subject = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
# each filter twice: '' (or NULL) for "any", then its value
SEARCH = (
    _EVENT + "WHERE ($1 = '' OR actor = $2) AND ($3 = '' OR action LIKE $4 || '%') AND ($5 = '' OR subject = $6) "
    "AND ($7::timestamptz IS NULL OR created_at >= $8) AND ($9::timestamptz IS NULL OR created_at < $10) "
    "AND ($11::bigint IS NULL OR id < $12) ORDER BY created_at DESC, id DESC LIMIT $13"
)


class AuditEventOut(msgspec.Struct, kw_only=True):
    id: int
    actor: str
    action: str
    subject: str
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str
    created_at: dt.datetime
    origin: str = ""


async def record(actor: str, action: str, subject: str, before: dict[str, Any], after: dict[str, Any], reason: str,
                 now: dt.datetime, origin: str = "") -> int:
    """One audit event; values go through msgspec so dates and times are stored as ISO strings.
    `origin`: where the change came from (the client's IP), when a request made it."""
    rows = await AuditEvent.insert(AuditEvent(
        actor=actor, action=action, subject=subject, before=msgspec.json.encode(before).decode(),
        after=msgspec.json.encode(after).decode(), reason=reason, created_at=now, origin=origin[:64],
    )).returning(AuditEvent.id)
    return rows[0]["id"]  # type: ignore[no-any-return]


async def events_of(subject: str, limit: int = 100) -> list[AuditEventOut]:
    return [_out(r) for r in await db.fetch(EVENTS_OF, subject, limit)]


async def search(*, actor: str = "", action: str = "", subject: str = "", since: dt.datetime | None = None,
                 until: dt.datetime | None = None, before_id: int | None = None, limit: int = 50) -> list[AuditEventOut]:
    """The auditor's view: every event, newest first, filtered by actor / action prefix / subject and period."""
    rows = await db.fetch(
        SEARCH,
        actor, actor, action, action.replace("%", "").replace("_", r"\_"), subject, subject, since, since, until, until,
        before_id, before_id, limit,
    )
    return [_out(r) for r in rows]


def _out(row: asyncpg.Record) -> AuditEventOut:
    return msgspec.convert({**dict(row), "before": _decoded(row["before"]), "after": _decoded(row["after"])},
                           AuditEventOut)


def _decoded(value: Any) -> dict[str, Any]:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value  # type: ignore[no-any-return]
