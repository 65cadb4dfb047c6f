"""Sign in (and register) with a one-time code by phone or e-mail, sign out, switch the language.

The same use-cases as the shopper API (`otp.request_code`, `tokens.log_in_with_code`); the web keeps
the login's token family in a server-side session instead of handing tokens to the browser.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from backend.api.auth import gateway_for
from backend.api.guards import client_ip
from loyalty_core.errors import DomainError, RateLimited
from loyalty_core.members import profile as members
from loyalty_core.shopper_auth import tokens
from loyalty_core.members.identity import ConsentIn
from loyalty_core.members.identity import resolve_program
from loyalty_core.shopper_auth.otp import Identifier, parse_identifier, request_code
from personal_account import i18n
from personal_account.live import session_ended
from personal_account.oidc import provider_of
from personal_account.session import (
    LANG_COOKIE,
    SESSION_COOKIE,
    WebSession,
    cookie,
    current,
    end,
    expired_cookie,
    start,
)
from personal_account.web import formats, language, page, safe_next, static_url

Next = Annotated[str | None, QueryParameter(name="next", max_length=500)]
Program = Annotated[str | None, QueryParameter(name="program", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Ref = Annotated[str | None, QueryParameter(name="ref", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
CONSENT_CHANNELS = ("sms", "email", "push")


def _error_text(exc: DomainError) -> str:
    if isinstance(exc, RateLimited):
        return "Too many attempts; try again later."
    if exc.slug in ("code-invalid", "validation-error"):
        return "Wrong or expired code."
    return exc.detail


def _field(form: Any, name: str, limit: int = 254) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _code_page_url(program: str | None, next_path: str, ref: str) -> str:
    # never the phone or e-mail: URLs end up in access logs, proxies and browser history
    query = {"next": next_path, **({"program": program} if program else {}), **({"ref": ref} if ref else {})}
    return "/login/code?" + urlencode(query)


# The contact a code was sent to waits server-side for the code page: Valkey `kopilka:web:login:<sha256 of id>`,
# the random id in an HttpOnly cookie, as long as the code lives.
LOGIN_COOKIE = "kp_login"
_PENDING = "kopilka:web:login:"


def _pending_key(login_id: str) -> str:
    return _PENDING + hashlib.sha256(login_id.encode()).hexdigest()


RESEND_AFTER = 30  # seconds before the code page offers to send another code


async def _remember_contact(request: Request, who: Identifier, ttl: int, now: float) -> Cookie:
    login_id = request.cookies.get(LOGIN_COOKIE)
    if not login_id or len(login_id) > 100 or await _pending(request) is None:
        login_id = secrets.token_urlsafe(32)
    value = msgspec.json.encode({"to": who.value, "sent": int(now)})
    await request.app.state.valkey.set(_pending_key(login_id), value, ex=ttl)
    return cookie(request, LOGIN_COOKIE, login_id, max_age=ttl)


async def _pending(request: Request) -> dict[str, Any] | None:
    """The contact this browser asked a code for, and when it was sent."""
    login_id = request.cookies.get(LOGIN_COOKIE)
    if not login_id or len(login_id) > 100:
        return None
    raw = await request.app.state.valkey.get(_pending_key(login_id))
    if raw is None:
        return None
    try:
        found = msgspec.json.decode(raw)
    except msgspec.DecodeError:  # kept by an older version: the contact alone
        return {"to": raw.decode(), "sent": 0}
    return found if isinstance(found, dict) and isinstance(found.get("to"), str) else None


def _wait_text(fmt_t: Any, seconds: int) -> str:
    if seconds >= 120:
        return f"{fmt_t('Too many codes were sent. You can request a new one in')} {(seconds + 59) // 60} {fmt_t('minutes')}."
    return f"{fmt_t('Too many codes were sent. You can request a new one in')} {seconds} {fmt_t('seconds')}."


def _code_error(exc: DomainError, t: Any) -> tuple[str, bool]:
    """(what the code page says, whether the code is dead and a new one is needed)."""
    if isinstance(exc, RateLimited):
        return t("Too many attempts; try again later."), False
    left = exc.extra.get("attempts_left")
    if isinstance(left, int):
        return f"{t('Wrong code.')} {t('Attempts left:')} {left}", False
    if exc.detail.startswith("Too many wrong codes"):
        return t("Too many wrong codes: this code no longer works. Request a new one."), True
    if exc.detail.startswith("No valid code"):
        return t("The code has expired or was not requested. Request a new one."), True
    return t(_error_text(exc)), False


class SignInController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login")
    async def login_form(self, request: Request, next_path: Next = None, program: Program = None, ref: Ref = None,
                         bye: Annotated[bool, QueryParameter(name="bye")] = False,
                         deleted: Annotated[bool, QueryParameter(name="deleted")] = False) -> Template | Redirect:
        if await current(request) is not None:
            return Redirect(safe_next(next_path), status_code=303)
        return await login_page(request, next=safe_next(next_path), program=program or "", to="", ref=ref or "",
                          error="", notice="Your account was deleted." if deleted else "You are signed out." if bye else "")

    @post("/login")
    async def send_code(self, request: Request) -> Template | Redirect:
        form = await request.form()
        raw, program, next_path = _field(form, "to"), _field(form, "program", 64) or None, safe_next(_field(form, "next", 500))
        ref = _field(form, "ref", 64)
        identity = request.app.state.settings.identity
        try:
            who = parse_identifier(raw)
        except DomainError:
            return await login_page(request, status=422, next=next_path, program=program or "", to=raw, ref=ref,
                              error="That is not a phone number or an e-mail address.", notice="")
        valkey, t, now = request.app.state.valkey, formats(request).t, time.time()
        pending = await _pending(request)
        resend = form.get("resend") == "1"
        if resend and pending and pending["to"] == who.value and now - pending["sent"] < RESEND_AFTER:
            wait = int(pending["sent"] + RESEND_AFTER - now) + 1
            return await _code_page(request, pending, status=429, next=next_path, program=program, ref=ref,
                                    error=f"{t('You can request a new code in')} {wait} {t('seconds')}.")
        try:
            await request_code(valkey, gateway_for(identity, valkey), who, client_ip(request),
                               request.app.state.settings.security.secret_key, identity.otp, language=language(request))
        except DomainError as exc:
            text = _wait_text(t, int(exc.extra.get("retry_after", 60))) if isinstance(exc, RateLimited) else _error_text(exc)
            if resend and pending and pending["to"] == who.value:
                return await _code_page(request, pending, status=exc.status, next=next_path, program=program, ref=ref,
                                        error=text)
            return await login_page(request, status=exc.status, next=next_path, program=program or "", to=raw, ref=ref,
                              error=text, notice="")
        if resend:
            await add_login_notice(request, "We sent a new code.")
        return Redirect(_code_page_url(program, next_path, ref), status_code=303,
                        cookies=[await _remember_contact(request, who, identity.otp.code_ttl, now)])

    @get("/login/code")
    async def code_form(self, request: Request, next_path: Next = None, program: Program = None,
                        ref: Ref = None) -> Template | Redirect:
        pending = await _pending(request)
        if pending is None:  # no code asked for in this browser, or it expired
            query = {"next": safe_next(next_path), **({"program": program} if program else {})}
            return Redirect("/login?" + urlencode(query), status_code=303)
        return await _code_page(request, pending, next=safe_next(next_path), program=program, ref=ref or "",
                                notice=await take_login_notice(request))

    @post("/login/code")
    async def verify_code(self, request: Request) -> Template | Redirect:
        form = await request.form()
        program, next_path = _field(form, "program", 64) or None, safe_next(_field(form, "next", 500))
        pending = await _pending(request)
        to = pending["to"] if pending else _field(form, "to")  # the code proves the contact either way
        name, ref = _field(form, "name", 200), _field(form, "ref", 64)
        consents = [{"channel": c, "granted": form.get("consent_" + c) == "on"} for c in CONSENT_CHANNELS]
        identity, secret, now = request.app.state.settings.identity, request.app.state.settings.security.secret_key, dt.datetime.now(dt.UTC)
        t = formats(request).t
        try:
            login = msgspec.convert({"to": to, "code": _field(form, "code", 12).replace(" ", ""), "channel": "web",
                                     "name": name, "consents": consents, "referral_code": ref or None}, tokens.CodeLogin)
            logged = await tokens.log_in_with_code(request.app.state.valkey, await resolve_program(program), login,
                                                   client_ip(request), secret, identity.otp, now)
        except (msgspec.ValidationError, DomainError) as exc:
            text, dead = _code_error(exc, t) if isinstance(exc, DomainError) else (t("Wrong or expired code."), False)
            if isinstance(exc, DomainError) and exc.slug == "validation-error" and "referral" in exc.detail:
                text, dead = t("This invitation link is not valid. You can still join."), False
                ref = ""
            return await _code_page(request, pending or {"to": to, "sent": 0}, status=422, next=next_path, program=program,
                                    ref=ref, error=text, dead=dead)
        response = await signed_in_redirect(request, logged, program, next_path, now)
        response.set_cookie(expired_cookie(request, LOGIN_COOKIE))
        return response

    @post("/logout")
    async def logout(self, request: Request) -> Redirect:
        found = await current(request)
        if found is not None:
            sid, web = found
            import uuid

            await tokens.log_out(web.customer_id, uuid.UUID(web.family), dt.datetime.now(dt.UTC))
            await end(request, sid)
            session_ended(request.app, [web.family])  # this login's other tabs show the notice at once
        return Redirect("/login?bye=1", status_code=303, cookies=[expired_cookie(request, SESSION_COOKIE)])

    @post("/logout/everywhere")
    async def logout_everywhere(self, request: Request) -> Redirect:
        """Sign out on every device (a phone left somewhere): every login of this shopper ends, the website's and
        the app's; their open dashboards show the notice at once."""
        found = await current(request)
        if found is not None:
            sid, web = found
            ended = await tokens.log_out_everywhere(web.customer_id, dt.datetime.now(dt.UTC))
            await end(request, sid)
            session_ended(request.app, {str(family) for family in ended} | {web.family})
        return Redirect("/login?bye=1", status_code=303, cookies=[expired_cookie(request, SESSION_COOKIE)])

    @get("/logout/everywhere")
    async def logout_everywhere_page(self) -> Redirect:
        """A form on the profile page: the URL opened directly goes there and ends nothing."""
        return Redirect("/profile", status_code=303)

    @get("/lang/{code:str}")
    async def switch_language(self, request: Request,
                              code: Annotated[str, PathParameter(name="code", pattern="^(ru|en)$")],
                              next_path: Next = None) -> Response:
        chosen = i18n.pick_language(code)
        found = await current(request)
        if found is not None:  # signed in: the profile keeps it, so every browser of this shopper speaks it
            await members.update_profile(found[1].customer_id, members.ProfileUpdate(locale=chosen))  # type: ignore[arg-type]
        return Redirect(safe_next(next_path), status_code=303,
                        cookies=[cookie(request, LANG_COOKIE, chosen, max_age=365 * 86400)])

    @get("/logout")
    async def logout_page(self) -> Redirect:
        """Sign-out is a form on the profile page (a link could be planted): the URL opened directly goes there."""
        return Redirect("/profile", status_code=303)

    @get("/welcome")
    async def welcome_form(self, request: Request) -> Template | Redirect:
        """A new shopper's first page: name and which messages they agree to (nothing asked of a returning one)."""
        if await current(request) is None:
            return Redirect("/login?next=/welcome", status_code=303)
        return await page(request, "welcome.html", signed_in=True, consent_channels=CONSENT_CHANNELS)

    @post("/welcome")
    async def welcome(self, request: Request) -> Redirect:
        found = await current(request)
        if found is None:
            return Redirect("/login", status_code=303)
        form, customer, now = await request.form(), found[1].customer_id, dt.datetime.now(dt.UTC)
        name = _field(form, "name", 200)
        if name:
            await members.update_profile(customer, members.ProfileUpdate(name=name))
        chosen = [ConsentIn(c, form.get("consent_" + c) == "on") for c in CONSENT_CHANNELS]
        await members.change_consents(customer, members.ConsentUpdate(consents=chosen, source="web"), now)
        return Redirect("/", status_code=303)


