"""Push settings, read from the environment. Each provider is off (None) until configured."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from backend.push.transports import APNS_PRODUCTION, FCM_API
from wallet_passes.google_auth import GOOGLE_TOKEN_URI


class ApnsSettings(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str  # api.push.apple.com, api.sandbox.push.apple.com, or a local fake
    team_id: str
    key_id: str
    key_path: Path  # the AuthKey_<key id>.p8 file
    topic: str  # the app's bundle id
    verify: str | bool = True


class FcmSettings(msgspec.Struct, frozen=True, kw_only=True):
    base_url: str
    token_url: str
    service_account_path: Path
    project_id: str | None = None  # default: the service account's project
    verify: str | bool = True


class PushSettings(msgspec.Struct, frozen=True, kw_only=True):
    apns: ApnsSettings | None
    fcm: FcmSettings | None


def load_push_settings(env: Mapping[str, str]) -> PushSettings:
    apns = None
    if key_path := env.get("KOPILKA_APNS_KEY_PATH"):
        apns = ApnsSettings(
            base_url=env.get("KOPILKA_APNS_URL", APNS_PRODUCTION), team_id=env["KOPILKA_APNS_TEAM_ID"],
            key_id=env["KOPILKA_APNS_KEY_ID"], key_path=Path(key_path), topic=env["KOPILKA_APNS_TOPIC"],
            verify=env.get("KOPILKA_APNS_CA_BUNDLE") or True,
        )
    fcm = None
    if account := env.get("KOPILKA_FCM_SERVICE_ACCOUNT"):
        fcm = FcmSettings(
            base_url=env.get("KOPILKA_FCM_URL", FCM_API), token_url=env.get("KOPILKA_FCM_TOKEN_URL", GOOGLE_TOKEN_URI),
            service_account_path=Path(account), project_id=env.get("KOPILKA_FCM_PROJECT_ID") or None,
            verify=env.get("KOPILKA_FCM_CA_BUNDLE") or True,
        )
    return PushSettings(apns=apns, fcm=fcm)


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the outbox worker paces itself (KOPILKA_PUSH_* variables, see docs/push.md)."""

    batch_size: int = 100  # messages claimed per transaction
    concurrency: int = 32  # messages in flight at once
    lease_seconds: float = 120.0  # a claimed message another worker may take over after this (its worker died)
    poll_seconds: float = 0.2  # idle wait between claims
    max_attempts: int = 8
    backoff_base_seconds: float = 30.0  # 30 s, 1 min, 2 min, ... with jitter
    backoff_cap_seconds: float = 6 * 3600.0
    quiet_start_hour: int = 22  # app pushes wait from here (program's local time) ...
    quiet_end_hour: int = 9  # ... until here; pass updates are silent and never wait
    pass_pushes: bool = False  # send wallet pass pushes (on when KOPILKA_PASS_CERT is set, or forced)


def load_worker_settings(env: Mapping[str, str]) -> WorkerSettings:
    quiet = env.get("KOPILKA_PUSH_QUIET_HOURS", "22-9")
    start, _, end = quiet.partition("-")
    forced = env.get("KOPILKA_PASS_PUSH", "").strip().lower()
    return WorkerSettings(
        batch_size=int(env.get("KOPILKA_PUSH_BATCH", "100")),
        concurrency=int(env.get("KOPILKA_PUSH_CONCURRENCY", "32")),
        lease_seconds=float(env.get("KOPILKA_PUSH_LEASE_SECONDS", "120")),
        poll_seconds=float(env.get("KOPILKA_PUSH_POLL_SECONDS", "0.2")),
        max_attempts=int(env.get("KOPILKA_PUSH_MAX_ATTEMPTS", "8")),
        backoff_base_seconds=float(env.get("KOPILKA_PUSH_BACKOFF_SECONDS", "30")),
        quiet_start_hour=int(start or 22),
        quiet_end_hour=int(end or 9),
        # the generated test chain is not trusted by Apple: pass pushes need a real certificate or an explicit yes
        pass_pushes=forced in {"1", "true", "yes", "on"} or (bool(env.get("KOPILKA_PASS_CERT")) and forced != "0"),
    )
