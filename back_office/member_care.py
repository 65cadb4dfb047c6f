"""Support's requests that need a second person (merge two members, erase one on request) and the code a shopper
asks support to send again. The approvals page decides the requests (`approvals.approve` runs them once)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, post
from litestar.params import PathParameter

from back_office import web
from loyalty_core import db
from loyalty_core.errors import DomainError, NotFound, ValidationFailed
from loyalty_core.office import audit, member_care

ACT = [web.roles("support")]
MembershipId = Annotated[int, PathParameter(name="membership_id", ge=1, le=2**31 - 1)]


class MergeForm(msgspec.Struct, kw_only=True):
    duplicate: Annotated[str, msgspec.Meta(max_length=32)] = ""  # the other member: member number or card number
    reason: Annotated[str, msgspec.Meta(max_length=300)] = ""


class EraseForm(msgspec.Struct, kw_only=True):
    reason: Annotated[str, msgspec.Meta(max_length=300)] = ""
    confirm: Annotated[str, msgspec.Meta(max_length=10)] = ""


class SendCodeForm(msgspec.Struct, kw_only=True):
    channel: Annotated[str, msgspec.Meta(max_length=10)] = ""


def _page(membership_id: int) -> str:
    return f"{web.PATH}/members/{membership_id}"


async def _duplicate(raw: str) -> int:
    """The other member as support types it: its member number (#123) or one of its card numbers."""
    value = raw.strip().lstrip("#")
    if value.isdigit() and len(value) <= 9:
        return int(value)
    row = await db.fetchrow("SELECT membership FROM card WHERE number = $1", value)
    if row is None or row["membership"] is None:
        raise NotFound("No member with that number or card")
    return int(row["membership"])


class MemberCareController(Controller):
    path = web.PATH
    include_in_schema = False

    @post("/members/{membership_id:int}/merge", guards=ACT)
    async def merge(self, request: Request, membership_id: MembershipId) -> Response:
        """This page's member stays; the duplicate's cards, points and purchases come to it once approved."""
        data: MergeForm = await web.form_of(request, MergeForm)
        try:
            source = await _duplicate(data.duplicate)
            pending = await member_care.propose_merge(source, membership_id, data.reason, web.actor_of(request),
                                                      web.utc_now())
        except DomainError as exc:
            await web.flash(request, "! " + (exc.detail or exc.title))
        else:
            await web.flash(request, f"Merge requested: waits for a second person (#{pending.approval_id})")
        return web.back_to(_page(membership_id))

    @post("/members/{membership_id:int}/erase", guards=ACT)
    async def erase(self, request: Request, membership_id: MembershipId) -> Response:
        data: EraseForm = await web.form_of(request, EraseForm)
        try:
            if data.confirm != "yes":
                raise ValidationFailed("Tick the box: the shopper asked to be erased")
            pending = await member_care.propose_erasure(membership_id, data.reason, web.actor_of(request),
                                                        web.utc_now())
        except DomainError as exc:
            await web.flash(request, "! " + (exc.detail or exc.title))
        else:
            await web.flash(request, f"Erasure requested: waits for a second person (#{pending.approval_id})")
        return web.back_to(_page(membership_id))

    @post("/members/{membership_id:int}/send-code", guards=ACT)
    async def send_code(self, request: Request, membership_id: MembershipId) -> Response:
        """A new sign-in code to the phone or e-mail on file (never shown to the agent, never to another address),
        under the shopper's own send limits; audited without the code."""
        from backend.api.auth import gateway_for
        from loyalty_core.shopper_auth.otp import Identifier, request_code

        data: SendCodeForm = await web.form_of(request, SendCodeForm)
        who, now = web.actor_of(request), web.utc_now()
        try:
            if data.channel not in ("phone", "email"):
                raise ValidationFailed("Channel: phone or e-mail")
            row = await db.fetchrow("SELECT c.id, c.phone, c.email, c.locale FROM membership m JOIN customer c "
                                    "ON c.id = m.customer WHERE m.id = $1 AND c.status = 'active'", membership_id)
            if row is None:
                raise NotFound("No registered member here")
            to = row[data.channel]
            if not to:
                raise ValidationFailed(f"The member has no {data.channel} on file")
            settings = request.app.state.settings
            valkey = request.app.state.valkey
            await request_code(valkey, gateway_for(settings.identity, valkey), Identifier(data.channel, to),
                               who.origin, settings.security.secret_key, settings.identity.otp,
                               language=row["locale"] if row["locale"] in ("ru", "en") else "ru")
            await audit.record(who.name, "member.code_sent", f"customer:{row['id']}", {}, {"channel": data.channel},
                               "", now, who.origin)
        except DomainError as exc:
            await web.flash(request, "! " + (exc.detail or exc.title))
        else:
            await web.flash(request, "Sign-in code sent")
        return web.back_to(_page(membership_id))
