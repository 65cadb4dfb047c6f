"""The audit trail: who changed what, when, from what to what, and why. Written in the caller's transaction,
so a change and its record commit together (or neither does)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from loyalty_core.tables import AuditEvent


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
    rows = await AuditEvent.raw(
        "SELECT id, actor, action, subject, before, after, reason, created_at, origin FROM audit_event "
        "WHERE subject = {} ORDER BY created_at DESC, id DESC LIMIT {}",
        subject, limit,
    )
    return [msgspec.convert({**r, "before": _decoded(r["before"]), "after": _decoded(r["after"])}, AuditEventOut)
            for r in rows]


async def search(*, actor: str = "", action: str = "", subject: str = "", since: dt.datetime | None = None,
                 until: dt.datetime | None = None, before_id: int | None = None, limit: int = 50) -> list[AuditEventOut]:
    """The auditor's view: every event, newest first, filtered by actor / action prefix / subject and period."""
    rows = await AuditEvent.raw(
        "SELECT id, actor, action, subject, before, after, reason, created_at, origin FROM audit_event "
        "WHERE ({} = '' OR actor = {}) AND ({} = '' OR action LIKE {} || '%') AND ({} = '' OR subject = {}) "
        "AND ({}::timestamptz IS NULL OR created_at >= {}) AND ({}::timestamptz IS NULL OR created_at < {}) "
        "AND ({}::bigint IS NULL OR id < {}) ORDER BY created_at DESC, id DESC LIMIT {}",
        actor, actor, action, action.replace("%", "").replace("_", r"\_"), subject, subject, since, since, until, until,
        before_id, before_id, limit,
    )
    return [msgspec.convert({**r, "before": _decoded(r["before"]), "after": _decoded(r["after"])}, AuditEventOut)
            for r in rows]


def _decoded(value: Any) -> dict[str, Any]:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value  # type: ignore[no-any-return]