async def login_page(request: Request, *, status: int = 200, **context: Any) -> Template:
    """The sign-in page; with the provider's button when OpenID Connect is configured."""
    provider = provider_of(request)
    context = {"to": "", "ref": "", "error": "", "notice": "", "problem": "", **context}
    query = {key: context[key] for key in ("next", "program") if context.get(key)}
    return await page(request, "login.html", status=status, oidc=provider.name if provider else "",
                      oidc_url="/login/oidc?" + urlencode(query), **context)


async def signed_in_redirect(request: Request, logged: tokens.LoggedIn, program: str | None, next_path: str,
                             now: dt.datetime) -> Redirect:
    """Open the web session for a fresh login (a new id: never one a visitor had before)."""
    claims = tokens.decode_access(logged.access_token, request.app.state.settings.security.secret_key, now)
    profile = await members.profile(logged.customer_id)
    if logged.new_customer:  # the language they registered in becomes the profile's
        lang = language(request)
        await members.update_profile(logged.customer_id, members.ProfileUpdate(locale=lang))  # type: ignore[arg-type]
        greeting = i18n.translate(lang, "Welcome to Kopilka!")
    else:  # the profile's language, whatever this browser used before
        lang = i18n.pick_language(profile.locale)
        greeting = i18n.translate(lang, "Welcome back") + (f", {profile.name}!" if profile.name else "!")
    sid = await start(request, WebSession(customer_id=logged.customer_id, family=str(claims.family), program=program,
                                          flash=greeting))
    target = "/welcome" if logged.new_customer and next_path == "/" and not profile.name else next_path
    return Redirect(target, status_code=303, cookies=[cookie(request, SESSION_COOKIE, sid),
                                                      cookie(request, LANG_COOKIE, lang, max_age=365 * 86400)])


