"""The member's card, balance and tier; purchases and receipts; points history; offers and coupons; wallet passes."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from loyalty_core.errors import CardNotFound, NotFound, SaleNotFound
from loyalty_core.members import profile as members
from loyalty_core.members import cards as members_cards
from loyalty_core.members import extras as members_extras
from loyalty_core.members import points as members_points
from loyalty_core.members import tiers
from loyalty_core.members.profile import Member
from personal_account.session import current, signed_in_guard
from personal_account.texts import (
    birthday_banner,
    document_of,
    history_reason,
    offer_cards,
    percent,
    points_breakdown,
    receipt_lines,
    tier_names,
)
from personal_account.web import DEPENDENCIES, CurrentMember, Formats, Now, Web, back_to, formats, not_found, page

PAGE_SIZE = 20
Cursor = Annotated[str | None, QueryParameter(name="cursor", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SaleId = Annotated[int, PathParameter(name="sale_id", ge=1, le=2**31 - 1)]
MessageId = Annotated[int, PathParameter(name="message_id", ge=1, le=2**63 - 1)]
_SVG_SIZE = re.compile(r'\swidth="[^"]*"\sheight="[^"]*"')


def card_qr(payload: str) -> str:
    """A QR as inline SVG (CSS sizes it)."""
    from wallet_passes.qr import card_qr_svg

    svg = _SVG_SIZE.sub("", card_qr_svg(payload, border=2), count=1)
    return svg.replace("<svg ", '<svg class="qr" role="img" aria-hidden="true" focusable="false" ', 1)


def active_card(cards: list[members_cards.CardOut]) -> members_cards.CardOut | None:
    return next((c for c in reversed(cards) if c.status == "active"), None)


def tier_percent(tier: members_points.TierProgress) -> int:
    if tier.next is None:
        return 100
    floor = tier.current.threshold_spend if tier.current else 0
    span = max(tier.next.threshold_spend - floor, 1)
    return max(0, min(100, (tier.spend - floor) * 100 // span))


EXPIRING_WITHIN_DAYS = 60  # "Скоро сгорят" lists only points that burn within this many days


async def balance_context(member: Member, now: dt.datetime) -> dict[str, Any]:
    balance = await members_points.balance(member, now)
    horizon = now.astimezone(ZoneInfo(member.timezone)).date() + dt.timedelta(days=EXPIRING_WITHIN_DAYS)
    return {"balance": balance, "expiring_soon": [lot for lot in balance.expiring if lot.on <= horizon]}


TIER_UP_DAYS = 14  # the "you reached Gold" banner shows this long after the sale, unless dismissed sooner
_DISMISSED = "kopilka:web:dismissed:"  # + customer:banner -> 1, kept as long as the banner could show


def dismissed_key(customer_id: int, banner: str) -> str:
    return f"{_DISMISSED}{customer_id}:{banner}"


async def dismiss(valkey: Any, customer_id: int, banner: str) -> None:
    await valkey.set(dismissed_key(customer_id, banner), b"1", ex=TIER_UP_DAYS * 86_400)


async def tier_context(member: Member, fmt: Formats, now: dt.datetime, valkey: Any) -> dict[str, Any]:
    tier = await members_points.tier_progress(member)
    document = await document_of(member)
    names = tier_names(document, fmt)
    rates = {t.code: t.accrual_bp for t in document.settings.tiers}
    current = tier.current
    close = False
    if tier.next is not None and tier.remaining_to_next is not None:
        floor = current.threshold_spend if current else 0
        close = tier.remaining_to_next * 4 <= max(tier.next.threshold_spend - floor, 1)  # the last quarter
    reached = risk = None
    if current is not None:
        reached = await tiers.tier_reached(member.customer_id, current.code, now - dt.timedelta(days=TIER_UP_DAYS))
        if reached is not None and await valkey.exists(dismissed_key(member.customer_id, f"tier-up:{reached.message_id}")):
            reached = None
        risk = await tiers.tier_at_risk(member.membership_id, now, document.settings.tier_at_risk_days)
    return {
        "tier": tier, "tier_percent": tier_percent(tier), "tier_close": close,
        "tier_name": names.get(current.code, current.name) if current else "—",
        "next_tier_name": names.get(tier.next.code, tier.next.name) if tier.next else "",
        "tier_rate": percent(rates[current.code], fmt.lang) if current and rates.get(current.code) else "",
        "tier_reached": reached, "tier_risk": risk,
    }


async def recent_context(member: Member) -> dict[str, Any]:
    return {"recent": (await members_points.purchases(member, None, 3)).items}


async def live_contexts(member: Member, now: dt.datetime, fmt: Formats,
                        valkey: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """The dashboard's live blocks: SSE event name -> (fragment template, its context)."""
    return {
        "balance": ("_balance.html", await balance_context(member, now)),
        "tier": ("_tier.html", await tier_context(member, fmt, now, valkey)),
        "purchases": ("_recent.html", await recent_context(member)),
    }


