"""Sign in with the OpenID Connect provider, on the website (authorization code + PKCE).

The shopper API's flow (`backend.api.oidc`) with a browser's ending: the provider comes back to
`/login/oidc/callback`, and the login becomes a server-side web session like a code login.
Discovery, the client (authlib) and every id_token check (signature, issuer, audience, nonce, expiry)
are the API's helpers. The flow's state, nonce and PKCE verifier live in a pre-login web session:
a random `kp_oidc` cookie, Valkey `kopilka:web:oidc:<sha256 of it>`, 10 minutes, single use, so a
callback completes only in the browser that started it (no login CSRF).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import urlparse

import msgspec
from litestar import Controller, Request, get
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from backend.api.oidc import (
    STATE_TTL,
    OidcFailed,
    OidcNoVerifiedContact,
    OidcUnavailable,
    exchange_code,
    oauth_client,
    provider_metadata,
    verified_claims,
    verified_contact,
)
from backend.settings import OidcSettings, Settings
from loyalty_core.errors import DomainError
from loyalty_core.shopper_auth import tokens
from loyalty_core.members.identity import resolve_program
from personal_account.session import cookie, expired_cookie
from personal_account.web import not_found, safe_next

FLOW_COOKIE = "kp_oidc"
_KEY = "kopilka:web:oidc:"
Next = Annotated[str | None, QueryParameter(name="next", max_length=500)]
Program = Annotated[str | None, QueryParameter(name="program", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Code = Annotated[str | None, QueryParameter(name="code", max_length=2000)]
State = Annotated[str | None, QueryParameter(name="state", max_length=200)]
ProviderError = Annotated[str | None, QueryParameter(name="error", max_length=200)]


class WebOidc(msgspec.Struct, frozen=True, kw_only=True):
    settings: OidcSettings  # the API's, with the website's redirect URI
    name: str  # shown on the button: "Sign in with <name>"


def web_oidc(settings: Settings) -> WebOidc | None:
    """The provider for the website, or None when OIDC is not configured.

    KOPILKA_WEB_OIDC_REDIRECT_URI (default <public url>/login/oidc/callback) must be registered with the
    provider too; KOPILKA_WEB_OIDC_NAME names it on the button (default: the issuer's host).
    """
    oidc = settings.identity.oidc
    if oidc is None:
        return None
    redirect = settings.web.oidc_redirect_uri or settings.server.public_url.rstrip("/") + "/login/oidc/callback"
    name = settings.web.oidc_name or urlparse(oidc.issuer).hostname or oidc.issuer
    return WebOidc(settings=msgspec.structs.replace(oidc, redirect_uri=redirect), name=name)


def provider_of(request: Request) -> WebOidc | None:
    return web_oidc(request.app.state.settings)


class Flow(msgspec.Struct, kw_only=True):
    state: str
    nonce: str
    verifier: str
    program: str | None
    next: str


class SignInRefused(Exception):
    """A readable reason, shown on the sign-in page."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.text, self.status = text, status


def _key(flow_id: str) -> str:
    return _KEY + hashlib.sha256(flow_id.encode()).hexdigest()


async def _take_flow(request: Request, state: str | None) -> Flow:
    """The flow this browser started, spent (a replayed or foreign callback finds nothing)."""
    flow_id = request.cookies.get(FLOW_COOKIE)
    raw = await request.app.state.valkey.getdel(_key(flow_id)) if flow_id and len(flow_id) <= 100 else None
    flow = msgspec.json.decode(raw, type=Flow) if raw is not None else None
    if flow is None or not state or not hmac.compare_digest(state.encode(), flow.state.encode()):
        raise SignInRefused("This sign-in has expired or was started in another browser. Please try again.", 400)
    return flow


async def _log_in(request: Request, oidc: OidcSettings, flow: Flow, code: str, now: dt.datetime) -> tokens.LoggedIn:
    try:
        metadata = await provider_metadata(oidc)
        token = await exchange_code(oidc, metadata, code, flow.verifier)
        claims = await verified_claims(oidc, metadata, token["id_token"], flow.nonce)
        email, phone = verified_contact(claims)
        return await tokens.log_in_with_verified_contact(
            await resolve_program(flow.program), email=email, phone=phone, name=str(claims.get("name", ""))[:200],
            channel="oidc", secret=request.app.state.settings.security.secret_key, now=now)
    except OidcNoVerifiedContact:
        raise SignInRefused("The provider did not confirm your e-mail or phone. Sign in with a code instead.",
                            401) from None
    except OidcUnavailable:
        raise SignInRefused("The sign-in service is not answering. Try again in a minute or sign in with a code.",
                            502) from None
    except OidcFailed:
        raise SignInRefused("We could not sign you in with the provider. Please try again or sign in with a code.",
                            401) from None
    except DomainError as exc:  # e.g. an unknown program or a customer who cannot log in
        raise SignInRefused(exc.detail or exc.title, exc.status) from None


class OidcSignInController(Controller):
    path = "/login/oidc"
    include_in_schema = False

    @get("/")
    async def start(self, request: Request, next_path: Next = None, program: Program = None) -> Redirect | Template:
        """To the provider, with a fresh state, nonce and PKCE verifier kept in this browser's flow."""
        provider = provider_of(request)
        if provider is None:
            raise not_found()
        oidc = provider.settings
        try:
            metadata = await provider_metadata(oidc)
        except (OidcUnavailable, OidcFailed):
            return await refused_page(request, program, safe_next(next_path), SignInRefused(
                "The sign-in service is not answering. Try again in a minute or sign in with a code.", 502))
        flow = Flow(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24), verifier=secrets.token_urlsafe(48),
                    program=program, next=safe_next(next_path))
        async with oauth_client(oidc) as client:
            url, _ = client.create_authorization_url(metadata["authorization_endpoint"], state=flow.state,
                                                     nonce=flow.nonce, code_verifier=flow.verifier)
        flow_id = secrets.token_urlsafe(32)
        await request.app.state.valkey.set(_key(flow_id), msgspec.json.encode(flow), ex=STATE_TTL)
        return Redirect(url, status_code=303, cookies=[cookie(request, FLOW_COOKIE, flow_id, max_age=STATE_TTL)])

    @get("/callback")
    async def callback(self, request: Request, code: Code = None, login_state: State = None,
                       error: ProviderError = None) -> Redirect | Template:
        """Back from the provider: check the flow, exchange the code, open the web session like a code login."""
        from personal_account.auth import signed_in_redirect

        provider = provider_of(request)
        if provider is None:
            raise not_found()
        program, next_path, now = None, "/", dt.datetime.now(dt.UTC)
        try:
            flow = await _take_flow(request, login_state)
            program, next_path = flow.program, flow.next
            if error or not code:
                raise SignInRefused("Sign-in was cancelled at the provider. Try again or sign in with a code.", 401)
            logged = await _log_in(request, provider.settings, flow, code, now)
        except SignInRefused as refused:
            return await refused_page(request, program, next_path, refused)
        response = await signed_in_redirect(request, logged, program, next_path, now)
        response.set_cookie(expired_cookie(request, FLOW_COOKIE))
        return response


async def refused_page(request: Request, program: str | None, next_path: str, refused: SignInRefused) -> Template:
    from personal_account.auth import login_page

    response = await login_page(request, status=refused.status, next=next_path, program=program or "", error="",
                                problem=refused.text)
    response.set_cookie(expired_cookie(request, FLOW_COOKIE))
    return response
