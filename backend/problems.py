"""RFC 9457 problem+json for every error, in one place."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from asyncpg.exceptions import DataError as PostgresDataError
from asyncpg.exceptions._base import DataError as ArgumentDataError
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    CrashShutdownError,
    PostgresConnectionError,
    TooManyConnectionsError,
)
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

from backend.wiring import website_error, website_internal_error, website_not_found, website_unavailable
from loyalty_core.errors import PROBLEM_BASE, DomainError

log = logging.getLogger("kopilka.problems")

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_body(slug: str, status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return body


def problem_response(slug: str, status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response(
        content=problem_body(slug, status, title, detail, **extra),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def domain_error_handler(_: Request, exc: DomainError) -> Response:
    response = Response(content=exc.as_problem(), status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE)
    if "retry_after" in exc.extra:
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
    return response


_HTTP_SLUGS = {
    400: "validation-error",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


# everything else is the shopper's website, mounted at /
_MACHINE_PREFIXES = ("/api", "/pos", "/admin", "/passkit", "/schema")


def _wants_website_page(request: Request) -> bool:
    """A browser on a website URL: not under a JSON API, and text/html is what it prefers (`*/*` alone is not)."""
    path = request.url.path
    if any(path == prefix or path.startswith(prefix + "/") for prefix in _MACHINE_PREFIXES):
        return False
    return request.accept.best_match([PROBLEM_MEDIA_TYPE, MediaType.HTML]) == MediaType.HTML


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status == 404 and _wants_website_page(request):
        return website_not_found(request)  # a URL that matches no route at all
    slug = _HTTP_SLUGS.get(status, "http-error")
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException):
        status, slug = 422, "validation-error"
        if exc.extra:
            extra["errors"] = exc.extra
    elif isinstance(exc, NotAuthorizedException):
        slug = "unauthorized"
    detail = exc.detail or "Request failed"
    if slug == "validation-error" and isinstance(exc.extra, list):
        messages = [str(e.get("message", "")) for e in exc.extra if isinstance(e, dict)]
        # a decoding error's detail already is its one message: say each reason once
        messages = [m for m in dict.fromkeys(messages) if m and m not in detail]
        if messages:
            detail = f"{detail}: {'; '.join(messages)}"
    titles = {"validation-error": "Invalid request", "not-found": "Not found", "unauthorized": "Not authenticated"}
    response = problem_response(slug, status, titles.get(slug, detail), detail, **extra)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _on_website(request: Request) -> bool:
    path = request.url.path
    return not any(path == prefix or path.startswith(prefix + "/") for prefix in _MACHINE_PREFIXES)


_NEEDED_FOR = {"valkey": "rate limits and one-time codes", "postgresql": "the database"}


def _dependency_down(request: Request, service: str, exc: Exception) -> Response:
    """503 naming the service (POS_API.md `dependency-unavailable`), not a 500; the website shows its own page."""
    log.warning("%s unavailable on %s %s: %r", service, request.method, request.url.path, exc)
    if _on_website(request):
        response = website_unavailable(request)
    else:
        response = problem_response(
            "dependency-unavailable", 503, "Service unavailable",
            f"{service} ({_NEEDED_FOR[service]}) is unavailable; nothing was written, try again shortly",
            dependency=service,
        )
    response.headers["Retry-After"] = "5"
    return response


def dependency_unavailable_handler(request: Request, exc: Exception) -> Response:
    """Valkey down or not answering."""
    return _dependency_down(request, "valkey", exc)


def database_unavailable_handler(request: Request, exc: Exception) -> Response:
    """PostgreSQL shut down, restarting, out of connections, or gone in the middle of a statement."""
    return _dependency_down(request, "postgresql", exc)


def _raised_in(exc: BaseException, package: str) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").partition(".")[0] == package:
            return True
        tb = tb.tb_next
    return False


def os_error_handler(request: Request, exc: OSError) -> Response:
    """Connecting to PostgreSQL failed (refused, or its unix socket is gone): 503; any other OSError is a bug."""
    if _raised_in(exc, "asyncpg"):
        return _dependency_down(request, "postgresql", exc)
    if _on_website(request):
        return website_internal_error(request, exc)
    return internal_error_handler(request, exc)


def database_data_error_handler(request: Request, exc: Exception) -> Response:
    """A value PostgreSQL cannot hold (out of a column's range, a NUL in text) that got past the input guard
    (backend.input_guard): the statement failed, its transaction rolled back, so it is the caller's 422."""
    log.warning("value refused by the database on %s %s: %s", request.method, request.url.path, exc)
    detail = "A value in the request is outside what can be stored (too large, or a character that is not allowed)"
    if _on_website(request):
        return website_error(request, HTTPException(status_code=422, detail=detail))
    return problem_response("validation-error", 422, "Invalid request", detail)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        "internal-error", HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", "The server failed; nothing was written."
    )


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    HTTPException: http_exception_handler,
    ValkeyConnectionError: dependency_unavailable_handler,  # BusyLoadingError (a restart reading its data) too
    ValkeyTimeoutError: dependency_unavailable_handler,
    PostgresConnectionError: database_unavailable_handler,  # SQLSTATE class 08; the server gone mid-statement too
    CannotConnectNowError: database_unavailable_handler,  # starting up or shutting down
    AdminShutdownError: database_unavailable_handler,
    CrashShutdownError: database_unavailable_handler,
    TooManyConnectionsError: database_unavailable_handler,
    OSError: os_error_handler,
    PostgresDataError: database_data_error_handler,  # SQLSTATE class 22, raised by PostgreSQL
    ArgumentDataError: database_data_error_handler,  # raised by asyncpg encoding an argument (int32 range)
    HTTP_500_INTERNAL_SERVER_ERROR: internal_error_handler,
}

__all__ = ["EXCEPTION_HANDLERS", "MediaType", "problem_response", "problem_body", "PROBLEM_MEDIA_TYPE"]
