"""Wiring: every area contributes its route handlers and plugins here; the factory stays small."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.settings import Settings


def route_handlers() -> list[Any]:
    from back_office import ROUTES as office_routes
    from backend.admin import ROUTES as admin_routes
    from backend.api import ROUTES as api_routes
    from backend.health import ROUTES as health_routes
    from backend.pos import ROUTES as pos_routes
    from personal_account import ROUTES as web_routes
    from wallet_passes.web import ROUTES as wallet_routes

    return [*health_routes, *pos_routes, *api_routes, *admin_routes, *wallet_routes, *office_routes, *web_routes]


def plugins(settings: Settings) -> list[Any]:
    """App-level plugins, started and stopped by the app's lifespan in every worker process."""
    from personal_account import plugins as web_plugins

    return [*web_plugins(settings)]


def website_not_found(request: Any) -> Any:
    """The website's HTML 404 page, for a browser on a URL that matches no route (see backend.problems)."""
    from personal_account.web import not_found_page

    return not_found_page(request)


def website_unavailable(request: Any) -> Any:
    """The website's HTML 503 page, when a service the page needs is down (see backend.problems)."""
    from personal_account.web import unavailable_page

    return unavailable_page(request)


def website_internal_error(request: Any, exc: Exception) -> Any:
    """The website's HTML 500 page (see backend.problems)."""
    from personal_account.web import internal_error

    return internal_error(request, exc)


def website_error(request: Any, exc: Any) -> Any:
    """The website's HTML error page for an HTTPException (see backend.problems)."""
    from personal_account.web import http_error

    return http_error(request, exc)


def template_config() -> Any:
    from personal_account import template_config as web_templates

    return web_templates()
