"""What every back-office page shares: the staff session in Valkey, CSRF, role guards, rendering, error pages.

Session: a random `kp_office` cookie (HttpOnly, SameSite=Strict, path /office); Valkey holds sha256(cookie) ->
the staff id, for OFFICE_TTL. The staff row is read on every request, so a disabled account or a changed role
applies at once. CSRF: a random `kp_office_csrf` cookie; forms (and htmx, X-CSRF-Token) send
HMAC(secret, cookie + session), checked before any unsafe method. See docs/back-office.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect

from back_office import i18n
from loyalty_core.errors import DomainError
from loyalty_core.office import staff as staff_service
from loyalty_core.office.approvals import Actor
from loyalty_core.office.staff import Staff
from personal_account.session import LANG_COOKIE, CsrfGuard, cookie_policy
from personal_account.web import static_url

log = logging.getLogger("kopilka.office")

SESSION_COOKIE = "kp_office"
CSRF_COOKIE = "kp_office_csrf"
OFFICE_TTL = 8 * 3600  # a working day; sign in again tomorrow
PATH = "/office"
_KEY = "kopilka:office:session:"
STATIC_DIR = Path(__file__).parent / "static"
_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(default=True),
                   trim_blocks=True, lstrip_blocks=True)


class Session(msgspec.Struct, kw_only=True):
    staff_id: int
    flash: str = ""


class OfficeSignIn(NotAuthorizedException):
    """A stranger: to the sign-in page."""


def office_cookie(connection: ASGIConnection, key: str, value: str, max_age: int | None = OFFICE_TTL) -> Cookie:
    return Cookie(key=key, value=value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                  secure=cookie_policy(connection).secure)


def _key(sid: str) -> str:
    return _KEY + hashlib.sha256(sid.encode()).hexdigest()


def origin(connection: ASGIConnection) -> str:
    return connection.client.host if connection.client else ""


async def start(connection: ASGIConnection, who: Staff) -> str:
    sid = secrets.token_urlsafe(32)  # new at every sign-in: no session fixation
    await connection.app.state.valkey.set(_key(sid), msgspec.json.encode(Session(staff_id=who.id)), ex=OFFICE_TTL)
    return sid


async def end(connection: ASGIConnection) -> None:
    sid = connection.cookies.get(SESSION_COOKIE)
    if sid and len(sid) <= 100:
        await connection.app.state.valkey.delete(_key(sid))


async def current(connection: ASGIConnection) -> tuple[str, Session, Staff] | None:
    sid = connection.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 100:
        return None
    raw = await connection.app.state.valkey.get(_key(sid))
    if raw is None:
        return None
    session = msgspec.json.decode(raw, type=Session)
    who = await staff_service.by_id(session.staff_id)
    if who is None:
        await connection.app.state.valkey.delete(_key(sid))
        return None
    return sid, session, who


def roles(*wanted: str) -> Any:
    """A guard: signed in (else the sign-in page) and holding one of `wanted` (admin holds all), else 403."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        found = await current(connection)
        if found is None:
            raise OfficeSignIn("Please sign in.")
        connection.state.office_sid, connection.state.office, connection.state.staff = found
        if wanted and not found[2].may(*wanted):
            raise PermissionDeniedException("Your role does not allow this page.")

    return guard


def staff_of(request: Request) -> Staff:
    return request.state.staff  # type: ignore[no-any-return]


def actor_of(request: Request) -> Actor:
    who = staff_of(request)
    return Actor(name=who.actor, ref=f"staff:{who.id}", origin=origin(request))


async def flash(request: Request, message: str) -> None:
    session: Session = request.state.office
    session.flash = message
    await request.app.state.valkey.set(_key(request.state.office_sid), msgspec.json.encode(session), ex=OFFICE_TTL)


async def _take_flash(request: Request) -> str:
    session: Session | None = getattr(request.state, "office", None)
    if session is None or not session.flash:
        return ""
    message, session.flash = session.flash, ""
    await request.app.state.valkey.set(_key(request.state.office_sid), msgspec.json.encode(session), ex=OFFICE_TTL)
    return message


# --- CSRF ------------------------------------------------------------------------------------------


OFFICE_CSRF = CsrfGuard(CSRF_COOKIE, SESSION_COOKIE, "kopilka/office-csrf/v1")
check_csrf = OFFICE_CSRF.check  # before_request of the office router: every unsafe method carries this browser's token


# --- rendering -------------------------------------------------------------------------------------


def language(connection: ASGIConnection) -> str:
    return i18n.pick(connection.cookies.get(LANG_COOKIE))


async def page(request: Request, template: str, *, status: int = 200, sid: str | None = None,
               cookies: list[Cookie] | None = None, **context: Any) -> Response:
    """An HTML page with the shared context; `sid`: the session this page will be read under (just signed in)."""
    return render(request, template, status=status, sid=sid, cookies=cookies, flash=await _take_flash(request),
                  **context)


def render(request: Request, template: str, *, status: int = 200, sid: str | None = None,
           cookies: list[Cookie] | None = None, flash: str = "", **context: Any) -> Response:
    csrf, new = OFFICE_CSRF.cookie_value(request)
    lang = language(request)
    fmt = i18n.Formats(lang)
    who: Staff | None = getattr(request.state, "staff", None)
    html = _ENV.get_template(template).render(
        f=fmt, t=fmt.t, lang=lang, csrf=OFFICE_CSRF.token(request, csrf, sid), path=request.url.path, staff=who,
        flash=flash, static=static_url, office_static=office_static, **context)
    out = list(cookies or [])
    if new:
        out.append(office_cookie(request, CSRF_COOKIE, csrf, max_age=None))
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", cookies=out,
                    headers={"Cache-Control": "no-store"})


def office_static(name: str) -> str:
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    return f"{PATH}/static/{name}?v={digest}"


def back_to(path: str) -> Redirect:
    return Redirect(path, status_code=303)


def safe_next(raw: str | None) -> str:
    """Only back-office paths after sign-in."""
    if not raw or not raw.startswith(PATH + "/") or raw.startswith("//") or "\\" in raw:
        return PATH + "/"
    return raw


# --- errors ----------------------------------------------------------------------------------------


def _error(request: Request, status: int, detail: str) -> Response:
    return render(request, "office_error.html", status=status, code=status, detail=detail)


def sign_in_required(request: Request, _: OfficeSignIn) -> Response:
    target = f"{PATH}/login?next=" + quote(request.url.path, safe="")
    if request.headers.get("hx-request"):
        return Response(b"", status_code=204, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def http_error(request: Request, exc: HTTPException) -> Response:
    return _error(request, exc.status_code, exc.detail or "Error")


def domain_error(request: Request, exc: DomainError) -> Response:
    return _error(request, exc.status, exc.detail or exc.title)


def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("office page failed: %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, "We could not finish this. Nothing was changed; try again in a minute.")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    OfficeSignIn: sign_in_required,
    DomainError: domain_error,
    HTTPException: http_error,
    500: internal_error,
}


async def form_of(request: Request, kind: type[Any]) -> Any:
    """The posted form as `kind` (read with request.form(), as the website does: the input guard passes forms
    through to the handler; over-long or unexpected values answer 400)."""
    form = await request.form()
    names = set(kind.__struct_fields__)
    try:
        return msgspec.convert({k: v for k, v in form.items() if k in names and isinstance(v, str)}, kind)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=400, detail=f"The form is not valid: {exc}") from None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
