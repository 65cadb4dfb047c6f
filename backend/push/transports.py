"""Push transports: APNs (token and certificate auth) and FCM HTTP v1, over httpx.

A transport sends one message to one device token and returns what happened
as data (Delivered / Retry / DeadToken / Failed); it never raises for a
provider's answer, so the outbox worker decides on retries and dead tokens in
one place. Wire formats and the mapping of provider answers are pure
functions, tested without a network.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wallet_passes.google_auth import FCM_SCOPE, AccessTokenSource, ServiceAccount, TokenGrantFailed
from wallet_passes.tls import client_ssl_context

APNS_PRODUCTION = "https://api.push.apple.com"
APNS_SANDBOX = "https://api.sandbox.push.apple.com"
FCM_API = "https://fcm.googleapis.com"
# Apple refuses provider tokens older than an hour and throttles ones renewed
# more often than every 20 minutes; 50 minutes sits safely between.
PROVIDER_TOKEN_MAX_AGE = 50 * 60
# How long APNs and FCM keep a notification for a phone that is offline (apns-expiration /
# android.ttl, the same on both). 0 would mean "try once, keep nothing": a phone without
# signal at the till would never hear about the sale.
ALERT_TTL_SECONDS = 3 * 24 * 3600  # app alerts: a balance note older than 3 days is noise
PASS_UPDATE_TTL_SECONDS = 24 * 3600  # pass pushes: by then the pass refreshes on its own when opened


class PushMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A notification for the shopper's phone, provider-neutral."""

    title: str
    body: str
    data: dict[str, str] = {}  # deep-link info for the app, e.g. {"kind": "points_accrued"}
    badge: int | None = None
    # The notification's identity on the phone: a resend with the same key replaces the shown one
    # (apns-collapse-id on iOS, android.notification.tag on Android) instead of showing it twice.
    collapse_key: str | None = None
    expires_at: int | None = None  # unix seconds; providers drop it after this (None: now + ALERT_TTL_SECONDS)


class Delivered(msgspec.Struct, frozen=True, tag=True):
    provider_id: str | None = None  # apns-id or FCM message name, for support questions


class Retry(msgspec.Struct, frozen=True, tag=True):
    reason: str
    after: float | None = None  # seconds the provider asked us to wait, if it said


class DeadToken(msgspec.Struct, frozen=True, tag=True):
    """The device token will never work again: delete it."""

    reason: str


class Failed(msgspec.Struct, frozen=True, tag=True):
    """Our request is wrong (payload, credentials): retrying the same thing will not help."""

    reason: str
    status: int | None = None


class Misconfigured(msgspec.Struct, frozen=True, tag=True):
    """Our configuration is wrong (the APNs topic), not the device: keep the token, alert the operator.

    A wrong KOPILKA_APNS_TOPIC makes every live iPhone answer DeviceTokenNotForTopic;
    treating that as a dead token would deregister them all.
    """

    reason: str
    status: int | None = None


PushResult = Delivered | Retry | DeadToken | Failed | Misconfigured


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


# --- APNs ---------------------------------------------------------------------

_APNS_DEAD = {"BadDeviceToken", "Unregistered", "ExpiredToken"}
# The topic (bundle id / pass type id) or certificate does not fit: one setting is wrong for every device.
_APNS_CONFIG = {"DeviceTokenNotForTopic", "TopicDisallowed", "BadTopic", "MissingTopic", "BadCertificate",
                "BadCertificateEnvironment"}
_APNS_RETRY = {"TooManyRequests", "InternalServerError", "ServiceUnavailable", "Shutdown",
               "IdleTimeout", "TooManyProviderTokenUpdates"}


def apns_payload(message: PushMessage) -> dict[str, Any]:
    aps: dict[str, Any] = {"alert": {"title": message.title, "body": message.body}, "sound": "default"}
    if message.badge is not None:
        aps["badge"] = message.badge
    return {"aps": aps, **message.data}


def classify_apns(status: int, reason: str, retry_after: float | None = None) -> PushResult:
    """What an APNs answer means for the outbox (pure)."""
    if status == 200:
        return Delivered()
    if reason in _APNS_CONFIG:
        return Misconfigured(reason, status)
    if status == 410 or reason in _APNS_DEAD:
        return DeadToken(reason or "Unregistered")
    if status in (429, 500, 503) or reason in _APNS_RETRY:
        return Retry(reason or f"HTTP {status}", retry_after)
    return Failed(reason or f"HTTP {status}", status)


def provider_token(team_id: str, key_id: str, private_key: str | bytes | ec.EllipticCurvePrivateKey,
                   issued_at: int) -> str:
    """An APNs provider authentication token: ES256 JWT, iss = team, kid = key id (pure)."""
    return jwt.encode({"iss": team_id, "iat": issued_at}, private_key, algorithm="ES256",
                      headers={"kid": key_id})


