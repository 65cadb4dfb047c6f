"""Manual and mass point adjustments by an operator: an accrual or a write-off, always with a reason.

An accrual is a new lot, active at once unless `activates_at` says later, burning after the program's
expiry period unless `expires_at` says otherwise. A write-off takes from the earliest-expiring active
lots and never drives the balance below zero. Each is an `adjust` ledger entry carrying the reason,
and queues the wallet pass update in the same transaction.

Exactly once: an operation id (the `Idempotency-Key` header or `operation_id`) is recorded in the
adjustment's own transaction; a replay returns the first answer and changes nothing. A mass
adjustment is all or nothing: every member in one transaction, each under "<operation id>:<member>"; if one
member cannot be adjusted nothing is written and the 422 names them all, so it is fixed and sent again whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from loyalty_core import db
from loyalty_core.errors import CardNotFound, DomainError, NotFound, ValidationFailed
from loyalty_core.ledger import command, ops, writer
from loyalty_core.ledger.ops import BalanceOut
from loyalty_core.ledger.posting import Plan
from loyalty_core.piccolo_conf import DB
from loyalty_core.office import audit
from loyalty_core.rules import programs
from loyalty_core.till.types import AwareDateTime
from loyalty_core.tables import Membership

# --- the statements ------------------------------------------------------------------------------------------

MEMBER = (
    "SELECT m.id, m.customer, p.id AS program_id, p.rules_version, "
    "(SELECT c.id FROM card c WHERE c.membership = m.id AND c.status = 'active' ORDER BY c.id DESC LIMIT 1) AS card_id "
    "FROM membership m JOIN program p ON p.id = m.program WHERE m.id = $1"
)
MEMBERSHIPS_OF_CARDS = "SELECT number, membership FROM card WHERE number = ANY($1::varchar[]) AND membership IS NOT NULL"
EXISTING_MEMBERSHIPS = "SELECT id FROM membership WHERE id = ANY($1::integer[])"

SCOPE = "operator:adjust"
SignedPoints = Annotated[int, Meta(ge=-(10**9), le=10**9)]
Reason = Annotated[str, Meta(min_length=1, max_length=500)]
OperationId = Annotated[str, Meta(min_length=1, max_length=150)]
MEMBERSHIP_ID_MAX = 2**31 - 1  # membership.id is a PostgreSQL integer


class AdjustmentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    points: SignedPoints  # +N accrual, -N write-off
    reason: Reason
    activates_at: AwareDateTime | None = None  # accruals only; default: at once
    expires_at: AwareDateTime | None = None  # accruals only; default: the program's expiry period
    operation_id: OperationId | None = None


class AdjustmentOut(msgspec.Struct, kw_only=True):
    membership_id: int
    points: int
    reason: str
    state: Literal["active", "pending", "written_off"]
    activates_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    balance: BalanceOut
    operator: str = ""
    operation_id: str | None = None


class MassAdjustmentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    points: SignedPoints
    reason: Reason
    membership_ids: Annotated[list[Annotated[int, Meta(ge=1)]], Meta(min_length=1, max_length=10_000)] | None = None
    card_numbers: Annotated[list[Annotated[str, Meta(min_length=1, max_length=32)]], Meta(min_length=1, max_length=10_000)] | None = None
    activates_at: AwareDateTime | None = None
    expires_at: AwareDateTime | None = None
    operation_id: OperationId | None = None


class MassItemOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    member: str  # the membership id or card number as sent
    status: Literal["done", "failed"]
    membership_id: int | None = None
    balance: BalanceOut | None = None
    problem: dict[str, Any] | None = None


class MassAdjustmentOut(msgspec.Struct, kw_only=True):
    operation_id: str | None
    done: int
    failed: int
    results: list[MassItemOut]


def _digest(membership_id: int, adjustment: AdjustmentIn) -> str:
    body = msgspec.json.encode([membership_id, msgspec.structs.replace(adjustment, operation_id=None)])
    return hashlib.sha256(body).hexdigest()


def _checked(adjustment: AdjustmentIn, now: dt.datetime) -> None:
    if adjustment.points == 0:
        raise ValidationFailed("points: must not be zero (+N accrues, -N writes off)")
    if not adjustment.reason.strip():
        raise ValidationFailed("reason: say why the points are adjusted")
    if adjustment.points < 0 and (adjustment.activates_at or adjustment.expires_at):
        raise ValidationFailed("activates_at and expires_at are for accruals; a write-off takes from existing lots")
    starts = adjustment.activates_at or now
    if adjustment.expires_at is not None and adjustment.expires_at <= max(starts, now):
        raise ValidationFailed("expires_at: must be after the points activate and in the future")


async def _member(membership_id: int) -> dict[str, Any]:
    row = await db.fetchrow(MEMBER, membership_id)
    if row is None:
        raise NotFound(f"membership {membership_id} does not exist")
    return dict(row)


async def member_exists(membership_id: int) -> None:
    """NotFound unless the membership exists (checked before a request waits for approval)."""
    await _member(membership_id)


check = _checked  # the four-eyes path (services.approvals) checks a request before it waits


def _key(key: str, membership_id: int, adjustment: AdjustmentIn) -> command.Key:
    return command.Key(SCOPE, key, _digest(membership_id, adjustment),
                       conflict=f"operation {key!r} was already used for another adjustment")


async def adjust_points(
    membership_id: int, adjustment: AdjustmentIn, now: dt.datetime, *, operator: str = "", key: str | None = None,
    origin: str = "",
) -> AdjustmentOut:
    """One member's adjustment in one transaction, exactly once per operation id."""
    _checked(adjustment, now)
    key = key or adjustment.operation_id
    async with DB.transaction():
        # the operation id is claimed in this transaction (loyalty_core.ledger.command): with the points or not at all
        claimed = _key(key, membership_id, adjustment) if key is not None else None
        if claimed is not None and (first := await command.claim(claimed, AdjustmentOut)) is not None:
            return first
        member = await _member(membership_id)
        state = await ops.lock_account(await ops.ensure_account(membership_id), now)
        balance_before = {"active": state.active, "pending": state.pending}  # for the audit's before/after
        reason = adjustment.reason.strip()
        out = AdjustmentOut(membership_id=membership_id, points=adjustment.points, reason=reason,
                            state="written_off", balance=BalanceOut(active=0, pending=0), operator=operator,
                            operation_id=key)
        if adjustment.points > 0:
            settings = (await programs.rules_document(member["program_id"], member["rules_version"])).settings  # type: ignore[attr-defined]
            out.activates_at = adjustment.activates_at or now
            out.expires_at = adjustment.expires_at or (
                out.activates_at + dt.timedelta(days=settings.expiry_days) if settings.expiry_days else None
            )
            out.state = "active" if out.activates_at <= now else "pending"
        plan = Plan(state, now)
        if adjustment.points > 0:
            plan.accrue(adjustment.points, now, kind="adjust", source="adjust",
                        activates_at=out.activates_at, expires_at=out.expires_at, reason=reason)  # type: ignore[arg-type]
        else:
            plan.spend(-adjustment.points, kind="adjust", reason=reason)
        out.balance = BalanceOut(active=state.active, pending=state.pending)
        # the points, the pass and the shopper's message: one statement of the ledger writer
        plan.pass_update(member["card_id"])
        if member["customer"] is not None:
            plan.message("points_adjusted", {"points": adjustment.points, "reason": reason, "active": state.active,
                                             "pending": state.pending},
                         customer=member["customer"], card=member["card_id"])
        await writer.write(plan.posting(), view=state)
        # staff are audited (DESIGN.md): which key moved whose points, beside the birth-date corrections
        subject = f"customer:{member['customer']}" if member["customer"] is not None else f"membership:{membership_id}"
        await audit.record(operator or "unknown", "points.adjust", subject, balance_before,
                           {"membership_id": membership_id, "points": adjustment.points, "state": out.state,
                            "operation_id": key, "active": state.active, "pending": state.pending}, reason, now, origin)
        if claimed is not None:
            await command.store([claimed], out)
        return out


