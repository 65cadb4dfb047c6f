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