def qr_context(request: Request, card: members_cards.CardOut | None, now: dt.datetime) -> dict[str, Any]:
    """The card's QR as the app's rotating signed token (a screenshot stops working), fetched again before it expires."""
    if card is None:
        return {"qr": ""}
    token = members_cards.qr_token(card.number, request.app.state.settings.security.secret_key, now)
    return {"qr": card_qr(token.token), "qr_refresh": token.refresh_after,
            "qr_expires": int(now.timestamp()) + token.expires_in}


def wallet_options(request: Request) -> dict[str, bool]:
    """Which wallet buttons to show: Apple always (signed with the test chain in development), Google when set up."""
    try:
        from wallet_passes.web import provide_wallet

        wallet = provide_wallet(request)
    except Exception:  # wallet settings missing or broken: the card still works at the till
        return {"apple": False, "google": False}
    return {"apple": True, "google": wallet.google is not None}


class CardPagesController(Controller):
    path = "/"
    guards = [signed_in_guard]
    dependencies = DEPENDENCIES
    include_in_schema = False

    @get("/")
    async def dashboard(self, request: Request, member: CurrentMember, web: Web, now: Now) -> Template:
        profile = await members.profile(web.customer_id)
        cards = await members_cards.cards(member)
        card = active_card(cards)
        referral = await members_extras.referral(member)
        fmt = formats(request, member.timezone)
        birthday = birthday_banner(member, profile.birth_date, await document_of(member), now, fmt)
        return await page(
            request, "dashboard.html", member=member, name=profile.name, card=card, cards=cards,
            **qr_context(request, card, now), **await tier_context(member, fmt, now, request.app.state.valkey),
            **await recent_context(member),
            referral=referral, referral_url=f"{request.app.state.settings.server.public_url}/invite/{referral.code}",
            wallet=wallet_options(request), birthday=birthday, **await balance_context(member, now),
        )

    @post("/banners/tier-up/{message_id:int}/dismiss")
    async def dismiss_tier_up(self, request: Request, member: CurrentMember, message_id: MessageId) -> Redirect:
        """Hide the "you reached Gold" banner on every device of this shopper (a key of their own: another
        shopper's message id hides nothing of theirs)."""
        await dismiss(request.app.state.valkey, member.customer_id, f"tier-up:{message_id}")
        return back_to("/")

    @get("/banners/tier-up/{message_id:int}/dismiss")
    async def dismiss_tier_up_page(self) -> Redirect:
        """A form's URL opened directly: the dashboard, nothing hidden."""
        return back_to("/")

    @get("/fragments/balance")
    async def balance_fragment(self, request: Request, member: CurrentMember, now: Now) -> Template:
        """The balance block alone (htmx refresh, and what the live stream sends)."""
        return await page(request, "_balance.html", member=member, **await balance_context(member, now))

    @get("/purchases")
    async def purchases(self, request: Request, member: CurrentMember, cursor: Cursor = None) -> Template:
        found = await members_points.purchases(member, cursor, PAGE_SIZE)
        return await page(request, "purchases.html", member=member, items=found.items, next_cursor=found.next_cursor,
                          first_page=cursor is None)

    @get("/purchases/{sale_id:int}")
    async def receipt(self, request: Request, member: CurrentMember, sale_id: SaleId) -> Template:
        try:
            sale = await members_points.purchase(member, sale_id)
        except SaleNotFound:
            raise not_found() from None
        fmt = formats(request, member.timezone)
        document = await document_of(member)
        return await page(request, "receipt.html", member=member, sale=sale,
                          lines=await receipt_lines(sale.id, document, fmt), why=points_breakdown(sale, document, fmt))

    @get("/history")
    async def history(self, request: Request, member: CurrentMember, cursor: Cursor = None) -> Template:
        found = await members_points.history(member, cursor, PAGE_SIZE)
        fmt, document = formats(request, member.timezone), await document_of(member)
        reasons = {e.id: history_reason(e.reason, document, fmt, e.kind) for e in found.items}
        return await page(request, "history.html", member=member, items=found.items, next_cursor=found.next_cursor,
                          first_page=cursor is None, reasons=reasons)

    @get("/offers")
    async def offers(self, request: Request, member: CurrentMember, now: Now) -> Template:
        fmt = formats(request, member.timezone)
        cards = offer_cards(await members_extras.offers(member, now), await document_of(member), fmt)
        return await page(request, "offers.html", member=member, offers=cards,
                          coupons=await members_extras.coupons(member))


