"""Rule drafts: a marketer edits a copy of the live rules, proposes it, and a second person publishes it.

- `start` copies the live document (or, to restore, an old version's) into a `rules_draft` row.
- `save_rule` / `delete_rule` / `save_document` change the draft; every save goes through the engine's validator
  (`rules.admin.checked`), so a stored draft is always a document the engine accepts, and a refused save names the
  rule and the field. A proposed draft is frozen: what the approver sees is what gets published.
- `propose` validates again and files a `pending_approval` of kind `rules.publish` (four eyes, as the office's
  adjustments above the limit). `approve` by another person (not `requested_ref`) publishes the draft through the
  admin API's own `rules.admin.replace_document`, guarded by the version the draft started from: if someone
  published meanwhile, the approval is `failed` with that problem and the draft goes back to editing. `reject`
  (anyone who may approve, or the proposer withdrawing) sends it back to editing. Every step is audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

import msgspec

from loyalty_core.errors import Conflict, DomainError, NotFound, ValidationFailed
from loyalty_core.office import audit
from loyalty_core.office.approvals import Actor, SelfApproval
from loyalty_core.piccolo_conf import DB
from loyalty_core.rules import admin as rules_admin
from loyalty_core.rules.admin import Edit
from loyalty_core.rules_office.diff import Change, diff
from loyalty_core.tables import PendingApproval, Program, RulesDraft, RulesVersion

KIND = "rules.publish"  # pending_approval.kind
Status = Literal["draft", "proposed", "published", "discarded"]
Document = dict[str, Any]


class DraftOut(msgspec.Struct, kw_only=True):
    id: int
    program: str
    base_version: int
    live_version: int
    title: str
    status: Status
    created_by: str
    created_at: dt.datetime
    updated_by: str
    updated_at: dt.datetime
    document: Document
    approval: int | None = None
    published_version: int | None = None

    @property
    def stale(self) -> bool:
        """Another version went live since this draft started: publishing it would be refused."""
        return self.status in ("draft", "proposed") and self.base_version != self.live_version


class Proposal(msgspec.Struct, kw_only=True):
    approval_id: int
    draft_id: int
    requested_by: str
    requested_ref: str
    reason: str
    status: str


class NotEditable(Conflict):
    slug, status, title = "draft-not-editable", 409, "This draft cannot be changed now"


def digest(document: Document) -> str:
    return hashlib.sha256(msgspec.json.encode(document, order="sorted")).hexdigest()


def _decoded(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


async def _program(code: str) -> dict[str, Any]:
    rows = await Program.raw("SELECT id, code, rules_version FROM program WHERE code = {}", code)
    if not rows:
        raise NotFound(f"program {code!r} does not exist")
    return rows[0]  # type: ignore[no-any-return]


_SELECT = ("SELECT d.*, p.code AS program_code, p.rules_version AS live_version FROM rules_draft d "
           "JOIN program p ON p.id = d.program ")


def _out(row: dict[str, Any]) -> DraftOut:
    return msgspec.convert({**row, "program": row["program_code"], "document": _decoded(row["document"])}, DraftOut)


async def get(draft_id: int) -> DraftOut:
    rows = await RulesDraft.raw(_SELECT + "WHERE d.id = {}", draft_id)
    if not rows:
        raise NotFound(f"draft {draft_id} does not exist")
    return _out(rows[0])


async def listing(program_code: str, limit: int = 50) -> list[DraftOut]:
    """Open drafts first (newest first), then the latest published and discarded ones."""
    rows = await RulesDraft.raw(
        _SELECT + "WHERE p.code = {} ORDER BY (d.status IN ('draft', 'proposed')) DESC, d.updated_at DESC, d.id DESC "
        "LIMIT {}", program_code, limit)
    return [_out(r) for r in rows]


async def changes(draft: DraftOut) -> list[Change]:
    """The draft against the live version (human-readable: which rule changed how)."""
    _, live = await rules_admin.live_raw_document(draft.program)
    return diff(live, draft.document)


async def start(program_code: str, actor: Actor, now: dt.datetime, *, from_version: int | None = None,
                title: str = "") -> DraftOut:
    """A new draft: a copy of the live rules, or of version `from_version` (a restore: published as a new version)."""
    program = await _program(program_code)
    number = program["rules_version"] if from_version is None else from_version
    rows = await RulesVersion.raw("SELECT document FROM rules_version WHERE program = {} AND version = {}",
                                  program["id"], number)
    if not rows:
        raise NotFound(f"program {program_code!r} has no rules version {number}")
    document = _decoded(rows[0]["document"])
    title = title.strip()[:200] or (f"Restore of version {number}" if from_version is not None else "")
    async with DB.transaction():
        made = await RulesDraft.insert(RulesDraft(
            program=program["id"], base_version=program["rules_version"], document=msgspec.json.encode(document).decode(),
            title=title, created_by=actor.name, created_ref=actor.ref, created_at=now, updated_by=actor.name,
            updated_at=now)).returning(RulesDraft.id)
        draft_id = made[0]["id"]
        await audit.record(actor.name, "rules.draft_created", f"rules_draft:{draft_id}", {},
                           {"program": program_code, "base_version": program["rules_version"], "from_version": number,
                            "title": title}, "", now, actor.origin)
    return await get(draft_id)


async def _locked(draft_id: int, *, editable: bool = True) -> DraftOut:
    rows = await RulesDraft.raw(_SELECT + "WHERE d.id = {} FOR UPDATE OF d", draft_id)
    if not rows:
        raise NotFound(f"draft {draft_id} does not exist")
    draft = _out(rows[0])
    if editable and draft.status != "draft":
        raise NotEditable(f"Draft {draft_id} is {draft.status}: it cannot be changed"
                          + (" until the proposal is approved or rejected" if draft.status == "proposed" else ""))
    return draft


async def _store(draft: DraftOut, document: Document, actor: Actor, now: dt.datetime, action: str,
                 detail: dict[str, Any]) -> DraftOut:
    rules_admin.checked(document)  # ValidationFailed (422) naming rule and field; nothing stored
    await RulesDraft.update({RulesDraft.document: msgspec.json.encode(document).decode(), RulesDraft.updated_by: actor.name,
                             RulesDraft.updated_at: now}).where(RulesDraft.id == draft.id)
    await audit.record(actor.name, action, f"rules_draft:{draft.id}", {}, detail, "", now, actor.origin)
    return msgspec.structs.replace(draft, document=document, updated_by=actor.name, updated_at=now)


def _groups(document: Document) -> list[Document]:
    groups = document.get("groups")
    if not isinstance(groups, list):
        raise ValidationFailed("The draft has no rule groups")
    return groups


def _find_rule(document: Document, rule_code: str) -> tuple[Document, int] | None:
    for group in _groups(document):
        for i, rule in enumerate(group.get("rules") or []):
            if isinstance(rule, dict) and rule.get("code") == rule_code:
                return group, i
    return None


def rule_of(draft: DraftOut, rule_code: str) -> tuple[str, Document]:
    """(the group's code, the rule's JSON) of a rule in the draft."""
    found = _find_rule(draft.document, rule_code)
    if found is None:
        raise NotFound(f"rule {rule_code!r} is not in draft {draft.id}")
    group, i = found
    return group["code"], group["rules"][i]


async def save_rule(draft_id: int, group_code: str, rule: Document, actor: Actor, now: dt.datetime, *,
                    replacing: str | None = None) -> DraftOut:
    """Put `rule` into group `group_code` (in place of rule `replacing`, which may move it to another group)."""
    async with DB.transaction():
        draft = await _locked(draft_id)
        document = msgspec.json.decode(msgspec.json.encode(draft.document))  # a deep copy to change
        groups = _groups(document)
        target = next((g for g in groups if g.get("code") == group_code), None)
        if target is None:
            raise ValidationFailed(f"group: no group {group_code!r} in the draft", errors=[f"group: no group {group_code!r}"])
        old = _find_rule(document, replacing) if replacing else None
        if replacing and old is None:
            raise NotFound(f"rule {replacing!r} is not in draft {draft_id}")
        clash = _find_rule(document, str(rule.get("code")))
        if clash is not None and rule.get("code") != replacing:
            raise ValidationFailed(f"rule '{rule.get('code')}': code: used by another rule",
                                   errors=[f"rule '{rule.get('code')}': code: used by another rule"])
        before: Document = {}
        if old is not None:
            group, i = old
            before = group["rules"][i]
            if group is target:
                target["rules"][i] = rule
            else:
                del group["rules"][i]
                target.setdefault("rules", []).append(rule)
        else:
            target.setdefault("rules", []).append(rule)
        draft = await _store(draft, document, actor, now, "rules.draft_rule_saved",
                             {"group": group_code, "rule": rule.get("code"), "replacing": replacing or "",
                              "effect": rule.get("effect"), "was": before.get("effect")})
    return draft


def group_of(draft: DraftOut, group_code: str) -> Document:
    for group in _groups(draft.document):
        if isinstance(group, dict) and group.get("code") == group_code:
            return group
    raise NotFound(f"group {group_code!r} is not in draft {draft.id}")


async def save_group(draft_id: int, group: Document, actor: Actor, now: dt.datetime, *,
                     replacing: str | None = None) -> DraftOut:
    """A group's own fields (code, name, stage, mode, ...); its rules stay (a new group starts empty)."""
    async with DB.transaction():
        draft = await _locked(draft_id)
        document = msgspec.json.decode(msgspec.json.encode(draft.document))
        groups = _groups(document)
        code = group.get("code")
        if any(g.get("code") == code for g in groups) and code != replacing:
            raise ValidationFailed(f"group '{code}': code: used by another group",
                                   errors=[f"group '{code}': code: used by another group"])
        if replacing is None:
            groups.append({**group, "rules": []})
            before: Document = {}
        else:
            index = next((i for i, g in enumerate(groups) if g.get("code") == replacing), None)
            if index is None:
                raise NotFound(f"group {replacing!r} is not in draft {draft_id}")
            before = {k: v for k, v in groups[index].items() if k != "rules"}
            groups[index] = {**groups[index], **group}
        return await _store(draft, document, actor, now, "rules.draft_group_saved",
                            {"group": code, "replacing": replacing or "", "was": before,
                             "now": {k: v for k, v in group.items() if k != "rules"}})