async def _memberships_of_cards(numbers: list[str]) -> dict[str, int]:
    rows = await db.fetch(MEMBERSHIPS_OF_CARDS, numbers)
    return {r["number"]: r["membership"] for r in rows}


async def _existing_memberships(ids: list[int]) -> set[int]:
    in_range = [i for i in ids if 1 <= i <= MEMBERSHIP_ID_MAX]  # a larger one is no membership's id
    rows = await db.fetch(EXISTING_MEMBERSHIPS, in_range)
    return {r["id"] for r in rows}


async def _targets(mass: MassAdjustmentIn) -> list[tuple[str, int | None]]:
    """(the member as sent, its membership id or None if nothing matches), in the order sent."""
    if mass.card_numbers is not None:
        by_card = await _memberships_of_cards(list(mass.card_numbers))
        return [(n, by_card.get(n)) for n in mass.card_numbers]
    ids = list(mass.membership_ids or [])
    existing = await _existing_memberships(ids)
    return [(str(m), m if m in existing else None) for m in ids]


async def adjust_many(mass: MassAdjustmentIn, now: dt.datetime, *, operator: str = "", key: str | None = None) -> MassAdjustmentOut:
    """All or nothing, in one transaction: if any member cannot be adjusted (unknown, or not enough points for
    a write-off), nothing is written and the 422 names every such member with its problem."""
    if (mass.membership_ids is None) == (mass.card_numbers is None):
        raise ValidationFailed("send either membership_ids or card_numbers")
    adjustment = AdjustmentIn(points=mass.points, reason=mass.reason, activates_at=mass.activates_at,
                              expires_at=mass.expires_at)
    _checked(adjustment, now)
    key = key or mass.operation_id
    async with DB.transaction() as transaction:
        targets = await _targets(mass)
        failed: list[MassItemOut] = [
            MassItemOut(member=ref, status="failed", problem=(
                CardNotFound(f"card {ref} does not exist or belongs to no member") if mass.card_numbers is not None
                else NotFound(f"membership {ref} does not exist")).as_problem())
            for ref, membership_id in targets if membership_id is None
        ]
        if failed:
            raise _mass_refused(failed, len(targets))
        done: dict[int, MassItemOut] = {}
        # accounts locked in id order, so two mass adjustments over the same members cannot deadlock
        for position, (ref, membership_id) in sorted(enumerate(targets), key=lambda item: item[1][1] or 0):
            assert membership_id is not None
            savepoint = await transaction.savepoint()  # one member's failure is undone alone, to name them all
            try:
                out = await adjust_points(membership_id, adjustment, now, operator=operator,
                                          key=f"{key}:{ref}" if key else None)
            except DomainError as exc:
                await savepoint.rollback_to()
                failed.append(MassItemOut(member=ref, status="failed", membership_id=membership_id,
                                          problem=exc.as_problem()))
                continue
            await savepoint.release()
            done[position] = MassItemOut(member=ref, status="done", membership_id=membership_id, balance=out.balance)
        if failed:
            raise _mass_refused(failed, len(targets))
    results = [done[position] for position in range(len(targets))]
    return MassAdjustmentOut(operation_id=key, done=len(results), failed=0, results=results)


def _mass_refused(failed: list[MassItemOut], total: int) -> ValidationFailed:
    names = ", ".join(item.member for item in failed[:20]) + (" ..." if len(failed) > 20 else "")
    return ValidationFailed(
        f"{len(failed)} of {total} members cannot be adjusted, so none was: {names}",
        failed=[msgspec.to_builtins(item) for item in failed],
    )
