"""What every page shares: language, CSRF, flash message, formatting helpers, the member, and the error pages."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect, Template

from loyalty_core.errors import DomainError
from loyalty_core.members.profile import Member, member_of
from personal_account import i18n
from personal_account.session import (
    CSRF_COOKIE,
    LANG_COOKIE,
    SESSION_COOKIE,
    SignInRequired,
    WebSession,
    cookie,
    csrf_cookie_value,
    csrf_token,
    current,
    take_flash,
)

log = logging.getLogger("kopilka.web")

CurrentMember = NamedDependency[Member]
Web = NamedDependency[WebSession]
Now = NamedDependency[dt.datetime]


def language(connection: ASGIConnection) -> str:
    return i18n.pick_language(connection.cookies.get(LANG_COOKIE))


def provide_web(request: Request) -> WebSession:
    return request.state.web  # type: ignore[no-any-return]


async def provide_member(request: Request) -> Member:
    web: WebSession = request.state.web
    return await member_of(web.customer_id, web.program)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


DEPENDENCIES = {
    "web": Provide(provide_web, sync_to_thread=False),
    "member": Provide(provide_member),
    "now": Provide(utc_now, sync_to_thread=False),
}


class Formats:
    """Money, points and dates as this shopper reads them (language + the program's time zone)."""

    def __init__(self, lang: str, timezone: str) -> None:
        self.lang, self.timezone = lang, timezone

    def t(self, text: str) -> str:
        return i18n.translate(self.lang, text)

    def money(self, minor: int) -> str:
        return i18n.money(minor, self.lang)

    def points(self, value: int) -> str:
        return i18n.number(value, self.lang)

    def pts(self, value: int) -> str:
        """A number of points with its word: '1 234 балла'."""
        return f"{i18n.number(value, self.lang)}{i18n.NBSP}{i18n.points_word(value, self.lang)}"

    def word(self, value: int) -> str:
        return i18n.points_word(value, self.lang)

    def qty(self, milli: int) -> str:
        return i18n.quantity(milli, self.lang)

    def date(self, value: Any) -> str:
        return i18n.date(value, self.lang, self.timezone)

    def error(self, text: str) -> str:
        """A refusal in the shopper's language (known messages with their values; never English on the Russian site)."""
        return i18n.error_text(text, self.lang)

    def name(self, names: dict[str, str] | None, fallback: str) -> str:
        return i18n.localized(names, fallback, self.lang)

    def plural(self, n: int, ru: tuple[str, str, str], en: tuple[str, str]) -> str:
        return f"{i18n.number(n, self.lang)}{i18n.NBSP}{i18n.plural(n, self.lang, ru, en)}"

    def word_for(self, n: int, ru: tuple[str, str, str], en: tuple[str, str]) -> str:
        """The word alone, in the number's form: 'до 1 категории', 'до 3 категорий'."""
        return i18n.plural(n, self.lang, ru, en)

    def phone(self, value: str) -> str:
        return i18n.phone_display(value)

    def datetime(self, value: Any) -> str:
        return i18n.datetime(value, self.lang, self.timezone)


def formats(connection: ASGIConnection, timezone: str = "Europe/Moscow") -> Formats:
    return Formats(language(connection), timezone)


async def page(request: Request, template: str, *, status: int = 200, member: Member | None = None,
               **context: Any) -> Template:
    """Render a page with the shared context; sets the CSRF cookie on a browser's first visit."""
    csrf, new = csrf_cookie_value(request)
    fmt = formats(request, member.timezone if member else "Europe/Moscow")
    shared = dict(
        f=fmt, t=fmt.t, lang=fmt.lang, csrf=csrf_token(request, csrf), path=request.url.path,
        signed_in=getattr(request.state, "web", None) is not None, flash=await take_flash(request),
        static=static_url,
    )
    cookies = [cookie(request, CSRF_COOKIE, csrf, max_age=None)] if new else []
    return Template(template_name=template, context={**shared, **context}, status_code=status, cookies=cookies,
                    headers={"Cache-Control": "no-store"})


def back_to(path: str) -> Redirect:
    """Post/redirect/get: a form answer is a 303 to the page that shows the outcome."""
    return Redirect(path, status_code=303)


def safe_next(raw: str | None) -> str:
    """Only same-site paths: `next` never sends a shopper to another host."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


# --- static files with a content hash, so they can be cached for a year --------------------------

STATIC_DIR = __import__("pathlib").Path(__file__).parent / "static"


@functools.cache
def static_url(name: str) -> str:
    import hashlib

    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


# --- error pages -----------------------------------------------------------------------------------

_TRANSLATED = {401: "Please sign in.", 403: "The form expired: please try again.", 404: "This page does not exist or is not yours."}
_TITLES = {404: "Page not found", 503: "Temporarily unavailable"}


def _error_template(request: Request, status: int, detail: str, signed_in: bool) -> Template:
    fmt = formats(request)
    title = fmt.t(_TITLES.get(status) or ("Something went wrong" if status >= 500 else "Error"))
    return Template(template_name="error.html", status_code=status, headers={"Cache-Control": "no-store"},
                    context=dict(f=fmt, t=fmt.t, lang=fmt.lang, csrf="", path=request.url.path, flash="",
                                 signed_in=signed_in, static=static_url, status=status, title=title,
                                 detail=fmt.error(detail), retry=status >= 500 and request.method == "GET"))


class ErrorPage(Response):
    """An error page in the shopper's language (the `kp_lang` cookie). A 4xx keeps the app's layout: a signed-in
    shopper gets the tab bar to find their way back. Exception handlers are synchronous and a URL that matches no
    route ran no guard, so the session is looked up here, when the answer is sent. A 5xx stays minimal (no tabs,
    no session lookup: Valkey or PostgreSQL may be what is down)."""

    def __init__(self, request: Request, status: int, detail: str) -> None:
        super().__init__(content=b"", status_code=status)
        self.page_request, self.detail = request, detail

    def to_asgi_response(self, app: Any, request: Request, **kwargs: Any) -> Any:  # type: ignore[override]
        page_request, status, detail = self.page_request, self.status_code, self.detail

        async def send_page(scope: Any, receive: Any, send: Any) -> None:
            signed_in = status < 500 and await _signed_in(page_request)
            template = _error_template(page_request, status, detail, signed_in)
            await template.to_asgi_response(None, request)(scope, receive, send)

        return send_page


async def _signed_in(request: Request) -> bool:
    if getattr(request.state, "web", None) is not None:  # a guarded page: the guard found the session
        return True
    if not request.cookies.get(SESSION_COOKIE):
        return False
    try:
        return await current(request) is not None
    except Exception:  # Valkey or PostgreSQL blinked: the page without the tabs rather than no page
        log.warning("session lookup for an error page failed", exc_info=True)
        return False


def _error_page(request: Request, status: int, detail: str) -> Response:
    return ErrorPage(request, status, detail)


def sign_in_required(request: Request, _: SignInRequired) -> Response:
    target = "/login?next=" + quote(request.url.path + (("?" + request.url.query) if request.url.query else ""), safe="")
    if request.headers.get("hx-request"):
        return Response(b"", status_code=204, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    detail = _TRANSLATED.get(status) or exc.detail or "Error"
    return _error_page(request, status, detail)


def domain_error(request: Request, exc: DomainError) -> Response:
    detail = _TRANSLATED.get(exc.status) if exc.status in (401, 404) else exc.detail
    return _error_page(request, exc.status, detail or exc.title)


def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("web page failed: %s %s", request.method, request.url.path, exc_info=exc)
    return _error_page(request, 500, "We could not finish this. Nothing was changed; try again in a minute.")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: sign_in_required,
    DomainError: domain_error,
    HTTPException: http_error,
    500: internal_error,
}


def not_found_page(request: Request) -> Response:
    """The 404 page, also for URLs that match no route (asked by the app-level handler in backend.problems)."""
    return _error_page(request, 404, _TRANSLATED[404])


def unavailable_page(request: Request) -> Response:
    """503: a service the page needs is down (asked by the app-level handler in backend.problems)."""
    return _error_page(request, 503, "This is unavailable for a moment. Nothing was changed; try again in a minute.")


def not_found() -> NotFoundException:
    return NotFoundException("This page does not exist or is not yours.")
