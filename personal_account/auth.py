"""Sign in (and register) with a one-time code by phone or e-mail, sign out, switch the language.

The same use-cases as the shopper API (`otp.request_code`, `tokens.log_in_with_code`); the web keeps
the login's token family in a server-side session instead of handing tokens to the browser.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect, Template

from backend.api.auth import gateway_for
from backend.api.guards import client_ip
from backend.api.settings import get_identity_settings
from loyalty_core.errors import DomainError, RateLimited
from loyalty_core.services import tokens
from loyalty_core.services.identity import resolve_program
from loyalty_core.services.otp import Identifier, parse_identifier, request_code
from personal_account import i18n
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
from personal_account.web import page, safe_next

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


async def _remember_contact(request: Request, who: Identifier, ttl: int) -> Cookie:
    login_id = secrets.token_urlsafe(32)
    await request.app.state.valkey.set(_pending_key(login_id), who.value, ex=ttl)
    return cookie(request, LOGIN_COOKIE, login_id, max_age=ttl)


async def _pending_contact(request: Request) -> str | None:
    login_id = request.cookies.get(LOGIN_COOKIE)
    if not login_id or len(login_id) > 100:
        return None
    raw = await request.app.state.valkey.get(_pending_key(login_id))
    return raw.decode() if raw is not None else None


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
        identity = get_identity_settings()
        try:
            who = parse_identifier(raw)
        except DomainError:
            return await login_page(request, status=422, next=next_path, program=program or "", to=raw, ref=ref,
                              error="That is not a phone number or an e-mail address.", notice="")
        valkey = request.app.state.valkey
        try:
            await request_code(valkey, gateway_for(identity, valkey), who, client_ip(request),
                               request.app.state.settings.security.secret_key, identity.otp)
        except DomainError as exc:
            return await login_page(request, status=exc.status, next=next_path, program=program or "", to=raw, ref=ref,
                              error=_error_text(exc), notice="")
        return Redirect(_code_page_url(program, next_path, ref), status_code=303,
                        cookies=[await _remember_contact(request, who, identity.otp.code_ttl)])

    @get("/login/code")
    async def code_form(self, request: Request, next_path: Next = None, program: Program = None,
                        ref: Ref = None) -> Template | Redirect:
        to = await _pending_contact(request)
        if to is None:  # no code asked for in this browser, or it expired
            query = {"next": safe_next(next_path), **({"program": program} if program else {})}
            return Redirect("/login?" + urlencode(query), status_code=303)
        return await page(request, "login_code.html", to=to, next=safe_next(next_path), program=program or "", ref=ref or "",
                          error="", name="", consent_channels=CONSENT_CHANNELS)

    @post("/login/code")
    async def verify_code(self, request: Request) -> Template | Redirect:
        form = await request.form()
        program, next_path = _field(form, "program", 64) or None, safe_next(_field(form, "next", 500))
        to = await _pending_contact(request) or _field(form, "to")  # the code proves the contact either way
        name, ref = _field(form, "name", 200), _field(form, "ref", 64)
        consents = [{"channel": c, "granted": form.get("consent_" + c) == "on"} for c in CONSENT_CHANNELS]
        identity, secret, now = get_identity_settings(), request.app.state.settings.security.secret_key, dt.datetime.now(dt.UTC)
        try:
            login = msgspec.convert({"to": to, "code": _field(form, "code", 12).replace(" ", ""), "channel": "web",
                                     "name": name, "consents": consents, "referral_code": ref or None}, tokens.CodeLogin)
            logged = await tokens.log_in_with_code(request.app.state.valkey, await resolve_program(program), login,
                                                   client_ip(request), secret, identity.otp, now)
        except (msgspec.ValidationError, DomainError) as exc:
            text = _error_text(exc) if isinstance(exc, DomainError) else "Wrong or expired code."
            return await page(request, "login_code.html", status=422, to=to, next=next_path, program=program or "", ref=ref,
                              error=text, name=name, consent_channels=CONSENT_CHANNELS)
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
        return Redirect("/login?bye=1", status_code=303, cookies=[expired_cookie(request, SESSION_COOKIE)])

    @get("/lang/{code:str}")
    async def switch_language(self, request: Request,
                              code: Annotated[str, PathParameter(name="code", pattern="^(ru|en)$")],
                              next_path: Next = None) -> Response:
        return Redirect(safe_next(next_path), status_code=303,
                        cookies=[cookie(request, LANG_COOKIE, i18n.pick_language(code), max_age=365 * 86400)])


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
    sid = await start(request, WebSession(customer_id=logged.customer_id, family=str(claims.family), program=program,
                                          flash="Welcome!"))
    return Redirect(next_path, status_code=303, cookies=[cookie(request, SESSION_COOKIE, sid)])
