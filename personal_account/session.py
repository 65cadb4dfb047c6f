"""Web sessions in Valkey, their cookie, and CSRF tokens for every form.

A web login is the same login the shopper API makes (a refresh-token family from
`tokens.log_in_with_code`); the session keeps the customer and the family, and every request
checks the family is alive, so "log out everywhere" and account deletion end web sessions too.
The cookie holds only a random id; Valkey holds `sha256(id)` -> the session, so a dump of
Valkey does not give working cookies away.

CSRF: a random `kp_csrf` cookie plus a form field (or `X-CSRF-Token` header for htmx) that must
equal HMAC(secret, cookie + session id). Scoped to the website's router: the JSON APIs carry
bearer tokens and are not affected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from loyalty_core.shopper_auth.tokens import session_alive

SESSION_COOKIE = "kp_session"
CSRF_COOKIE = "kp_csrf"
LANG_COOKIE = "kp_lang"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL = int(dt.timedelta(days=30).total_seconds())
_KEY = "kopilka:web:session:"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class WebSession(msgspec.Struct, kw_only=True):
    customer_id: int
    family: str  # the refresh-token family of this login
    program: str | None = None
    flash: str = ""  # one message shown on the next page (post/redirect/get)


class CookiePolicy(msgspec.Struct, frozen=True, kw_only=True):
    secure: bool  # Secure cookies: on when the public URL is https or KOPILKA_WEB_SECURE_COOKIES=1


def cookie_policy(connection: ASGIConnection) -> CookiePolicy:
    return CookiePolicy(secure=connection.app.state.settings.web.secure_cookies)


def cookie(connection: ASGIConnection, key: str, value: str, max_age: int | None = SESSION_TTL, *,
           http_only: bool = True) -> Cookie:
    return Cookie(key=key, value=value, max_age=max_age, path="/", httponly=http_only, samesite="lax",
                  secure=cookie_policy(connection).secure)


def expired_cookie(connection: ASGIConnection, key: str) -> Cookie:
    return Cookie(key=key, value="", max_age=0, path="/", httponly=True, samesite="lax",
                  secure=cookie_policy(connection).secure)


def _valkey(connection: ASGIConnection) -> Any:
    return connection.app.state.valkey


def _key(sid: str) -> str:
    return _KEY + hashlib.sha256(sid.encode()).hexdigest()


async def start(connection: ASGIConnection, session: WebSession) -> str:
    """A new session id (never reuse one from before the login: no session fixation)."""
    sid = secrets.token_urlsafe(32)
    await _valkey(connection).set(_key(sid), msgspec.json.encode(session), ex=SESSION_TTL)
    return sid


async def save(connection: ASGIConnection, sid: str, session: WebSession) -> None:
    await _valkey(connection).set(_key(sid), msgspec.json.encode(session), ex=SESSION_TTL)


async def end(connection: ASGIConnection, sid: str) -> None:
    await _valkey(connection).delete(_key(sid))


async def current(connection: ASGIConnection) -> tuple[str, WebSession] | None:
    """The signed-in session of this request, or None (no cookie, expired, logged out elsewhere)."""
    sid = connection.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 100:
        return None
    raw = await _valkey(connection).get(_key(sid))
    if raw is None:
        return None
    session = msgspec.json.decode(raw, type=WebSession)
    import uuid

    if not await session_alive(session.customer_id, uuid.UUID(session.family), dt.datetime.now(dt.UTC)):
        await end(connection, sid)
        return None
    return sid, session


class SignInRequired(NotAuthorizedException):
    """Handled by the website: a redirect to the sign-in page, not a problem document."""


async def signed_in_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    found = await current(connection)
    if found is None:
        raise SignInRequired("Please sign in.")
    connection.state.sid, connection.state.web = found


async def add_flash(connection: ASGIConnection, message: str) -> None:
    connection.state.web.flash = message
    await save(connection, connection.state.sid, connection.state.web)


async def take_flash(connection: ASGIConnection) -> str:
    web = getattr(connection.state, "web", None)
    if web is None or not web.flash:
        return ""
    message, web.flash = web.flash, ""
    await save(connection, connection.state.sid, web)
    return message


# --- CSRF ------------------------------------------------------------------------------------


class CsrfGuard:
    """A random cookie plus a form field (or header) equal to HMAC(secret, purpose, cookie + session id).

    One mechanism for the website and the back office; each has its own cookies and purpose, so a token
    of one is never valid on the other."""

    def __init__(self, cookie: str, session_cookie: str, purpose: str) -> None:
        self.cookie, self.session_cookie = cookie, session_cookie
        self.purpose = purpose.encode() + b":"
        self._state_key = "new_csrf_" + cookie

    def token(self, connection: ASGIConnection, csrf_cookie: str, sid: str | None = None) -> str:
        """`sid`: the session id when it is new in this response (not yet in the request's cookies)."""
        bound = csrf_cookie + ":" + (sid if sid is not None else connection.cookies.get(self.session_cookie) or "")
        secret = connection.app.state.settings.security.secret_key.encode()
        return hmac.new(secret, self.purpose + bound.encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, connection: ASGIConnection) -> tuple[str, bool]:
        """(the CSRF cookie, whether it is new and must be set on the response)."""
        value = connection.cookies.get(self.cookie)
        if value and 20 <= len(value) <= 100:
            return value, False
        cached = getattr(connection.state, self._state_key, None)
        if cached is None:
            cached = secrets.token_urlsafe(24)
            setattr(connection.state, self._state_key, cached)
        return cached, True

    async def check(self, request: Request) -> None:
        """before_request hook: unsafe methods need the token of this browser's cookie."""
        if request.method not in _UNSAFE:
            return
        csrf_cookie = request.cookies.get(self.cookie)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            sent = (await request.form()).get(CSRF_FIELD)
        # bytes: compare_digest raises TypeError on str with non-ASCII characters
        if not csrf_cookie or not isinstance(sent, str) or not hmac.compare_digest(
            sent.encode(), self.token(request, csrf_cookie).encode()
        ):
            raise PermissionDeniedException("The form expired: please try again.")


WEB_CSRF = CsrfGuard(CSRF_COOKIE, SESSION_COOKIE, "kopilka/web-csrf/v1")


def csrf_token(connection: ASGIConnection, csrf_cookie: str) -> str:
    return WEB_CSRF.token(connection, csrf_cookie)


def csrf_cookie_value(connection: ASGIConnection) -> tuple[str, bool]:
    return WEB_CSRF.cookie_value(connection)


async def check_csrf(request: Request) -> None:
    await WEB_CSRF.check(request)
