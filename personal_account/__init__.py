"""The shopper's website (Jinja2 + htmx), mounted at /. See docs/personal-account.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"


def _router() -> Any:
    from litestar import Router
    from litestar.datastructures import CacheControlHeader
    from litestar.static_files import create_static_files_router

    from personal_account.account import AccountController
    from personal_account.auth import SignInController, invite, web_manifest
    from personal_account.live import balance_stream
    from personal_account.oidc import OidcSignInController
    from personal_account.pages import CardPagesController, WalletController, qr_fragment
    from personal_account.session import check_csrf
    from personal_account.web import EXCEPTION_HANDLERS, STATIC_DIR

    static = create_static_files_router(
        path="/static", directories=[STATIC_DIR], include_in_schema=False,
        cache_control=CacheControlHeader(max_age=31_536_000, public=True),  # URLs carry a content hash
    )
    # CSRF, HTML error pages and the session guard live on this router only: the JSON APIs keep
    # bearer tokens and problem+json.
    return Router(
        path="/",
        route_handlers=[SignInController, OidcSignInController, CardPagesController, AccountController, WalletController, balance_stream,
                         qr_fragment, web_manifest, invite, static],
        before_request=check_csrf,
        exception_handlers=EXCEPTION_HANDLERS,
        include_in_schema=False,
    )


ROUTES: list = [_router()]


def template_config() -> Any:
    from litestar.contrib.jinja import JinjaTemplateEngine
    from litestar.template.config import TemplateConfig

    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def plugins(settings: Settings) -> list[Any]:
    """The live dashboard's channels on the Valkey URL and its poller, started and stopped with the app."""
    from personal_account.live import plugins as live_plugins

    return live_plugins(settings.valkey.url or "")
