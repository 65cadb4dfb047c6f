"""Four eyes for a campaign that gives bonus points: a marketer proposes the launch, another marketer or an admin
approves it, and only then is it launched (service.launch). The same shape as the rule editor's publish
(loyalty_core/rules_office/drafts.py): a `pending_approval` of kind `campaign.launch`, the campaign's content
pinned by its sha256 (what the approver saw is what goes out), the proposer never approves (SelfApproval, admin
or not), the proposer may withdraw. While a proposal waits, the draft cannot be edited (service.update_campaign).
A campaign without bonus points launches at once: it moves no points.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import msgspec

from loyalty_core.campaigns import service
from loyalty_core.campaigns.model import CampaignOut
from loyalty_core.errors import Conflict, DomainError, NotFound
from loyalty_core.office import audit
from loyalty_core.office.approvals import Actor, SelfApproval
from loyalty_core.piccolo_conf import DB
from loyalty_core.tables import PendingApproval

KIND = "campaign.launch"  # pending_approval.kind
APPROVER_ROLES = ("marketer",)  # a marketing team reviews itself; admin holds every role


class Proposal(msgspec.Struct, kw_only=True):
    approval_id: int
    requested_by: str
    requested_ref: str
    reason: str
    status: str


class Launched(msgspec.Struct, kw_only=True):
    campaign: CampaignOut
    proposal: Proposal | None  # set when the launch waits for a second person instead


def needs_four_eyes(campaign: CampaignOut) -> bool:
    return campaign.bonus_points > 0


def digest(campaign: CampaignOut) -> str:
    """The content a launch fixes: everything but who and when."""
    content = msgspec.to_builtins(campaign)
    for key in ("status", "created_by", "created_at", "launched_by", "queued_at", "targeted", "control", "capped"):
        content.pop(key, None)
    return hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()


def _subject(code: str) -> str:
    return f"campaign:{code}"


async def proposal(code: str) -> Proposal | None:
    """The launch waiting for a second person, if any."""
    rows = await PendingApproval.raw(
        "SELECT id AS approval_id, requested_by, requested_ref, reason, status FROM pending_approval "
        "WHERE kind = {} AND subject = {} AND status = 'pending' ORDER BY id DESC LIMIT 1", KIND, _subject(code))
    return Proposal(**rows[0]) if rows else None


async def launch(code: str, actor: Actor, reason: str, now: dt.datetime) -> Launched:
    """The office's Launch: at once for a campaign without points, else proposed for a second person's approval."""
    async with DB.transaction():
        found = await service.campaign(code)
        if found.status != "draft":
            raise Conflict(f"campaign {code!r} is {found.status}: only a draft can be launched")
        if not needs_four_eyes(found):
            return Launched(campaign=await service.launch(code, now, operator=actor.name, origin=actor.origin),
                            proposal=None)
        await PendingApproval.raw("SELECT id FROM campaign WHERE code = {} FOR UPDATE", code)
        if await proposal(code) is not None:
            raise Conflict(f"campaign {code!r} already waits for approval")
        payload = {"campaign": code, "sha256": digest(found), "bonus_points": found.bonus_points}
        rows = await PendingApproval.insert(PendingApproval(
            kind=KIND, subject=_subject(code), payload=msgspec.json.encode(payload).decode(),
            points=found.bonus_points, reason=reason.strip()[:300], requested_by=actor.name,
            requested_ref=actor.ref, requested_at=now,
        )).returning(PendingApproval.id)
        await audit.record(actor.name, "approval.requested", f"approval:{rows[0]['id']}", {},
                           {"kind": KIND, "subject": _subject(code), "points": found.bonus_points}, reason, now,
                           actor.origin)
    return Launched(campaign=found, proposal=await proposal(code))


async def _pending(approval_id: int, actor: Actor, *, own_allowed: bool) -> dict[str, Any]:
    rows = await PendingApproval.raw("SELECT * FROM pending_approval WHERE id = {} FOR UPDATE", approval_id)
    if not rows or rows[0]["kind"] != KIND:
        raise NotFound(f"approval {approval_id} does not exist")
    row = rows[0]
    if row["status"] != "pending":
        raise Conflict(f"approval {approval_id} is already {row['status']}")
    if not own_allowed and row["requested_ref"] == actor.ref:
        raise SelfApproval("Four eyes: another person must approve the launch you proposed")
    return row  # type: ignore[no-any-return]


async def _decide(approval_id: int, status: str, actor: Actor, now: dt.datetime, result: dict[str, Any]) -> None:
    await PendingApproval.update({PendingApproval.status: status, PendingApproval.decided_by: actor.name,
                                  PendingApproval.decided_at: now,
                                  PendingApproval.result: msgspec.json.encode(result).decode()}
                                 ).where(PendingApproval.id == approval_id)


async def approval_of(code: str) -> int:
    found = await proposal(code)
    if found is None:
        raise Conflict(f"campaign {code!r}: nothing waits for approval")
    return found.approval_id


async def approve(approval_id: int, actor: Actor, now: dt.datetime) -> str:
    """Launch exactly what was proposed; refused to the proposer. If the campaign changed or was cancelled
    meanwhile, the approval is `failed` with the reason and nothing is launched. Returns the approval's status."""
    async with DB.transaction() as transaction:
        row = await _pending(approval_id, actor, own_allowed=False)
        payload = msgspec.json.decode(row["payload"]) if isinstance(row["payload"], str | bytes) else row["payload"]
        code = payload["campaign"]
        savepoint = await transaction.savepoint()
        try:
            found = await service.campaign(code)
            if found.status != "draft":
                raise Conflict(f"campaign {code!r} is {found.status} now")
            if digest(found) != payload.get("sha256"):
                raise Conflict(f"campaign {code!r} changed after the launch was proposed")
            await service.launch(code, now, operator=f"{row['requested_by']}, approved by {actor.name}",
                                 origin=actor.origin)
        except DomainError as exc:
            await savepoint.rollback_to()
            status, result = "failed", {"problem": exc.as_problem()}
        else:
            await savepoint.release()
            status, result = "approved", {"campaign": code}
        await _decide(approval_id, status, actor, now, result)
        await audit.record(actor.name, f"approval.{status}", f"approval:{approval_id}", {"status": "pending"},
                           {"status": status, "kind": KIND, "subject": row["subject"], "points": row["points"],
                            "requested_by": row["requested_by"]}, row["reason"], now, actor.origin)
    return status