async def _code_page(request: Request, pending: dict[str, Any], *, status: int = 200, next: str, program: str | None,
                     ref: str, error: str = "", notice: str = "", dead: bool = False) -> Template:
    """The code page: the contact formatted, the countdown to "send a new code", the error with attempts left."""
    to = pending["to"]
    resend_in = max(0, int(pending.get("sent", 0) + RESEND_AFTER - time.time()))
    return await page(request, "login_code.html", status=status, to=to,
                      to_shown=i18n.phone_display(to) if to.startswith("+") else to, next=next, program=program or "",
                      ref=ref, error=error, notice=notice, dead=dead, resend_in=resend_in)


_NOTICE = "kopilka:web:login-notice:"


async def add_login_notice(request: Request, text: str) -> None:
    login_id = request.cookies.get(LOGIN_COOKIE)
    if login_id and len(login_id) <= 100:
        await request.app.state.valkey.set(_NOTICE + _pending_key(login_id), text, ex=60)


async def take_login_notice(request: Request) -> str:
    login_id = request.cookies.get(LOGIN_COOKIE)
    if not login_id or len(login_id) > 100:
        return ""
    raw = await request.app.state.valkey.getdel(_NOTICE + _pending_key(login_id))
    return raw.decode() if raw else ""


# --- the invitation link and the web app manifest ------------------------------------------------


