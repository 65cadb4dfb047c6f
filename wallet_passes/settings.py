"""Wallet settings, read from the environment (wired into backend.settings by the app).

Without KOPILKA_PASS_CERT the app signs with a generated test chain under
<data_dir>/wallet-test-chain, which Wallet on a real iPhone will not accept
but `openssl cms -verify` and the tests do. See docs/wallet.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.x509.oid import NameOID

from wallet_passes.assets import ASSETS_DIR
from wallet_passes.certs import PassCertPaths, ensure_test_pass_chain
from wallet_passes.google import GOOGLE_WALLET_API
from wallet_passes.google_auth import GOOGLE_TOKEN_URI

DEV_PASS_TYPE_ID = "pass.dev.kopilka.card"
DEV_TEAM_ID = "KOPILKATST"

log = logging.getLogger("kopilka.wallet")


class WalletConfigError(RuntimeError):
    """The wallet settings would put passes on real phones that cannot work (or are unsafe): refuse to start."""


def apple_issued(cert_path: Path) -> bool:
    """Is this Pass Type ID certificate issued by Apple's WWDR CA (a real one), not a test chain?"""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = [str(a.value) for a in cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in cert.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return "Apple Inc." in orgs or any(n.startswith("Apple Worldwide Developer Relations") for n in names)


def web_service_url(env: Mapping[str, str], public_url: str) -> str:
    return env.get("KOPILKA_PASS_WEB_SERVICE_URL", public_url.rstrip("/") + "/passkit")


def check_pass_settings(env: Mapping[str, str], public_url: str) -> None:
    """At start: a pass whose webServiceURL is plain http is refused with Apple's certificate, warned about otherwise.

    Wallet on an iPhone ignores non-HTTPS web services (the pass never updates), and the pass's
    authentication token would travel in clear text. The generated test chain is for development,
    where http://localhost is normal, hence only a warning there.
    """
    url = web_service_url(env, public_url)
    if not url.lower().startswith("http://"):
        return
    cert = env.get("KOPILKA_PASS_CERT")
    try:
        real = bool(cert) and apple_issued(Path(cert or ""))
    except (OSError, ValueError) as exc:  # a missing or garbled file: say which, not a traceback from deep inside
        raise WalletConfigError(f"KOPILKA_PASS_CERT {cert} is not a readable PEM certificate: {exc}") from None
    if real:
        raise WalletConfigError(
            f"the pass web service URL {url} is not HTTPS: Apple Wallet will not update passes signed with the "
            "Apple certificate KOPILKA_PASS_CERT and the pass token would travel in clear text; set "
            "KOPILKA_PASS_WEB_SERVICE_URL (or the public URL) to https://...")
    log.warning("wallet: the pass web service URL %s is not HTTPS; fine for development, but Wallet on a real "
                "iPhone will not update such passes (set KOPILKA_PASS_WEB_SERVICE_URL to https://...)", url)


class AppleWalletSettings(msgspec.Struct, frozen=True, kw_only=True):
    pass_type_id: str
    team_id: str
    signing: PassCertPaths
    web_service_url: str  # the PassKit web service base, e.g. https://loyalty.example/passkit
    assets_dir: Path
    apns_base_url: str  # pass update pushes (certificate auth)
    apns_verify: str | bool = True


class GoogleWalletSettings(msgspec.Struct, frozen=True, kw_only=True):
    issuer_id: str
    class_id: str
    service_account_path: Path
    api_base_url: str = GOOGLE_WALLET_API
    token_url: str = GOOGLE_TOKEN_URI
    verify: str | bool = True


class WalletSettings(msgspec.Struct, frozen=True, kw_only=True):
    apple: AppleWalletSettings
    google: GoogleWalletSettings | None  # None: no Google issuer configured, no save links


def _verify(raw: str | None) -> str | bool:
    return True if not raw else raw  # a path to a CA bundle (tests, corporate proxies)


def load_wallet_settings(env: Mapping[str, str], data_dir: Path, public_url: str) -> WalletSettings:
    """The settings; raises WalletConfigError for a real certificate with a plain-http web service."""
    check_pass_settings(env, public_url)
    pass_type_id = env.get("KOPILKA_PASS_TYPE_ID", DEV_PASS_TYPE_ID)
    team_id = env.get("KOPILKA_PASS_TEAM_ID", DEV_TEAM_ID)
    if cert := env.get("KOPILKA_PASS_CERT"):
        signing = PassCertPaths(cert_path=Path(cert), key_path=Path(env["KOPILKA_PASS_KEY"]),
                                wwdr_path=Path(env["KOPILKA_PASS_WWDR_CERT"]),
                                key_password=env.get("KOPILKA_PASS_KEY_PASSWORD") or None)
    else:
        signing = ensure_test_pass_chain(data_dir / "wallet-test-chain", pass_type_id, team_id)
    apple = AppleWalletSettings(
        pass_type_id=pass_type_id, team_id=team_id, signing=signing,
        web_service_url=web_service_url(env, public_url),
        assets_dir=Path(env.get("KOPILKA_PASS_ASSETS_DIR", str(ASSETS_DIR))),
        apns_base_url=env.get("KOPILKA_APNS_URL", "https://api.push.apple.com"),
        apns_verify=_verify(env.get("KOPILKA_APNS_CA_BUNDLE")),
    )
    google = None
    if issuer := env.get("KOPILKA_GOOGLE_WALLET_ISSUER_ID"):
        google = GoogleWalletSettings(
            issuer_id=issuer,
            class_id=env.get("KOPILKA_GOOGLE_WALLET_CLASS_ID", "kopilka_loyalty"),
            service_account_path=Path(env["KOPILKA_GOOGLE_WALLET_SERVICE_ACCOUNT"]),
            api_base_url=env.get("KOPILKA_GOOGLE_WALLET_API_URL", GOOGLE_WALLET_API),
            token_url=env.get("KOPILKA_GOOGLE_TOKEN_URL", GOOGLE_TOKEN_URI),
            verify=_verify(env.get("KOPILKA_GOOGLE_CA_BUNDLE")),
        )
    return WalletSettings(apple=apple, google=google)