async def reject(approval_id: int, actor: Actor, reason: str, now: dt.datetime) -> None:
    """Back to a draft that can be edited: an approver says no, or the proposer withdraws."""
    async with DB.transaction():
        row = await _pending(approval_id, actor, own_allowed=True)
        await _decide(approval_id, "rejected", actor, now, {})
        await audit.record(actor.name, "approval.rejected", f"approval:{approval_id}", {"status": "pending"},
                           {"status": "rejected", "kind": KIND, "subject": row["subject"]}, reason.strip()[:300],
                           now, actor.origin)


async def cancel(code: str, actor: Actor, now: dt.datetime) -> CampaignOut:
    """Cancel a campaign (service.cancel); a launch still waiting for approval is rejected with it, so nobody can
    approve a cancelled campaign's launch later."""
    async with DB.transaction():
        waiting = await proposal(code)
        if waiting is not None:
            await _pending(waiting.approval_id, actor, own_allowed=True)
            await _decide(waiting.approval_id, "rejected", actor, now, {"reason": "campaign cancelled"})
            await audit.record(actor.name, "approval.rejected", f"approval:{waiting.approval_id}",
                               {"status": "pending"}, {"status": "rejected", "kind": KIND, "subject": _subject(code)},
                               "campaign cancelled", now, actor.origin)
        return await service.cancel(code, now, operator=actor.name, origin=actor.origin)