async def save_settings(draft_id: int, settings: Document, actor: Actor, now: dt.datetime) -> DraftOut:
    """The program's settings (tiers, limits, point value, expiry, ...) as one object."""
    async with DB.transaction():
        draft = await _locked(draft_id)
        document = {**draft.document, "settings": settings}
        return await _store(draft, document, actor, now, "rules.draft_settings_saved",
                            {"was": draft.document.get("settings", {}), "now": settings})


async def delete_rule(draft_id: int, rule_code: str, actor: Actor, now: dt.datetime) -> DraftOut:
    async with DB.transaction():
        draft = await _locked(draft_id)
        document = msgspec.json.decode(msgspec.json.encode(draft.document))
        found = _find_rule(document, rule_code)
        if found is None:
            raise NotFound(f"rule {rule_code!r} is not in draft {draft_id}")
        group, i = found
        del group["rules"][i]
        return await _store(draft, document, actor, now, "rules.draft_rule_removed", {"rule": rule_code})


async def save_document(draft_id: int, document: Document, actor: Actor, now: dt.datetime) -> DraftOut:
    """The raw view: the whole document as JSON (settings, groups and all)."""
    if not isinstance(document, dict):
        raise ValidationFailed("The rules document is a JSON object")
    async with DB.transaction():
        draft = await _locked(draft_id)
        return await _store(draft, document, actor, now, "rules.draft_document_saved", {"sha256": digest(document)})


