"""Four eyes: a manual adjustment above the limit the admin sets waits for a second person.

The admin API and the back office both call `needs_approval` before adjusting; above the limit they file a
pending approval (`request`) instead, answering 202 with its id. Another person approves it (`approve`): the
same person (`requested_ref`: staff:<id> or key:<id>) cannot, and approving runs the very adjustment that was
asked, through `adjustments.adjust_points` / `adjust_many`, with the approval's own operation id, so a double
click or a retried approval adjusts once. Every step is audited.
A merge or an erasure of a member (kinds `member.merge`, `member.erase`, filed by support in the back office) runs
`loyalty_core.office.member_care.merge` / `erase` the same way: once, refused to whoever asked.
A rules publish (kind `rules.publish`, filed by the back office's rule editor) is decided by
`loyalty_core.rules_office.drafts`, and a campaign launch with bonus points (`campaign.launch`) by
`loyalty_core.campaigns.approval`, whichever page or API approves or rejects it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import asyncpg
import msgspec

from loyalty_core import db
from loyalty_core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.adjustments import adjustments
from loyalty_core.office import audit
from loyalty_core.adjustments.adjustments import AdjustmentIn, MassAdjustmentIn
from loyalty_core.tables import OfficeSetting, PendingApproval

LIMIT_KEY = "adjust_approval_limit"
DEFAULT_LIMIT = 10_000  # points; the admin changes it in the back office (/office/settings)
APPROVER_ROLES = frozenset({"admin"})  # a supervisor approves; docs/back-office.md

# --- the statements ------------------------------------------------------------------------------------------

SET_SETTING = (
    "INSERT INTO office_setting (key, value, updated_by, updated_at) VALUES ($1, $2::jsonb, $3, $4) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, "
    "updated_at = EXCLUDED.updated_at"
)
APPROVALS_BY_STATUS = (
    "SELECT * FROM pending_approval WHERE status = $1 ORDER BY requested_at DESC, id DESC LIMIT $2"
)
APPROVAL = "SELECT * FROM pending_approval WHERE id = $1"
LOCK_APPROVAL = "SELECT * FROM pending_approval WHERE id = $1 FOR UPDATE"


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # as the audit names them
    ref: str  # staff:<id> | key:<id>: "the same person"
    origin: str = ""  # the client's IP


class ApprovalOut(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    subject: str
    points: int
    reason: str
    requested_by: str
    requested_at: dt.datetime
    status: Literal["pending", "approved", "rejected", "failed"]
    decided_by: str = ""
    decided_at: dt.datetime | None = None
    payload: dict[str, Any] = {}
    result: dict[str, Any] = {}


class PendingOut(msgspec.Struct, kw_only=True):
    """The 202 answer: nothing changed yet, approval `approval_id` waits for a second person."""

    approval_id: int
    status: str = "pending"
    detail: str = "Above the adjustment limit: another person must approve it"


async def limit() -> int:
    row = await OfficeSetting.select(OfficeSetting.value).where(OfficeSetting.key == LIMIT_KEY).first()
    value = _decoded(row["value"]) if row else {}
    return int(value.get("points", DEFAULT_LIMIT))


async def set_limit(points: int, actor: Actor, now: dt.datetime) -> int:
    if not 0 <= points <= 10**9:
        raise ValidationFailed("points: from 0 to 1 000 000 000")
    async with DB.transaction():
        before = await limit()
        await db.fetch(SET_SETTING, LIMIT_KEY, msgspec.json.encode({"points": points}).decode(), actor.name, now)
        await audit.record(actor.name, "settings.adjust_limit", "settings:" + LIMIT_KEY, {"points": before},
                           {"points": points}, "", now, actor.origin)
    return points


async def needs_approval(points: int) -> bool:
    return abs(points) > await limit()


async def request_adjustment(membership_id: int, adjustment: AdjustmentIn, actor: Actor, now: dt.datetime) -> PendingOut:
    adjustments.check(adjustment, now)
    await adjustments.member_exists(membership_id)
    return await file("points.adjust", f"membership:{membership_id}",
                       {"membership_id": membership_id, "adjustment": msgspec.to_builtins(adjustment)},
                       adjustment.points, adjustment.reason, actor, now)


async def request_mass(mass: MassAdjustmentIn, actor: Actor, now: dt.datetime) -> PendingOut:
    count = len(mass.membership_ids or mass.card_numbers or [])
    return await file("points.adjust_many", f"mass:{count}", {"mass": msgspec.to_builtins(mass)},
                       mass.points, mass.reason, actor, now)


async def file(kind: str, subject: str, payload: dict[str, Any], points: int, reason: str, actor: Actor,
                now: dt.datetime) -> PendingOut:
    async with DB.transaction():
        rows = await PendingApproval.insert(PendingApproval(
            kind=kind, subject=subject, payload=msgspec.json.encode(payload).decode(), points=points, reason=reason,
            requested_by=actor.name, requested_ref=actor.ref, requested_at=now,
        )).returning(PendingApproval.id)
        approval_id = rows[0]["id"]
        await audit.record(actor.name, "approval.requested", f"approval:{approval_id}", {},
                           {"kind": kind, "subject": subject, "points": points}, reason, now, actor.origin)
    return PendingOut(approval_id=approval_id)


async def listing(status: str = "pending", limit_: int = 100) -> list[ApprovalOut]:
    return [_out(r) for r in await db.fetch(APPROVALS_BY_STATUS, status, limit_)]


async def get(approval_id: int) -> ApprovalOut:
    row = await db.fetchrow(APPROVAL, approval_id)
    if row is None:
        raise NotFound(f"approval {approval_id} does not exist")
    return _out(row)


async def _rules_draft(approval_id: int) -> int | None:
    """The draft of a rules publish (decided by loyalty_core.rules_office.drafts, which publishes it), else None."""
    found = await get(approval_id)
    return int(found.payload["draft_id"]) if found.kind == "rules.publish" else None


async def approve(approval_id: int, actor: Actor, now: dt.datetime) -> ApprovalOut:
    """Run the waiting adjustment as asked; refused to the person who asked it, and to a decided one."""
    draft_id = await _rules_draft(approval_id)
    if draft_id is not None:
        from loyalty_core.rules_office import drafts  # it imports this module

        await drafts.approve(draft_id, actor, now)
        return await get(approval_id)
    if (await get(approval_id)).kind == "campaign.launch":
        from loyalty_core.campaigns import approval as campaign_approval  # it imports this module

        await campaign_approval.approve(approval_id, actor, now)
        return await get(approval_id)
    async with DB.transaction() as transaction:
        row = await _locked(approval_id, actor)
        payload = _decoded(row["payload"])
        operation = f"approval:{approval_id}"
        requester = row["requested_by"]
        savepoint = await transaction.savepoint()  # a refused adjustment is undone alone; the decision stays
        try:
            if row["kind"] in ("member.merge", "member.erase"):
                from loyalty_core.office import member_care  # it files through this module

                run = member_care.merge if row["kind"] == "member.merge" else member_care.erase
                done = await run(approval_id, payload, row["reason"], actor, now)
            elif row["kind"] == "points.adjust":
                adjustment = msgspec.convert(payload["adjustment"], AdjustmentIn)
                done = await adjustments.adjust_points(payload["membership_id"], msgspec.structs.replace(
                    adjustment, operation_id=None), now, operator=requester, key=operation, origin=actor.origin)
            else:
                mass = msgspec.convert(payload["mass"], MassAdjustmentIn)
                done = await adjustments.adjust_many(msgspec.structs.replace(mass, operation_id=None), now,
                                                     operator=requester, key=operation)
        except DomainError as exc:
            # the member changed meanwhile (e.g. spent the points a write-off needed): recorded, nothing moved
            await savepoint.rollback_to()
            result, status = {"problem": exc.as_problem()}, "failed"
        else:
            await savepoint.release()
            result, status = (done if isinstance(done, dict) else msgspec.to_builtins(done)), "approved"
        await PendingApproval.update({PendingApproval.status: status, PendingApproval.decided_by: actor.name,
                                      PendingApproval.decided_at: now,
                                      PendingApproval.result: msgspec.json.encode(result).decode()}
                                     ).where(PendingApproval.id == approval_id)
        await audit.record(actor.name, f"approval.{status}", f"approval:{approval_id}", {"status": "pending"},
                           {"status": status, "kind": row["kind"], "subject": row["subject"], "points": row["points"],
                            "requested_by": requester}, row["reason"], now, actor.origin)
    return await get(approval_id)


async def reject(approval_id: int, actor: Actor, reason: str, now: dt.datetime) -> ApprovalOut:
    draft_id = await _rules_draft(approval_id)
    if draft_id is not None:
        from loyalty_core.rules_office import drafts

        await drafts.reject(draft_id, actor, reason, now)
        return await get(approval_id)
    if (await get(approval_id)).kind == "campaign.launch":
        from loyalty_core.campaigns import approval as campaign_approval

        await campaign_approval.reject(approval_id, actor, reason, now)
        return await get(approval_id)
    async with DB.transaction():
        row = await _locked(approval_id, actor, own_allowed=True)
        await PendingApproval.update({PendingApproval.status: "rejected", PendingApproval.decided_by: actor.name,
                                      PendingApproval.decided_at: now}).where(PendingApproval.id == approval_id)
        await audit.record(actor.name, "approval.rejected", f"approval:{approval_id}", {"status": "pending"},
                           {"status": "rejected", "kind": row["kind"], "subject": row["subject"],
                            "points": row["points"]}, reason, now, actor.origin)
    return await get(approval_id)


class SelfApproval(Forbidden):
    slug, status, title = "self-approval", 403, "You cannot approve your own request"


async def _locked(approval_id: int, actor: Actor, own_allowed: bool = False) -> asyncpg.Record:
    row = await db.fetchrow(LOCK_APPROVAL, approval_id)
    if row is None:
        raise NotFound(f"approval {approval_id} does not exist")
    if row["status"] != "pending":
        raise Conflict(f"approval {approval_id} is already {row['status']}")
    if not own_allowed and row["requested_ref"] == actor.ref:
        raise SelfApproval("Four eyes: another person must approve what you asked")
    return row


def _out(row: asyncpg.Record) -> ApprovalOut:
    return msgspec.convert({**dict(row), "payload": _decoded(row["payload"]), "result": _decoded(row["result"])},
                           ApprovalOut)


def _decoded(value: Any) -> dict[str, Any]:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else (value or {})  # type: ignore[no-any-return]
