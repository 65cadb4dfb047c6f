"""Optional OpenID Connect login (authorization code + PKCE) with one configured provider.

The flow's nonce and PKCE verifier wait in Valkey under the state, bound to the client that started it: /login
sets a random HttpOnly cookie and the callback must bring it back (like the website's flow), so a code and
state taken from another person's redirect cannot be exchanged by whoever holds them.

Only contacts the provider marks verified are trusted: linking an unverified e-mail to an existing
customer would hand their points to whoever typed the address at the provider.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Annotated, Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from litestar import Controller, Request, get
from litestar.datastructures import Cookie
from litestar.params import QueryParameter
from litestar.response import Redirect

from backend.api.guards import (
    PUBLIC_DEPENDENCIES,
    Identity,
    Now,
    ProgramCode,
    Secret,
    Valkey,
)
from backend.settings import OidcSettings
from loyalty_core.errors import DomainError, NotFound
from loyalty_core.shopper_auth import tokens
from loyalty_core.members.identity import resolve_program
from loyalty_core.shopper_auth.otp import normalise_email, normalise_phone

STATE_TTL = 600
_discovery: dict[str, tuple[float, dict[str, Any]]] = {}


class OidcFailed(DomainError):
    slug, status, title = "oidc-failed", 401, "Login with the identity provider failed"


class OidcNoVerifiedContact(OidcFailed):
    """The provider vouched for neither an e-mail nor a phone: points never go to an unverified address."""


class OidcUnavailable(DomainError):
    slug, status, title = "oidc-unavailable", 502, "The identity provider cannot be reached"


async def _fetch_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcUnavailable(f"{url}: {exc.__class__.__name__}") from None


def _settings(identity: Identity) -> OidcSettings:
    if identity.oidc is None:
        raise NotFound("OpenID Connect login is not configured")
    return identity.oidc


async def provider_metadata(oidc: OidcSettings) -> dict[str, Any]:
    """Discovery document, cached for an hour."""
    cached = _discovery.get(oidc.issuer)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    metadata = await _fetch_json(oidc.issuer + "/.well-known/openid-configuration")
    if metadata.get("issuer", "").rstrip("/") != oidc.issuer:
        raise OidcFailed("the provider's discovery document names another issuer")
    _discovery[oidc.issuer] = (time.monotonic() + 3600, metadata)
    return metadata


def oauth_client(oidc: OidcSettings) -> Any:
    # imported on use: deployments without OIDC never load authlib's HTTP client
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(client_id=oidc.client_id, client_secret=oidc.client_secret, scope=oidc.scope,
                             redirect_uri=oidc.redirect_uri, code_challenge_method="S256", timeout=10)


async def verified_claims(oidc: OidcSettings, metadata: dict[str, Any], id_token: str, nonce: str) -> dict[str, Any]:
    jwks = await _fetch_json(metadata["jwks_uri"])
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": oidc.issuer},
            aud={"essential": True, "value": oidc.client_id},
            nonce={"essential": True, "value": nonce},
            sub={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise OidcFailed(f"the identity token is not valid: {exc}") from None
    return token.claims


async def exchange_code(oidc: OidcSettings, metadata: dict[str, Any], code: str, verifier: str) -> dict[str, Any]:
    """The authorization code (with its PKCE verifier) for tokens; an id_token must come back."""
    async with oauth_client(oidc) as client:
        try:
            token = await client.fetch_token(metadata["token_endpoint"], code=code, code_verifier=verifier)
        except httpx.TransportError as exc:
            raise OidcUnavailable(f"token endpoint: {exc.__class__.__name__}") from None
        except Exception as exc:  # authlib raises several types for a refused code
            raise OidcFailed(f"the provider refused the code: {exc}") from None
    if "id_token" not in token:
        raise OidcFailed("the provider returned no id_token")
    return token  # type: ignore[no-any-return]


def verified_contact(claims: dict[str, Any]) -> tuple[str | None, str | None]:
    """(e-mail, phone) the provider marks verified; neither -> OidcNoVerifiedContact."""
    email = normalise_email(claims["email"]) if claims.get("email") and claims.get("email_verified") is True else None
    phone = (normalise_phone(claims["phone_number"])
             if claims.get("phone_number") and claims.get("phone_number_verified") is True else None)
    if email is None and phone is None:
        raise OidcNoVerifiedContact("the provider vouched for no e-mail or phone: log in with a code instead")
    return email, phone


FLOW_COOKIE = "kp_api_oidc"


def _flow_key(state: str) -> str:
    return "kopilka:oidc:" + hashlib.sha256(state.encode()).hexdigest()


def _digest(binding: str) -> str:
    return hashlib.sha256(b"kopilka/oidc-client/v1:" + binding.encode()).hexdigest()


def _flow_cookie(request: Request, value: str, max_age: int) -> Cookie:
    """HttpOnly, SameSite=Lax (the provider's redirect back is a top-level GET, so it carries the cookie)."""
    secure = request.app.state.settings.server.public_url.startswith("https://")
    return Cookie(key=FLOW_COOKIE, value=value, max_age=max_age, path="/api/v1/auth/oidc", httponly=True,
                  samesite="lax", secure=secure)


class OidcController(Controller):
    path = "/auth/oidc"
    tags = ["shopper auth"]
    dependencies = PUBLIC_DEPENDENCIES

    @get("/login", status_code=302)
    async def login(self, request: Request, valkey: Valkey, identity: Identity, program: ProgramCode = None) -> Redirect:
        """Redirect to the provider; it comes back to /callback in the same browser (a flow cookie binds the two)."""
        oidc = _settings(identity)
        metadata = await provider_metadata(oidc)
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        binding = secrets.token_urlsafe(32)
        async with oauth_client(oidc) as client:
            url, _ = client.create_authorization_url(metadata["authorization_endpoint"], state=state, nonce=nonce,
                                                     code_verifier=verifier)
        flow = {"nonce": nonce, "verifier": verifier, "program": program, "client": _digest(binding)}
        await valkey.set(_flow_key(state), json.dumps(flow), ex=STATE_TTL)
        return Redirect(url, cookies=[_flow_cookie(request, binding, STATE_TTL)])

    @get("/callback")
    async def callback(
        self, request: Request, valkey: Valkey, identity: Identity, secret: Secret, now: Now,
        code: Annotated[str, QueryParameter(name="code", min_length=1, max_length=2000)],
        login_state: Annotated[str, QueryParameter(name="state", min_length=1, max_length=200)],
    ) -> tokens.LoggedIn:
        """Exchange the code, check the id_token (signature, issuer, audience, nonce, expiry), log the shopper in."""
        oidc = _settings(identity)
        saved = await valkey.get(_flow_key(login_state))
        if saved is None:
            raise OidcFailed("unknown or expired login state: start again")
        flow = json.loads(saved)
        # the state must come back to the client that started the flow: a code and state copied out of someone
        # else's redirect (a log, a referrer, a shared link) is refused, and their flow stays usable for them
        binding = request.cookies.get(FLOW_COOKIE, "")
        if not hmac.compare_digest(_digest(binding), flow["client"]):
            raise OidcFailed("this login was started by another client: start again")
        if not await valkey.delete(_flow_key(login_state)):  # single use: a replayed callback finds nothing
            raise OidcFailed("unknown or expired login state: start again")
        metadata = await provider_metadata(oidc)
        token = await exchange_code(oidc, metadata, code, flow["verifier"])
        claims = await verified_claims(oidc, metadata, token["id_token"], flow["nonce"])
        email, phone = verified_contact(claims)
        return await tokens.log_in_with_verified_contact(
            await resolve_program(flow["program"]), email=email, phone=phone, name=str(claims.get("name", ""))[:200],
            channel="oidc", secret=secret, now=now)