async def discard(draft_id: int, actor: Actor, now: dt.datetime) -> DraftOut:
    async with DB.transaction():
        draft = await _locked(draft_id)
        await RulesDraft.update({RulesDraft.status: "discarded", RulesDraft.updated_by: actor.name,
                                 RulesDraft.updated_at: now}).where(RulesDraft.id == draft_id)
        await audit.record(actor.name, "rules.draft_discarded", f"rules_draft:{draft_id}", {"status": "draft"},
                           {"status": "discarded"}, "", now, actor.origin)
    return await get(draft_id)


# --- four eyes ---------------------------------------------------------------------------------


async def propose(draft_id: int, actor: Actor, reason: str, now: dt.datetime) -> Proposal:
    """Ask a second person to publish: refused for a document the engine refuses, a draft that changes nothing,
    or one started from a version that is no longer live."""
    async with DB.transaction():
        draft = await _locked(draft_id)
        rules_admin.checked(draft.document)
        if draft.stale:
            raise Conflict(f"Version {draft.live_version} went live after this draft started from version "
                           f"{draft.base_version}: start a new draft", live_version=draft.live_version)
        if not await changes(draft):
            raise ValidationFailed("The draft changes nothing against the live rules")
        payload = {"draft_id": draft_id, "program": draft.program, "base_version": draft.base_version,
                   "sha256": digest(draft.document)}
        rows = await PendingApproval.insert(PendingApproval(
            kind=KIND, subject=f"rules_draft:{draft_id}", payload=msgspec.json.encode(payload).decode(), points=0,
            reason=reason.strip()[:300], requested_by=actor.name, requested_ref=actor.ref, requested_at=now,
        )).returning(PendingApproval.id)
        approval_id = rows[0]["id"]
        await RulesDraft.update({RulesDraft.status: "proposed", RulesDraft.approval: approval_id,
                                 RulesDraft.updated_by: actor.name, RulesDraft.updated_at: now}
                                ).where(RulesDraft.id == draft_id)
        await audit.record(actor.name, "approval.requested", f"approval:{approval_id}", {},
                           {"kind": KIND, "subject": f"rules_draft:{draft_id}", "program": draft.program,
                            "base_version": draft.base_version}, reason, now, actor.origin)
    return await proposal(draft_id)