@get("/fragments/qr", include_in_schema=False)
async def qr_fragment(request: Request) -> Template:
    """A fresh token for the dashboard's QR (htmx polls it before the shown one expires). A session that ended
    meanwhile gets the notice instead, with 286: htmx stops polling, and no stale card stays on screen."""
    found = await current(request)
    if found is None:
        return await page(request, "_session_ended.html", status=286)
    request.state.sid, request.state.web = found
    member = await members.member_of(found[1].customer_id, found[1].program)
    now = dt.datetime.now(dt.UTC)
    card = active_card(await members_cards.cards(member))
    return await page(request, "_qr.html", member=member, card=card, **qr_context(request, card, now))


class WalletController(Controller):
    """The active card as an Apple Wallet pass or a Google Wallet link, for the signed-in shopper.

    Built by wallet_passes.issuer (the same pass the PassKit web service keeps up to date).
    """

    path = "/wallet"
    guards = [signed_in_guard]
    dependencies = DEPENDENCIES
    include_in_schema = False

    async def _card(self, member: Member) -> str:
        card = active_card(await members_cards.cards(member))
        if card is None:
            raise CardNotFound("You have no active card: get a new one on the Cards page")
        return card.number

    @get("/apple.pkpass", media_type="application/vnd.apple.pkpass")
    async def apple(self, request: Request, member: CurrentMember, now: Now) -> Response[bytes]:
        from wallet_passes.issuer import card_pass, pkpass_bytes
        from wallet_passes.web import provide_wallet

        number, wallet = await self._card(member), provide_wallet(request)
        issued = await card_pass(number, wallet.apple, now, issue=True)
        if issued is None:
            raise NotFound(f"Card {number} has no pass")
        return Response(await pkpass_bytes(issued.content, wallet.apple), media_type="application/vnd.apple.pkpass",
                        headers={"Content-Disposition": f'attachment; filename="{number}.pkpass"',
                                 "Cache-Control": "no-store"})

    @get("/google")
    async def google(self, request: Request, member: CurrentMember, now: Now) -> Redirect:
        from wallet_passes.issuer import card_pass, google_save_link
        from wallet_passes.web import provide_wallet

        number, wallet = await self._card(member), provide_wallet(request)
        if wallet.google is None:
            raise NotFound("Google Wallet is not set up for this program.")
        issued = await card_pass(number, wallet.apple, now, issue=True)
        if issued is None:
            raise NotFound(f"Card {number} has no pass")
        origin = request.app.state.settings.server.public_url.rstrip("/")
        return Redirect(google_save_link(issued.content, wallet.google, now, origins=[origin]), status_code=303)
