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


async def record(actor: str, action: str, subject: str, before: dict[str, Any], after: dict[str, Any], reason: str,
                 now: dt.datetime) -> int:
    """One audit event; values go through msgspec so dates and times are stored as ISO strings."""
    rows = await AuditEvent.insert(AuditEvent(
        actor=actor, action=action, subject=subject, before=msgspec.json.encode(before).decode(),
        after=msgspec.json.encode(after).decode(), reason=reason, created_at=now,
    )).returning(AuditEvent.id)
    return rows[0]["id"]  # type: ignore[no-any-return]


async def events_of(subject: str, limit: int = 100) -> list[AuditEventOut]:
    rows = await AuditEvent.raw(
        "SELECT id, actor, action, subject, before, after, reason, created_at FROM audit_event "
        "WHERE subject = {} ORDER BY created_at DESC, id DESC LIMIT {}",
        subject, limit,
    )
    return [msgspec.convert({**r, "before": _decoded(r["before"]), "after": _decoded(r["after"])}, AuditEventOut)
            for r in rows]


def _decoded(value: Any) -> dict[str, Any]:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value  # type: ignore[no-any-return]
