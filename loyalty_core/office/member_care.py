"""Support's two heavy actions, each behind four eyes (`approvals`): merge two members of one program (the same
person registered twice) and erase a member on request.

Support proposes (`propose_merge`, `propose_erasure`: checked now, filed as a `member.merge` / `member.erase`
approval); another person with the approver's role approves, and `approvals.approve` runs `merge` / `erase` in
its own transaction under the approval's row lock, so an approval runs once. Both check everything again at
that moment (the members may have changed while the request waited). docs/back-office.md, "Merge and erasure".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from loyalty_core import db
from loyalty_core.errors import Conflict, NotFound, ValidationFailed
from loyalty_core.ledger import ops, writer
from loyalty_core.ledger.posting import Plan
from loyalty_core.members import profile, tiers
from loyalty_core.office import audit
from loyalty_core.piccolo_conf import DB

MERGE, ERASE = "member.merge", "member.erase"


class MemberRow(msgspec.Struct, kw_only=True):
    membership_id: int
    program_id: int
    membership_status: str
    customer_id: int | None
    customer_status: str | None


class MemberBusy(Conflict):
    slug, title = "member-busy", "The member has requests waiting for approval"


async def _members(ids: list[int], *, lock: bool = False) -> dict[int, MemberRow]:
    rows = await db.fetch(
        "SELECT m.id AS membership_id, m.program AS program_id, m.status AS membership_status, "
        "m.customer AS customer_id, c.status AS customer_status FROM membership m "
        "LEFT JOIN customer c ON c.id = m.customer WHERE m.id = ANY($1::integer[]) ORDER BY m.id"
        + (" FOR UPDATE OF m" if lock else ""), ids)
    return {r["membership_id"]: msgspec.convert(dict(r), MemberRow) for r in rows}


async def _waiting(membership_ids: list[int], except_approval: int | None = None) -> list[int]:
    """Approvals still pending that touch these members (an adjustment, another merge or erasure)."""
    subjects = [f"membership:{m}" for m in membership_ids]
    rows = await db.fetch(
        "SELECT id FROM pending_approval WHERE status = 'pending' AND id IS DISTINCT FROM $3 "
        "AND (subject = ANY($1::text[]) OR payload->>'source' = ANY($2::text[])) ORDER BY id",
        subjects, [str(m) for m in membership_ids], except_approval)
    return [r["id"] for r in rows]


def _live(row: MemberRow | None, what: str, membership_id: int) -> MemberRow:
    if row is None:
        raise NotFound(f"{what}: member {membership_id} does not exist")
    if row.customer_id is None:
        raise ValidationFailed(f"{what}: member {membership_id} is an anonymous card, not a registered member")
    if row.customer_status != "active" or row.membership_status == "closed":
        raise ValidationFailed(f"{what}: member {membership_id} is deleted or closed")
    return row


async def check_merge(source_id: int, target_id: int, *, lock: bool = False,
                      except_approval: int | None = None) -> tuple[MemberRow, MemberRow]:
    if source_id == target_id:
        raise ValidationFailed("A member cannot be merged into itself")
    found = await _members([source_id, target_id], lock=lock)
    source = _live(found.get(source_id), "merge from", source_id)
    target = _live(found.get(target_id), "merge into", target_id)
    if source.program_id != target.program_id:
        raise ValidationFailed("The two members belong to different programs: they cannot be merged")
    busy = await _waiting([source_id, target_id], except_approval)
    if busy:
        raise MemberBusy("Decide the waiting requests first: " + ", ".join(f"#{b}" for b in busy))
    return source, target


async def check_erasure(membership_id: int, *, lock: bool = False, except_approval: int | None = None) -> MemberRow:
    member = _live((await _members([membership_id], lock=lock)).get(membership_id), "erase", membership_id)
    rows = await db.fetch("SELECT id FROM membership WHERE customer = $1 ORDER BY id", member.customer_id)
    busy = await _waiting([r["id"] for r in rows], except_approval)
    if busy:
        raise MemberBusy("Decide the waiting requests first: " + ", ".join(f"#{b}" for b in busy))
    return member


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 3 <= len(reason) <= 300:
        raise ValidationFailed("Reason: 3 to 300 characters")
    return reason


async def propose_merge(source_id: int, target_id: int, reason: str, actor: Any, now: dt.datetime) -> Any:
    from loyalty_core.office import approvals  # it runs this module's merge

    reason = _reason(reason)
    async with DB.transaction():
        await check_merge(source_id, target_id, lock=True)
        return await approvals.file(MERGE, f"membership:{target_id}", {"source": str(source_id),
                                                                      "target": str(target_id)},
                                    0, reason, actor, now)


async def propose_erasure(membership_id: int, reason: str, actor: Any, now: dt.datetime) -> Any:
    from loyalty_core.office import approvals

    reason = _reason(reason)
    async with DB.transaction():
        member = await check_erasure(membership_id, lock=True)
        return await approvals.file(ERASE, f"membership:{membership_id}",
                                    {"membership_id": membership_id, "customer_id": member.customer_id},
                                    0, reason, actor, now)


async def merge(approval_id: int, payload: dict[str, Any], reason: str, actor: Any, now: dt.datetime) -> dict[str, Any]:
    """Run an approved merge in the caller's transaction: cards, points (the ledger's transfer), purchases,
    personal coupons, push devices and the contacts the target lacks move; the source is closed."""
    source_id, target_id = int(payload["source"]), int(payload["target"])
    source, target = await check_merge(source_id, target_id, lock=True, except_approval=approval_id)
    accounts = {m: await ops.ensure_account(m) for m in (source_id, target_id)}
    views = await ops.lock_accounts(list(accounts.values()), now)
    note = f"merge of member {source_id} into {target_id} (approval {approval_id})"
    points = await ops.transfer(views[accounts[source_id]], views[accounts[target_id]], now, note)
    cards = await db.fetch("UPDATE card SET membership = $2 WHERE membership = $1 RETURNING number, status",
                           source_id, target_id)
    sales = await db.fetch("UPDATE sale SET membership = $2, account = $3 WHERE membership = $1 RETURNING id",
                           source_id, target_id, accounts[target_id])
    coupons = await db.fetch("UPDATE coupon SET membership = $2 WHERE membership = $1 RETURNING code",
                             source_id, target_id)
    await db.fetch(
        "UPDATE membership t SET purchases_count = t.purchases_count + s.purchases_count, "
        "first_purchase_at = LEAST(t.first_purchase_at, s.first_purchase_at), "
        "last_purchase_at = GREATEST(t.last_purchase_at, s.last_purchase_at) FROM membership s "
        "WHERE t.id = $2 AND s.id = $1", source_id, target_id)
    await db.fetch("UPDATE membership SET status = 'closed', referral_code = NULL, purchases_count = 0 WHERE id = $1",
                   source_id)
    moved: dict[str, Any] = {"points": points, "cards": [c["number"] for c in cards], "sales": len(sales),
                             "coupons": [c["code"] for c in coupons], "devices": 0, "contacts": []}
    if source.customer_id != target.customer_id:
        moved["devices"] = len(await db.fetch(
            "UPDATE push_device SET customer = $2 WHERE customer = $1 RETURNING id", source.customer_id,
            target.customer_id))
        moved["contacts"] = await _move_contacts(source.customer_id, target.customer_id)  # type: ignore[arg-type]
    await tiers.recompute_tier(target_id, target.program_id, now, customer_id=target.customer_id)
    for subject in (f"membership:{target_id}", f"membership:{source_id}"):
        await audit.record(actor.name, "member.merged", subject, {"source": source_id, "target": target_id},
                           moved, reason, now, actor.origin)
    return {"source": source_id, "target": target_id, "moved": moved}


async def _move_contacts(source_customer: int, target_customer: int) -> list[str]:
    """A phone or e-mail only the source has goes to the target (the person's one account from now on)."""
    rows = await db.fetch("SELECT id, phone, email FROM customer WHERE id = ANY($1::integer[]) FOR UPDATE",
                          [source_customer, target_customer])
    by_id = {r["id"]: r for r in rows}
    moved = [k for k in ("phone", "email") if by_id[source_customer][k] and not by_id[target_customer][k]]
    for column in moved:  # cleared first: both columns are unique
        await db.fetch(f"UPDATE customer SET {column} = NULL WHERE id = $1", source_customer)
        await db.fetch(f"UPDATE customer SET {column} = $2 WHERE id = $1", target_customer,
                       by_id[source_customer][column])
    return moved


async def erase(approval_id: int, payload: dict[str, Any], reason: str, actor: Any, now: dt.datetime) -> dict[str, Any]:
    """Run an approved erasure in the caller's transaction: every account of the person forfeits its points
    through the ledger (expire entries, the debt written off), then the shopper's own deletion
    (`profile.delete_account`: contacts and name gone, consents withdrawn, devices and sessions dropped,
    memberships closed, cards blocked, passes cut off). The books stay, anonymous."""
    member = await check_erasure(int(payload["membership_id"]), lock=True, except_approval=approval_id)
    customer_id = member.customer_id
    assert customer_id is not None
    note = f"erased on request (approval {approval_id})"
    forfeited = {"active": 0, "pending": 0, "debt": 0}
    rows = await db.fetch("SELECT a.id FROM account a JOIN membership m ON m.id = a.membership "
                          "WHERE m.customer = $1 ORDER BY a.id", customer_id)
    for account_id, view in (await ops.lock_accounts([r["id"] for r in rows], now)).items():
        plan = Plan(view, now)
        active, pending, debt = plan.forfeit(note)
        if plan.posting().moves_points() or debt:
            await writer.write(plan.posting(), view=view)
        forfeited = {"active": forfeited["active"] + active, "pending": forfeited["pending"] + pending,
                     "debt": forfeited["debt"] + debt}
    cards = await db.fetch("SELECT c.number FROM card c JOIN membership m ON m.id = c.membership "
                           "WHERE m.customer = $1 AND c.status IN ('active', 'emitted') ORDER BY c.id", customer_id)
    await db.fetch("DELETE FROM pass_registration WHERE card IN (SELECT c.id FROM card c JOIN membership m "
                   "ON m.id = c.membership WHERE m.customer = $1)", customer_id)
    await profile.delete_account(customer_id, now)
    after = {"forfeited": forfeited, "cards_blocked": [c["number"] for c in cards]}
    # no personal data in the trail: only ids and what moved
    await audit.record(actor.name, "member.erased", f"customer:{customer_id}", {"membership": member.membership_id},
                       after, reason, now, actor.origin)
    await audit.record(actor.name, "member.erased", f"membership:{member.membership_id}", {}, after, reason, now,
                       actor.origin)
    return {"customer_id": customer_id, **after}