async def proposal(draft_id: int) -> Proposal:
    rows = await PendingApproval.raw(
        "SELECT a.id AS approval_id, a.requested_by, a.requested_ref, a.reason, a.status FROM rules_draft d "
        "JOIN pending_approval a ON a.id = d.approval WHERE d.id = {}", draft_id)
    if not rows:
        raise NotFound(f"draft {draft_id} has no proposal")
    return Proposal(draft_id=draft_id, **rows[0])


async def _pending(draft_id: int, actor: Actor, *, own_allowed: bool) -> tuple[DraftOut, dict[str, Any]]:
    draft = await _locked(draft_id, editable=False)
    if draft.status != "proposed" or draft.approval is None:
        raise Conflict(f"Draft {draft_id} is {draft.status}: nothing waits for approval")
    rows = await PendingApproval.raw("SELECT * FROM pending_approval WHERE id = {} FOR UPDATE", draft.approval)
    row = rows[0]
    if row["status"] != "pending" or row["kind"] != KIND:
        raise Conflict(f"approval {draft.approval} is already {row['status']}")
    if not own_allowed and row["requested_ref"] == actor.ref:
        raise SelfApproval("Four eyes: another person must approve what you proposed")
    return draft, row


async def _decide(approval_id: int, status: str, actor: Actor, now: dt.datetime, result: dict[str, Any]) -> None:
    await PendingApproval.update({PendingApproval.status: status, PendingApproval.decided_by: actor.name,
                                  PendingApproval.decided_at: now,
                                  PendingApproval.result: msgspec.json.encode(result).decode()}
                                 ).where(PendingApproval.id == approval_id)


async def approve(draft_id: int, actor: Actor, now: dt.datetime) -> DraftOut:
    """Publish the proposed draft as the next version; refused to the proposer. If it cannot be published any more
    (another version went live, the engine refuses it), the approval is `failed` and the draft is editable again."""
    async with DB.transaction() as transaction:
        draft, row = await _pending(draft_id, actor, own_allowed=False)
        payload = _decoded(row["payload"])
        savepoint = await transaction.savepoint()
        try:
            if payload.get("sha256") != digest(draft.document):
                raise Conflict("The draft changed after it was proposed")
            edit = Edit(author=actor.name, expected_version=draft.base_version,
                        comment=f"draft {draft_id}{': ' + draft.title if draft.title else ''} (proposed by "
                                f"{row['requested_by']}, approved by {actor.name}){': ' + row['reason'] if row['reason'] else ''}")
            published = await rules_admin.replace_document(draft.program, draft.document, edit)
        except DomainError as exc:
            await savepoint.rollback_to()
            await _decide(row["id"], "failed", actor, now, {"problem": exc.as_problem()})
            await RulesDraft.update({RulesDraft.status: "draft", RulesDraft.approval: None}).where(RulesDraft.id == draft_id)
            await audit.record(actor.name, "approval.failed", f"approval:{row['id']}", {"status": "pending"},
                               {"status": "failed", "kind": KIND, "subject": row["subject"],
                                "problem": exc.detail or exc.title}, row["reason"], now, actor.origin)
        else:
            await savepoint.release()
            await _decide(row["id"], "approved", actor, now, {"version": published.version})
            await RulesDraft.update({RulesDraft.status: "published", RulesDraft.published_version: published.version,
                                     RulesDraft.updated_at: now}).where(RulesDraft.id == draft_id)
            await audit.record(actor.name, "approval.approved", f"approval:{row['id']}", {"status": "pending"},
                               {"status": "approved", "kind": KIND, "subject": row["subject"],
                                "requested_by": row["requested_by"]}, row["reason"], now, actor.origin)
            await audit.record(actor.name, "rules.published", f"program:{draft.program}",
                               {"version": draft.base_version},
                               {"version": published.version, "draft": draft_id, "proposed_by": row["requested_by"],
                                "approved_by": actor.name, "sha256": payload.get("sha256")},
                               row["reason"], now, actor.origin)
    return await get(draft_id)


async def reject(draft_id: int, actor: Actor, reason: str, now: dt.datetime) -> DraftOut:
    """Back to editing: an approver says no, or the proposer withdraws."""
    async with DB.transaction():
        draft, row = await _pending(draft_id, actor, own_allowed=True)
        await _decide(row["id"], "rejected", actor, now, {})
        await RulesDraft.update({RulesDraft.status: "draft", RulesDraft.approval: None, RulesDraft.updated_at: now}
                                ).where(RulesDraft.id == draft_id)
        await audit.record(actor.name, "approval.rejected", f"approval:{row['id']}", {"status": "pending"},
                           {"status": "rejected", "kind": KIND, "subject": row["subject"]}, reason.strip()[:300], now,
                           actor.origin)
    return await get(draft_id)
