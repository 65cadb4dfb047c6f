"""Support: find a member, the member's page, and the call centre's actions on the admin API's services."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter

from back_office import web
from loyalty_core.errors import DomainError, NotFound, ValidationFailed
from loyalty_core.ledger import ops
from loyalty_core.piccolo_conf import DB
from loyalty_core.adjustments import adjustments
from loyalty_core.office import approvals
from loyalty_core.office import audit
from loyalty_core.office import member_view
from loyalty_core.office import reasons
from loyalty_core.members import history as member_history
from loyalty_core.members import search as member_search
from loyalty_core.members import profile as members
from loyalty_core.members import cards as members_cards
from loyalty_core.messaging import outbox
from loyalty_core.tables import Card

READ = [web.roles("support", "auditor")]
ACT = [web.roles("support")]
MembershipId = Annotated[int, PathParameter(name="membership_id", ge=1, le=2**31 - 1)]
CardNumber = Annotated[str, PathParameter(name="number", max_length=32, pattern=r"^[0-9A-Za-z\-]+$")]
Query = Annotated[str, QueryParameter(name="q", max_length=200)]
# reasons from a list, so reports can count them (and the shopper reads them in their language); "Other" needs a note
ADJUST_REASONS, CARD_REASONS = reasons.ADJUST_REASONS, reasons.CARD_REASONS


class CardForm(msgspec.Struct, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=100)] = ""
    note: Annotated[str, msgspec.Meta(max_length=300)] = ""


class AdjustForm(msgspec.Struct, kw_only=True):
    points: Annotated[str, msgspec.Meta(max_length=12)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=100)] = ""
    note: Annotated[str, msgspec.Meta(max_length=300)] = ""


class BirthDateForm(msgspec.Struct, kw_only=True):
    birth_date: Annotated[str, msgspec.Meta(max_length=10)] = ""
    reason: Annotated[str, msgspec.Meta(max_length=300)] = ""


def _reason(reason: str, note: str, allowed: tuple[str, ...]) -> str:
    return reasons.compose(reason, note, allowed)


async def _member(history: member_history.MemberHistory) -> members.Member:
    customer = history.member.customer
    if customer is None:
        raise ValidationFailed("An anonymous card: register the shopper first")
    return await members.member_of(customer.id, history.member.program)


def _page(membership_id: int) -> str:
    return f"{web.PATH}/members/{membership_id}"


class SupportController(Controller):
    path = web.PATH
    include_in_schema = False

    @get("/members", guards=READ)
    async def search(self, request: Request, q: Query = "") -> Response:
        found = await member_search.find(q) if q else []
        return await web.page(request, "office_search.html", q=q, found=found, searched=bool(q.strip()))

    @get("/members/{membership_id:int}", guards=READ)
    async def member(self, request: Request, membership_id: MembershipId) -> Response:
        now = web.utc_now()
        history = await member_history.member_history(membership_id, now, limit=20)
        customer = history.member.customer
        consents = await members.consents(customer.id) if customer else None
        lots = None
        rows = await Card.raw("SELECT id FROM account WHERE membership = {} AND currency = 'points'", membership_id)
        if rows:
            lots = await ops.balance(rows[0]["id"], now, "Europe/Moscow")
        trail = await audit.events_of(f"customer:{customer.id}") if customer else []
        trail += await audit.events_of(f"membership:{membership_id}")
        trail.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        waiting = [a for a in await approvals.listing("pending") if a.subject == f"membership:{membership_id}"
                   or a.payload.get("source") == str(membership_id)]
        extras = await member_view.member_extras(membership_id, customer.id if customer else None)
        return await web.page(request, "office_member.html", h=history, consents=consents, lots=lots, trail=trail,
                              waiting=waiting, x=extras, adjust_reasons=ADJUST_REASONS, card_reasons=CARD_REASONS,
                              can_act=web.staff_of(request).may("support"), limit=await approvals.limit())

    @post("/members/{membership_id:int}/cards/{number:str}/{action:str}", guards=ACT)
    async def card(self, request: Request, membership_id: MembershipId, number: CardNumber, action: str) -> Response:
        data: CardForm = await web.form_of(request, CardForm)
        now, who = web.utc_now(), web.actor_of(request)
        try:
            reason = _reason(data.reason, data.note, CARD_REASONS)
            history = await member_history.member_history(membership_id, now, limit=1)
            member = await _member(history)
            before = next((c for c in history.cards if c.number == number), None)
            if before is None:
                raise NotFound(f"card {number} is not this member's")
            subject = f"customer:{member.customer_id}"
            if action == "block":
                out = await members_cards.block_card(member, number, members_cards.CardBlock(reason=reason))
                message = "Card blocked"
            elif action == "unblock":
                out = await _unblock(member, number, now)
                message = "Card unblocked"
            elif action == "replace":
                out = await members_cards.replace_card(member, number, members_cards.CardReplace(reason=reason), now)
                message = "Card replaced"
            else:
                raise NotFound("no such action")
            await audit.record(who.name, f"card.{action}", subject, {"card": number, "status": before.status},
                               {"card": out.number, "status": out.status, "old_card": number}, reason, now, who.origin)
        except DomainError as exc:
            await web.flash(request, "! " + (exc.detail or exc.title))
        else:
            await web.flash(request, message)
        return web.back_to(_page(membership_id))

    @post("/members/{membership_id:int}/adjust", guards=ACT)
    async def adjust(self, request: Request, membership_id: MembershipId) -> Response:
        data: AdjustForm = await web.form_of(request, AdjustForm)
        now, who = web.utc_now(), web.actor_of(request)
        try:
            reason = _reason(data.reason, data.note, ADJUST_REASONS)
            try:
                points = int(data.points.replace(" ", "").replace("\u00a0", ""))
            except ValueError:
                raise ValidationFailed("Points: a whole number, +N to add, -N to take") from None
            adjustment = msgspec.convert({"points": points, "reason": reason}, adjustments.AdjustmentIn)
            if await approvals.needs_approval(points):
                pending = await approvals.request_adjustment(membership_id, adjustment, who, now)
                message = f"Above the limit: waits for a second person (#{pending.approval_id})"
            else:
                await adjustments.adjust_points(membership_id, adjustment, now, operator=who.name, origin=who.origin)
                message = "Points adjusted"
        except (DomainError, msgspec.ValidationError) as exc:
            await web.flash(request, "! " + (exc.detail if isinstance(exc, DomainError) else str(exc)))
        else:
            await web.flash(request, message)
        return web.back_to(_page(membership_id))

    @post("/members/{membership_id:int}/birth-date", guards=ACT)
    async def birth_date(self, request: Request, membership_id: MembershipId) -> Response:
        data: BirthDateForm = await web.form_of(request, BirthDateForm)
        now, who = web.utc_now(), web.actor_of(request)
        try:
            history = await member_history.member_history(membership_id, now, limit=1)
            member = await _member(history)
            try:
                born = dt.date.fromisoformat(data.birth_date)
            except ValueError:
                raise ValidationFailed("Birth date: YYYY-MM-DD") from None
            change = msgspec.convert({"birth_date": born.isoformat(), "reason": data.reason},
                                     members.BirthDateCorrection)
            # the admin API's correction, audited there (by this staff member, from this address)
            await members.correct_birth_date(member.customer_id, change, who.name, now, origin=who.origin)
        except (DomainError, msgspec.ValidationError) as exc:
            await web.flash(request, "! " + (exc.detail if isinstance(exc, DomainError) else str(exc)))
        else:
            await web.flash(request, "Birth date corrected")
        return web.back_to(_page(membership_id))


async def _unblock(member: members.Member, number: str, now: dt.datetime) -> members_cards.CardOut:
    """Back to active: only a blocked card (a replaced one stays replaced: its successor is the card)."""
    async with DB.transaction():
        rows = await Card.raw("SELECT id, status FROM card WHERE number = {} AND membership = {} FOR UPDATE",
                              number, member.membership_id)
        if not rows:
            raise NotFound(f"card {number} is not this member's")
        if rows[0]["status"] != "blocked":
            raise ValidationFailed(f"Card {number} is not blocked")
        await Card.update({Card.status: "active", Card.blocked_reason: None}).where(Card.id == rows[0]["id"])
        await outbox.pass_changed(rows[0]["id"], now)
    return await members_cards.card_view(member, number)