class ProviderTokenCache:
    """One provider token reused for all requests until it is ~50 minutes old or APNs rejects it."""

    def __init__(self, team_id: str, key_id: str, private_key_pem: str | bytes,
                 clock: Callable[[], float] = time.time, max_age: int = PROVIDER_TOKEN_MAX_AGE) -> None:
        # Parse the .p8 now so a broken key fails at startup, not on the first push.
        key = serialization.load_pem_private_key(
            private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("APNs provider key must be an EC (P-256) .p8 key")
        self._team_id, self._key_id, self._key = team_id, key_id, key
        self._clock, self._max_age = clock, max_age
        self._token: str | None = None
        self._issued_at = 0

    def current(self) -> str:
        now = int(self._clock())
        if self._token is None or now - self._issued_at >= self._max_age:
            self._token = provider_token(self._team_id, self._key_id, self._key, now)
            self._issued_at = now
        return self._token

    def expire(self) -> None:
        self._token = None


class _ApnsBase:
    def __init__(self, base_url: str, *, verify: str | Path | bool, cert_path: str | Path | None = None,
                 key_path: str | Path | None = None, key_password: str | None = None, timeout: float) -> None:
        context = client_ssl_context(verify, cert_path=cert_path, key_path=key_path, key_password=key_password)
        # APNs speaks only HTTP/2; one connection carries many concurrent streams.
        self._client = httpx.AsyncClient(base_url=base_url, http2=True, verify=context, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, device_token: str, body: bytes, headers: dict[str, str]) -> tuple[PushResult, str]:
        """Send once; returns the result and APNs' reason string (empty on success)."""
        headers = {"apns-id": str(uuid.uuid4()), **headers}
        try:
            response = await self._client.post(f"/3/device/{device_token}", content=body, headers=headers)
        except httpx.TransportError as exc:  # connection reset, timeout: the message may be resent
            return Retry(f"transport error: {exc!r}"), ""
        reason = ""
        if response.status_code != 200 and response.content:
            try:
                reason = str(msgspec.json.decode(response.content).get("reason", ""))
            except msgspec.DecodeError:
                reason = ""
        result = classify_apns(response.status_code, reason, _retry_after(response.headers))
        if isinstance(result, Delivered):
            result = Delivered(response.headers.get("apns-id", headers["apns-id"]))
        return result, reason


class ApnsTokenTransport(_ApnsBase):
    """App notifications with token-based auth (an ES256 .p8 key from the Apple developer account)."""

    def __init__(self, base_url: str, team_id: str, key_id: str, private_key_pem: str | bytes, topic: str, *,
                 verify: str | Path | bool = True, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(base_url, verify=verify, timeout=timeout)
        self.topic = topic
        self._clock = clock
        self._tokens = ProviderTokenCache(team_id, key_id, private_key_pem, clock)

    def _headers(self, message: PushMessage) -> dict[str, str]:
        headers = {
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            # never 0 ("deliver now or never"): APNs keeps it for a phone that is offline right now
            "apns-expiration": str(message.expires_at or int(self._clock()) + ALERT_TTL_SECONDS),
        }
        if message.collapse_key:
            headers["apns-collapse-id"] = message.collapse_key[:64]
        return headers

    async def send(self, device_token: str, message: PushMessage) -> PushResult:
        body = msgspec.json.encode(apns_payload(message))
        headers = self._headers(message)
        for attempt in range(2):
            auth = {"authorization": f"bearer {self._tokens.current()}"}
            result, reason = await self._post(device_token, body, {**headers, **auth})
            if reason == "ExpiredProviderToken" and attempt == 0:
                self._tokens.expire()  # our clock or cache disagreed with Apple's: sign a fresh one
                continue
            return result
        return result


class ApnsCertTransport(_ApnsBase):
    """Wallet pass update pushes: TLS client certificate = the Pass Type ID certificate.

    The payload is always `{}`; the device then asks our PassKit web service
    which passes changed.
    """

    def __init__(self, base_url: str, cert_pem_path: str | Path, key_pem_path: str | Path, pass_type_topic: str,
                 *, key_password: str | None = None, verify: str | Path | bool = True, timeout: float = 10.0,
                 push_type: str = "background", priority: int = 5, ttl: int = PASS_UPDATE_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        # key_password: the Pass Type ID key may be encrypted (KOPILKA_PASS_KEY_PASSWORD), as for signing
        super().__init__(base_url, verify=verify, cert_path=cert_pem_path, key_path=key_pem_path,
                         key_password=key_password, timeout=timeout)
        self.topic = pass_type_topic
        self._ttl, self._clock = ttl, clock
        # Background pushes must use priority 5; both are settings in case Apple's advice changes.
        self._push_headers = {"apns-topic": pass_type_topic, "apns-push-type": push_type,
                              "apns-priority": str(priority)}

    async def send_pass_update(self, push_token: str) -> PushResult:
        # APNs keeps the (single, empty) pass push for an offline phone until then; a newer one replaces it
        expiration = {"apns-expiration": str(int(self._clock()) + self._ttl)}
        result, _ = await self._post(push_token, b"{}", {**self._push_headers, **expiration})
        return result


# --- FCM ----------------------------------------------------------------------

_FCM_DEAD = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
_FCM_TOKEN_FIELD = "message.token"
_FCM_RETRY = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}


def fcm_request(device_token: str, message: PushMessage, now: int) -> dict[str, Any]:
    """The FCM HTTP v1 messages:send body (pure). `now` turns expires_at into a TTL."""
    # The same TTL as apns-expiration, so both phones keep an undelivered alert equally long.
    ttl = ALERT_TTL_SECONDS if message.expires_at is None else max(0, message.expires_at - now)
    android: dict[str, Any] = {"priority": "high", "ttl": f"{ttl}s"}
    notification: dict[str, Any] = {}
    if message.collapse_key:
        # android.collapse_key only merges messages still waiting on FCM's servers (and at most 4 keys per
        # device); the notification tag is what replaces one already shown, e.g. after a resend.
        notification["tag"] = message.collapse_key
        android["notification"] = notification
    body: dict[str, Any] = {
        "token": device_token,
        "notification": {"title": message.title, "body": message.body},
        "android": android,
    }
    if message.data:
        body["data"] = dict(message.data)  # FCM data values must be strings: the Struct type enforces it
    return {"message": body}


def fcm_error_code(payload: Any) -> str:
    """The FcmError errorCode from a v1 error body, else the google.rpc status."""
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    for detail in error.get("details", []) or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status", ""))


def fcm_token_invalid(payload: Any) -> bool:
    """True when an INVALID_ARGUMENT error is about the registration token itself, not our payload."""
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    for detail in error.get("details", []) or []:
        for violation in (detail.get("fieldViolations") or []) if isinstance(detail, dict) else []:
            if isinstance(violation, dict) and violation.get("field") == _FCM_TOKEN_FIELD:
                return True
    return "registration token" in str(error.get("message", "")).lower()


def classify_fcm(status: int, code: str, retry_after: float | None = None, *, token_invalid: bool = False
                 ) -> PushResult:
    if status == 200:
        return Delivered()
    if code in _FCM_DEAD or (status == 404 and code in ("", "NOT_FOUND")):
        return DeadToken(code or "UNREGISTERED")
    if code == "INVALID_ARGUMENT" and token_invalid:
        return DeadToken("INVALID_ARGUMENT: not a valid registration token")
    if status == 429 or status >= 500 or code in _FCM_RETRY:
        return Retry(code or f"HTTP {status}", retry_after)
    return Failed(code or f"HTTP {status}", status)


class FcmTransport:
    """Android (and iOS via Firebase) notifications through FCM HTTP v1."""

    def __init__(self, base_url: str, token_url: str, service_account: ServiceAccount, *,
                 project_id: str | None = None, verify: str | Path | bool = True, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.project_id = project_id or service_account.project_id
        if not self.project_id:
            raise ValueError("FCM needs a project id (in the service account file or given)")
        self._clock = clock
        self._client = httpx.AsyncClient(base_url=base_url, verify=client_ssl_context(verify), timeout=timeout)
        self._tokens = AccessTokenSource(service_account, [FCM_SCOPE], self._client,
                                         token_url=token_url, clock=clock)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> FcmTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, device_token: str, message: PushMessage) -> PushResult:
        body = msgspec.json.encode(fcm_request(device_token, message, int(self._clock())))
        path = f"/v1/projects/{self.project_id}/messages:send"
        for attempt in range(2):
            try:
                access_token = await self._tokens.token()
                response = await self._client.post(path, content=body, headers={
                    "authorization": f"Bearer {access_token}", "content-type": "application/json"})
            except TokenGrantFailed as exc:
                return Retry(str(exc)) if exc.retryable else Failed(str(exc), exc.status)
            except httpx.TransportError as exc:
                return Retry(f"transport error: {exc!r}")
            if response.status_code == 401 and attempt == 0:
                self._tokens.invalidate()  # token revoked or expired early: one fresh grant
                continue
            break
        if response.status_code == 200:
            return Delivered(msgspec.json.decode(response.content).get("name"))
        try:
            payload = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            payload = {}
        return classify_fcm(response.status_code, fcm_error_code(payload), _retry_after(response.headers),
                            token_invalid=fcm_token_invalid(payload))
