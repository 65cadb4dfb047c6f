"""What the shopper changes: favourite categories, profile and consents, push devices, cards, account deletion.

Every form posts, the service runs, and the answer is a 303 back to the page with a one-line message
(post/redirect/get), so all of it works without JavaScript; htmx only makes it smoother.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import PathParameter
from litestar.response import Redirect, Template

from backend.api.guards import client_ip
from loyalty_core.errors import CardBlocked, DomainError
from loyalty_core.members import profile as members
from loyalty_core.members import cards as members_cards
from loyalty_core.members import extras as members_extras
from loyalty_core.members import points as members_points
from loyalty_core.members.identity import ConsentIn
from loyalty_core.members.profile import Member
from personal_account import i18n
from personal_account.texts import card_reason
from personal_account.session import (
    LANG_COOKIE,
    SESSION_COOKIE,
    add_flash,
    cookie,
    end,
    expired_cookie,
    signed_in_guard,
)
from personal_account.web import (
    DEPENDENCIES,
    CurrentMember,
    Now,
    Web,
    back_to,
    formats,
    not_found,
    page,
)

CardNumber = Annotated[str, PathParameter(name="number", min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
DeviceId = Annotated[int, PathParameter(name="device_id", ge=1, le=2**31 - 1)]
CONSENT_CHANNELS = ("sms", "email", "push")
DELETE_WORDS = {"DELETE", "УДАЛИТЬ"}
BLOCK_REASONS = ("lost", "stolen", "damaged")


async def _outcome(request: Request, back: str, call: Any, ok: str | Callable[[Any], str]) -> Redirect:
    """Run one service call; its domain error (or the success message) is shown on the page we go back to."""
    try:
        result = await call
    except (DomainError, msgspec.ValidationError) as exc:
        await add_flash(request, "! " + (exc.detail if isinstance(exc, DomainError) else str(exc)))
        return back_to(back)
    await add_flash(request, ok(result) if callable(ok) else ok)
    return back_to(back)


class AccountController(Controller):
    path = "/"
    guards = [signed_in_guard]
    dependencies = DEPENDENCIES
    include_in_schema = False

    # --- favourite categories ------------------------------------------------------------------

    @get("/favourites")
    async def favourites(self, request: Request, member: CurrentMember, now: Now) -> Template:
        return await _favourites_page(request, member, now)

    @post("/favourites")
    async def choose_favourites(self, request: Request, member: CurrentMember, now: Now) -> Template | Redirect:
        form = await request.form()
        codes = [c for c in form.getall("category", []) if isinstance(c, str)][:50]
        try:
            choice = msgspec.convert({"categories": codes}, members_extras.FavouritesIn)
        except msgspec.ValidationError:  # a code no list offers (too long, malformed): the page again, with why
            return await _favourites_page(request, member, now, status=422, ticked=set(codes),
                                          error=formats(request).t("Choose categories from the list."))
        try:
            await members_extras.choose_favourites(member, choice, now)
        except DomainError as exc:  # the page again with the shopper's ticks, and why
            return await _favourites_page(request, member, now, status=exc.status, ticked=set(codes),
                                          error=formats(request, member.timezone).error(exc.detail))
        await add_flash(request, "Saved.")
        return back_to("/favourites")

    # --- profile, consents, devices ---------------------------------------------------------------

    @get("/profile")
    async def profile(self, request: Request, web: Web) -> Template:
        return await page(request, "profile.html", profile=await members.profile(web.customer_id),
                          consents={c.channel: c.granted for c in (await members.consents(web.customer_id)).current},
                          devices=await members.devices(web.customer_id), channels=CONSENT_CHANNELS)

    @post("/profile")
    async def update_profile(self, request: Request, web: Web) -> Redirect:
        form = await request.form()
        raw = {"name": str(form.get("name", "")).strip()[:200], "locale": i18n.pick_language(str(form.get("locale", "")))}
        birth = str(form.get("birth_date", "")).strip()
        if birth:  # a birth date already set is shown, not sent (it is set once; support corrects it)
            raw["birth_date"] = birth
        try:
            change = msgspec.convert(raw, members.ProfileUpdate)
        except msgspec.ValidationError:
            await add_flash(request, "! That is not a plausible birth date.")
            return back_to("/profile")
        redirect = await _outcome(request, "/profile", members.update_profile(web.customer_id, change), "Saved.")
        redirect.cookies.append(cookie(request, LANG_COOKIE, raw["locale"], max_age=365 * 86400))
        return redirect

    @post("/profile/consents")
    async def change_consents(self, request: Request, web: Web, now: Now) -> Redirect:
        form = await request.form()
        change = members.ConsentUpdate(
            consents=[ConsentIn(c, form.get(c) == "on") for c in CONSENT_CHANNELS], source="web")
        return await _outcome(request, "/profile", members.change_consents(web.customer_id, change, now), "Saved.")

    @post("/profile/devices/{device_id:int}/remove")
    async def remove_device(self, request: Request, web: Web, device_id: DeviceId) -> Redirect:
        return await _outcome(request, "/profile", members.unregister_device(web.customer_id, device_id), "Removed.")

    # --- cards ------------------------------------------------------------------------------------

    @get("/cards")
    async def cards(self, request: Request, member: CurrentMember) -> Template:
        cards, fmt = await members_cards.cards(member), formats(request, member.timezone)
        return await page(request, "cards.html", member=member, cards=cards,
                          reasons={c.number: card_reason(c.blocked_reason, fmt) for c in cards})

    @post("/cards/bind")
    async def bind(self, request: Request, member: CurrentMember, now: Now) -> Redirect:
        """A plastic card and the secret printed with it: the card and its points become the shopper's."""
        form = await request.form()
        raw = {"number": str(form.get("number", "")).strip()[:32], "secret": str(form.get("secret", "")).strip()[:32] or None}
        try:
            bind = msgspec.convert(raw, members_cards.CardBind)
        except msgspec.ValidationError:
            await add_flash(request, "! Check the card number and the secret.")
            return back_to("/cards")
        t = formats(request).t
        try:
            card = await members_cards.bind_card(member, bind, now, request.app.state.valkey, client_ip(request))
        except DomainError as exc:
            await add_flash(request, "! " + _BIND_PROBLEMS.get(exc.slug, exc.detail))
            return back_to("/cards")
        await add_flash(request, f"{t('Card added:')} {card.number}")
        return back_to("/cards")

    @post("/cards/{number:str}/confirm")
    async def confirm(self, request: Request, member: CurrentMember, number: CardNumber) -> Redirect:
        """A card linked at a till or by the call centre is the shopper's: it may pay with points from now on."""
        return await _outcome(request, "/cards", members_cards.confirm_card(member, number), "Card confirmed.")

    @get("/cards/{number:str}/block")
    async def block_form(self, request: Request, member: CurrentMember, number: CardNumber) -> Template:
        """Blocking cannot be undone: a page to confirm it, with the reason to pick."""
        cards = {c.number: c for c in await members_cards.cards(member)}
        if number not in cards:
            raise not_found()
        if cards[number].status != "active":
            raise CardBlocked(f"Card {number} is {cards[number].status}")
        return await page(request, "block.html", member=member, number=number)

    # a form's URL opened directly (a bookmark, a reload after an error): the page that has the form
    @get(["/cards/bind", "/cards/{number:str}/replace"])
    async def cards_forms(self) -> Redirect:
        return back_to("/cards")

    @get(["/profile/consents", "/profile/devices/{device_id:int}/remove"])
    async def profile_forms(self) -> Redirect:
        return back_to("/profile")

    @post("/cards/{number:str}/block")
    async def block(self, request: Request, member: CurrentMember, number: CardNumber) -> Redirect:
        form = await request.form()
        reason = str(form.get("reason", "")).strip()[:500]
        reason = reason if reason in BLOCK_REASONS else "lost"
        return await _outcome(request, "/cards", members_cards.block_card(member, number, members_cards.CardBlock(reason=reason)),
                              "Card blocked.")

    @post("/cards/{number:str}/replace")
    async def replace(self, request: Request, member: CurrentMember, number: CardNumber, now: Now) -> Redirect:
        t = formats(request).t
        return await _outcome(request, "/cards", members_cards.replace_card(member, number, members_cards.CardReplace(), now),
                              lambda card: f"{t('New card issued:')} {card.number}")

    # --- deletion ---------------------------------------------------------------------------------

    @get("/account/delete")
    async def delete_form(self, request: Request, member: CurrentMember, now: Now) -> Template:
        return await page(request, "delete.html", member=member, error="", **await _at_stake(member, now))

    @post("/account/delete")
    async def delete_account(self, request: Request, web: Web, member: CurrentMember, now: Now) -> Template | Redirect:
        form = await request.form()
        if str(form.get("confirm", "")).strip().upper() not in DELETE_WORDS:
            return await page(request, "delete.html", status=422, member=member, error="Type DELETE to confirm",
                              **await _at_stake(member, now))
        await members.delete_account(web.customer_id, now)
        await end(request, request.state.sid)
        return Redirect("/login?deleted=1", status_code=303, cookies=[expired_cookie(request, SESSION_COOKIE)])


# fixed messages the page can translate (the domain's details name the card)
_BIND_PROBLEMS = {
    "card-taken": "This card belongs to another member.",
    "card-secret-invalid": "The secret does not match this card.",
    "card-not-found": "There is no such card in this program.",
    "card-blocked": "This card is blocked and cannot be added.",
    "rate-limited": "Too many attempts; try again in an hour.",
}


async def _favourites_page(request: Request, member: Member, now: dt.datetime, status: int = 200,
                           ticked: set[str] | None = None, error: str = "") -> Template:
    found = await members_extras.favourites(member, now)
    chosen = ticked if ticked is not None else {c.code for c in found.chosen}
    today = _today(now, member.timezone)
    lock_until = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)  # a choice saved now holds this month
    return await page(request, "favourites.html", status=status, member=member, fav=found, chosen=chosen,
                      can_change=found.next_change_on <= today, lock_until=lock_until, error=error)


async def _at_stake(member: Member, now: dt.datetime) -> dict[str, int]:
    """What deleting the account loses: every point, the pending ones included."""
    balance = await members_points.balance(member, now)
    return {"lost": balance.active + balance.pending, "pending": balance.pending}


def _today(now: dt.datetime, timezone: str) -> dt.date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(timezone)).date()

