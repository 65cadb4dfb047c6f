"""Staff sign-in: e-mail + password + TOTP code (local accounts), or the company's OIDC provider; sign-out."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from back_office import web
from backend.api.oidc import (
    STATE_TTL,
    OidcFailed,
    OidcUnavailable,
    exchange_code,
    oauth_client,
    provider_metadata,
    verified_claims,
)
from backend.settings import OidcSettings
from loyalty_core.errors import DomainError
from loyalty_core.office import audit
from loyalty_core.office import staff

Next = Annotated[str | None, QueryParameter(name="next", max_length=500)]
_FLOW_KEY = "kopilka:office:oidc:"
FLOW_COOKIE = "kp_office_oidc"


class SignInForm(msgspec.Struct, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    password: Annotated[str, msgspec.Meta(max_length=500)] = ""
    code: Annotated[str, msgspec.Meta(max_length=20)] = ""
    next: Annotated[str, msgspec.Meta(max_length=500)] = ""


class OidcFlow(msgspec.Struct, kw_only=True):
    state: str
    nonce: str
    verifier: str
    next: str


def office_oidc(request: Request) -> OidcSettings | None:
    """The company's provider: the identity settings' (KOPILKA_OIDC_*), coming back to /office/login/oidc/callback
    (KOPILKA_OFFICE_OIDC_REDIRECT_URI to override; it must be registered with the provider)."""
    settings = request.app.state.settings
    oidc = settings.identity.oidc
    if oidc is None:
        return None
    redirect = settings.office.oidc_redirect_uri or settings.server.public_url.rstrip("/") + "/office/login/oidc/callback"
    return msgspec.structs.replace(oidc, redirect_uri=redirect)


def roles_claim(claims: dict[str, Any], claim: str) -> list[str] | None:
    """Roles from the provider's claim (KOPILKA_OFFICE_ROLES_CLAIM, default `kopilka_roles`): a list or a
    space/comma separated string. None when the provider sends no such claim (then the staff row decides)."""
    value = claims.get(claim)
    if value is None:
        return None
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    return [str(item).strip().lower() for item in items if str(item).strip()]


async def login_page(request: Request, *, status: int = 200, problem: str = "", next_path: str = "",
                     email: str = "") -> Response:
    return await web.page(request, "office_login.html", status=status, problem=problem, next=next_path, email=email,
                          oidc=office_oidc(request) is not None)


async def _signed_in(request: Request, who: staff.Staff, next_path: str) -> Response:
    await web.end(request)
    sid = await web.start(request, who)
    return Redirect(web.safe_next(next_path), status_code=303,
                    cookies=[web.office_cookie(request, web.SESSION_COOKIE, sid)])


class OfficeSignInController(Controller):
    path = "/office"
    include_in_schema = False

    @get("/login")
    async def form(self, request: Request, next_path: Next = None) -> Response:
        return await login_page(request, next_path=web.safe_next(next_path))

    @post("/login")
    async def sign_in(self, request: Request) -> Response:
        data: SignInForm = await web.form_of(request, SignInForm)
        try:
            who = await staff.sign_in(request.app.state.valkey, data.email, data.password, data.code,
                                      web.origin(request), web.utc_now())
        except (staff.SignInFailed, staff.SignInLocked) as refused:
            return await login_page(request, status=refused.status, problem=refused.detail,
                                    next_path=web.safe_next(data.next), email=data.email)
        return await _signed_in(request, who, data.next)

    @post("/logout", guards=[web.roles()])
    async def sign_out(self, request: Request) -> Response:
        who = web.staff_of(request)
        await audit.record(who.actor, "staff.signed_out", who.actor, {}, {}, "", web.utc_now(), web.origin(request))
        await web.end(request)
        return Redirect(web.PATH + "/login", status_code=303,
                        cookies=[web.office_cookie(request, web.SESSION_COOKIE, "", max_age=0)])

    @get("/lang/{lang:str}")
    async def language(self, request: Request, lang: str, next_path: Next = None) -> Response:
        """The same language cookie as the shopper's website (path /)."""
        from personal_account.session import LANG_COOKIE, cookie

        chosen = lang if lang in ("ru", "en") else "ru"
        return Redirect(web.safe_next(next_path), status_code=303,
                        cookies=[cookie(request, LANG_COOKIE, chosen, max_age=365 * 86400)])

    @get("/login/oidc")
    async def oidc_start(self, request: Request, next_path: Next = None) -> Response:
        oidc = office_oidc(request)
        if oidc is None:
            return await login_page(request, status=404, problem="Sign-in with a provider is not configured")
        try:
            metadata = await provider_metadata(oidc)
        except (OidcUnavailable, OidcFailed):
            return await login_page(request, status=502, problem="The sign-in service is not answering")
        flow = OidcFlow(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                        verifier=secrets.token_urlsafe(48), next=web.safe_next(next_path))
        async with oauth_client(oidc) as client:
            url, _ = client.create_authorization_url(metadata["authorization_endpoint"], state=flow.state,
                                                     nonce=flow.nonce, code_verifier=flow.verifier)
        flow_id = secrets.token_urlsafe(32)
        await request.app.state.valkey.set(_FLOW_KEY + hashlib.sha256(flow_id.encode()).hexdigest(),
                                           msgspec.json.encode(flow), ex=STATE_TTL)
        # Lax, not Strict: the provider's redirect back is a cross-site navigation that must carry it
        flow_cookie = web.office_cookie(request, FLOW_COOKIE, flow_id, max_age=STATE_TTL)
        flow_cookie.samesite = "lax"
        return Redirect(url, status_code=303, cookies=[flow_cookie])

    @get("/login/oidc/callback")
    async def oidc_callback(self, request: Request, code: Annotated[str | None, QueryParameter(max_length=2000)] = None,
                            login_state: Annotated[str | None, QueryParameter(name="state", max_length=200)] = None
                            ) -> Response:
        oidc = office_oidc(request)
        flow_id = request.cookies.get(FLOW_COOKIE)
        raw = (await request.app.state.valkey.getdel(_FLOW_KEY + hashlib.sha256(flow_id.encode()).hexdigest())
               if flow_id and len(flow_id) <= 100 else None)
        flow = msgspec.json.decode(raw, type=OidcFlow) if raw is not None else None
        state = login_state
        if oidc is None or flow is None or not state or not code or not hmac.compare_digest(state.encode(),
                                                                                          flow.state.encode()):
            return await login_page(request, status=400, problem="This sign-in has expired. Please try again.")
        try:
            metadata = await provider_metadata(oidc)
            token = await exchange_code(oidc, metadata, code, flow.verifier)
            claims = await verified_claims(oidc, metadata, token["id_token"], flow.nonce)
            if not claims.get("email") or claims.get("email_verified") is False:
                raise staff.SignInFailed("The provider did not confirm your e-mail")
            roles = roles_claim(claims, request.app.state.settings.office.roles_claim)
            who = await staff.sign_in_oidc(str(claims["email"]), str(claims.get("name", "")), roles,
                                           web.origin(request), web.utc_now())
        except (OidcUnavailable, OidcFailed):
            return await login_page(request, status=401, problem="We could not sign you in with the provider")
        except DomainError as refused:
            return await login_page(request, status=refused.status, problem=refused.detail)
        response = await _signed_in(request, who, flow.next)
        response.set_cookie(web.office_cookie(request, FLOW_COOKIE, "", max_age=0))
        return response