@get("/invite/{code:str}", include_in_schema=False)
async def invite(request: Request, code: Annotated[str, PathParameter(name="code", max_length=64,
                                                                       pattern=r"^[A-Za-z0-9_.\-]+$")]) -> Template:
    """The link a member shares: who invites you and what you both get, then sign-in with the code."""
    from loyalty_core.rules.programs import rules_document
    from loyalty_core.tables import Membership

    rows = await Membership.raw(
        "SELECT m.program, p.code AS program_code, p.rules_version, c.name FROM membership m "
        "JOIN program p ON p.id = m.program JOIN customer c ON c.id = m.customer "
        "WHERE m.referral_code = {} AND m.status = 'active' AND c.status = 'active' LIMIT 1", code.upper())
    if not rows:
        return await page(request, "invite.html", status=404, found=False, code="", inviter="", you=0, friend=0,
                          program="", first=0)
    row = rows[0]
    document: Any = await rules_document(row["program"], row["rules_version"])
    you = friend = first = 0
    for group in document.groups:
        for rule in group.rules:
            effect = rule.effect
            if group.active and rule.active and type(effect).__name__ == "EventBonus":
                if effect.event == "registered":
                    you, friend = you + effect.points, friend + effect.referrer_points
                elif effect.event == "first_purchase":
                    first, friend = first + effect.points, friend + effect.referrer_points
    inviter = (row["name"] or "").split(" ")[0]  # the first name only: the link may travel further than meant
    return await page(request, "invite.html", found=True, code=code.upper(), inviter=inviter, you=you, friend=friend,
                      first=first, program=row["program_code"])


@get("/manifest.webmanifest", include_in_schema=False, media_type="application/manifest+json")
async def web_manifest(request: Request) -> Response[bytes]:
    """Add to Home Screen: the card opens full screen like an app."""
    t = formats(request).t
    body = {
        "name": t("Kopilka"), "short_name": t("Kopilka"), "start_url": "/", "scope": "/", "display": "standalone",
        "background_color": "#f6f4f1", "theme_color": "#c42847", "lang": language(request),
        "icons": [
            {"src": static_url("icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static_url("icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {"src": static_url("icon-512-maskable.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
        ],
    }
    return Response(msgspec.json.encode(body), media_type="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})
