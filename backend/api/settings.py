"""Identity settings: dev mode, the code gateway, OTP limits and the optional OIDC provider, from the environment.

Kept next to the shopper API (the shared backend/settings.py knows nothing of identity); one cached getter.
"""

from __future__ import annotations

import functools
import os

import msgspec

from loyalty_core.shopper_auth.otp import OtpPolicy


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True):
    issuer: str  # discovery at <issuer>/.well-known/openid-configuration
    client_id: str
    client_secret: str
    redirect_uri: str  # must be registered with the provider; points at /api/v1/auth/oidc/callback
    scope: str = "openid email phone profile"


class IdentitySettings(msgspec.Struct, frozen=True, kw_only=True):
    # the development code gateway (codes in the server log and a Valkey list): an explicit choice,
    # KOPILKA_DEV_MODE=1 or `kopilka serve --dev`, for a local demo and the tests; off by default
    dev_mode: bool
    otp_gateway: str | None  # "dev" in dev mode, else "package.module:factory" (factory(valkey) -> Gateway); None: none

    otp: OtpPolicy
    oidc: OidcSettings | None


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def load_identity_settings() -> IdentitySettings:
    gateway = os.environ.get("KOPILKA_OTP_GATEWAY", "").strip() or None
    # KOPILKA_OTP_GATEWAY=dev is development mode too: `serve` holds both to loopback
    dev_mode = os.environ.get("KOPILKA_DEV_MODE", "0").strip().lower() in {"1", "true", "yes", "on"} or gateway == "dev"
    issuer = os.environ.get("KOPILKA_OIDC_ISSUER")
    oidc = None
    if issuer:
        from backend.settings import default_public_url

        # the same default as the app's (backend/settings.py): `serve --port 8080` must not send the provider to :8000
        public_url = (os.environ.get("KOPILKA_PUBLIC_URL") or default_public_url(
            os.environ.get("KOPILKA_HOST", "127.0.0.1"), int(os.environ.get("KOPILKA_PORT", "8000")))).rstrip("/")
        oidc = OidcSettings(
            issuer=issuer.rstrip("/"),
            client_id=os.environ.get("KOPILKA_OIDC_CLIENT_ID", ""),
            client_secret=os.environ.get("KOPILKA_OIDC_CLIENT_SECRET", ""),
            redirect_uri=os.environ.get("KOPILKA_OIDC_REDIRECT_URI", public_url + "/api/v1/auth/oidc/callback"),
            scope=os.environ.get("KOPILKA_OIDC_SCOPE", "openid email phone profile"),
        )
    defaults = OtpPolicy()
    return IdentitySettings(
        dev_mode=dev_mode,
        otp_gateway="dev" if dev_mode else gateway,
        otp=OtpPolicy(
            code_ttl=_int("KOPILKA_OTP_TTL", defaults.code_ttl),
            max_wrong_attempts=_int("KOPILKA_OTP_MAX_WRONG", defaults.max_wrong_attempts),
            window=_int("KOPILKA_OTP_WINDOW", defaults.window),
            sends_per_identifier=_int("KOPILKA_OTP_SENDS_PER_ID", defaults.sends_per_identifier),
            sends_per_ip=_int("KOPILKA_OTP_SENDS_PER_IP", defaults.sends_per_ip),
            attempts_per_identifier=_int("KOPILKA_OTP_ATTEMPTS_PER_ID", defaults.attempts_per_identifier),
            attempts_per_ip=_int("KOPILKA_OTP_ATTEMPTS_PER_IP", defaults.attempts_per_ip),
        ),
        oidc=oidc,
    )


@functools.cache
def get_identity_settings() -> IdentitySettings:
    return load_identity_settings()
