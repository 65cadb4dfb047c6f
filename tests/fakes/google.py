"""A local Google: the OAuth2 token endpoint, FCM HTTP v1 and the Wallet loyaltyObject API.

One plain-HTTP server plays all three hosts (oauth2.googleapis.com,
fcm.googleapis.com, walletobjects.googleapis.com). It owns a generated service
account, verifies every JWT-bearer grant against that account's public key,
hands out access tokens per scope, and accepts API calls only with a live
token of the right scope. "Save to Google Wallet" is simulated by
`save_from_jwt`, which checks the save JWT and creates the objects it carries.

FCM's side of the phone is modelled too: a token that is not token-shaped gets
INVALID_ARGUMENT about `message.token` (as FCM answers), a phone can be offline
(`fcm_go_offline`; FCM keeps a message until its `android.ttl`, default 4 weeks,
and of collapsible ones only the newest per `collapse_key`), and what the phone
shows (`fcm_shown`) follows Android: a notification with the `tag` of one on
screen replaces it, one without a tag is always a new notification.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import urllib.parse
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.http1 import Http1Server, HttpRequest, HttpResponse
from tests.fakes.script import Answer, Script
from wallet_passes.google_auth import FCM_SCOPE, JWT_BEARER_GRANT, WALLET_SCOPE, ServiceAccount

_FCM_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_WALLET_PATH = re.compile(r"^/walletobjects/v1/loyaltyObject/([^/]+)$")
_FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{8,4096}$")
_FCM_TTL = re.compile(r"^(\d{1,10})(\.\d{1,9})?s$")
FCM_DEFAULT_TTL = 28 * 24 * 3600
_FCM_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class TokenGrant(msgspec.Struct, kw_only=True):
    claims: dict[str, Any]
    access_token: str
    scopes: list[str]


class FcmSend(msgspec.Struct, kw_only=True):
    project_id: str
    message: dict[str, Any]
    status: int
    error_code: str = ""


class WalletPatch(msgspec.Struct, kw_only=True):
    object_id: str
    body: dict[str, Any]
    status: int


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status=status, body=json.dumps(payload).encode(),
                        headers={"content-type": "application/json", **(headers or {})})


def _google_error(status: int, message: str, error_code: str = "", field: str = "") -> HttpResponse:
    error: dict[str, Any] = {"code": status, "message": message, "status": _FCM_STATUS.get(status, "UNKNOWN")}
    if error_code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": error_code}]
    if field:
        error.setdefault("details", []).append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                                                "fieldViolations": [{"field": field, "description": message}]})
    return _json(status, {"error": error})


class FakeGoogle:
    def __init__(self, *, project_id: str = "kopilka-test", token_lifetime: int = 3600) -> None:
        self.project_id = project_id
        self._default_lifetime = token_lifetime
        self.token_lifetime = token_lifetime  # tests shorten it to exercise renewal
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"kopilka-push@{project_id}.iam.gserviceaccount.com"
        self.private_key_id = secrets.token_hex(20)
        self._http = Http1Server(self.handle)
        self.grants: list[TokenGrant] = []
        self.fcm_sends: list[FcmSend] = []
        self.wallet_patches: list[WalletPatch] = []
        self.wallet_objects: dict[str, dict[str, Any]] = {}
        self.unregistered_fcm: set[str] = set()
        self.fcm_offline: set[str] = set()
        self.fcm_stored: dict[str, list[tuple[float, dict[str, Any]]]] = {}  # token -> (expires, message)
        self.fcm_reached: dict[str, list[dict[str, Any]]] = {}  # token -> messages that reached the phone
        self._live_tokens: dict[str, tuple[float, list[str]]] = {}
        self._fcm_script = Script()
        self._wallet_script = Script()
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def service_account(self) -> ServiceAccount:
        return msgspec.json.decode(self.service_account_json(), type=ServiceAccount)

    def service_account_json(self) -> bytes:
        """A key file shaped like the one Google's console downloads."""
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        return json.dumps({
            "type": "service_account", "project_id": self.project_id, "private_key_id": self.private_key_id,
            "private_key": pem, "client_email": self.client_email, "client_id": "1000000000000000000",
            "token_uri": self.token_url,
        }).encode()

    # --- test controls ---------------------------------------------------------

    def fcm_respond_with(self, status: int, error_code: str = "", *, times: int = 1,
                         retry_after: int | None = None) -> None:
        self._fcm_script.push(Answer(status=status, reason=error_code, retry_after=retry_after), times)

    def wallet_respond_with(self, status: int, message: str = "", *, times: int = 1) -> None:
        self._wallet_script.push(Answer(status=status, reason=message), times)

    def unregister_fcm(self, device_token: str) -> None:
        self.unregistered_fcm.add(device_token)

    def fcm_go_offline(self, device_token: str) -> None:
        self.fcm_offline.add(device_token)

    def fcm_come_online(self, device_token: str, at: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if at is None else at
        self.fcm_offline.discard(device_token)
        handed = [m for expires, m in self.fcm_stored.pop(device_token, []) if expires >= now]
        self.fcm_reached.setdefault(device_token, []).extend(handed)
        return handed

    def fcm_shown(self, device_token: str) -> list[dict[str, Any]]:
        """The notifications on the phone's screen: a message with a shown one's tag replaces it."""
        shown: list[dict[str, Any]] = []
        for message in self.fcm_reached.get(device_token, []):
            tag = ((message.get("android") or {}).get("notification") or {}).get("tag")
            if tag is not None:
                shown = [m for m in shown if ((m.get("android") or {}).get("notification") or {}).get("tag") != tag]
            shown.append(message)
        return shown

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (clients must grant again)."""
        self._live_tokens.clear()

    def reset(self) -> None:
        self.token_lifetime = self._default_lifetime
        for bucket in (self.grants, self.fcm_sends, self.wallet_patches):
            bucket.clear()
        self.wallet_objects.clear()
        self.unregistered_fcm.clear()
        self.fcm_offline.clear()
        self.fcm_stored.clear()
        self.fcm_reached.clear()
        self._live_tokens.clear()
        self._fcm_script.clear()
        self._wallet_script.clear()

    def fcm_delivered(self) -> list[FcmSend]:
        return [s for s in self.fcm_sends if s.status == 200]

    async def wait_for_fcm(self, count: int, timeout: float = 5.0) -> list[FcmSend]:
        """Wait until at least `count` FCM messages were delivered (end-to-end tests with a worker)."""
        async def _wait() -> None:
            while len(self.fcm_delivered()) < count:
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.fcm_delivered()

    def save_from_jwt(self, token: str) -> list[str]:
        """What Google does when the shopper taps the save link: verify the JWT, store its objects."""
        claims = jwt.decode(token, self._key.public_key(), algorithms=["RS256"], audience="google",
                            issuer=self.client_email)
        if claims.get("typ") != "savetowallet":
            raise jwt.InvalidTokenError("typ must be savetowallet")
        saved = []
        for obj in claims["payload"].get("loyaltyObjects", []):
            self.wallet_objects[obj["id"]] = obj
            saved.append(obj["id"])
        return saved

    # --- routing ---------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        if request.method == "POST" and (m := _FCM_PATH.match(request.path)):
            return self._fcm_send(request, m.group(1))
        if request.method == "PATCH" and (m := _WALLET_PATH.match(request.path)):
            return self._wallet_patch(request, m.group(1))
        return _google_error(404, f"no route for {request.method} {request.path}")

    def _token(self, request: HttpRequest) -> HttpResponse:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _json(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(form.get("assertion", ""), self._key.public_key(), algorithms=["RS256"],
                                audience=self.token_url, issuer=self.client_email, leeway=30,
                                options={"require": ["iss", "aud", "iat", "exp", "scope"]})
        except jwt.PyJWTError as exc:
            return _json(400, {"error": "invalid_grant", "error_description": str(exc)})
        if claims["exp"] - claims["iat"] > 3600:
            return _json(400, {"error": "invalid_grant", "error_description": "exp more than 1 h after iat"})
        access_token = "ya29.fake-" + secrets.token_urlsafe(24)
        scopes = claims["scope"].split()
        self._live_tokens[access_token] = (time.time() + self.token_lifetime, scopes)
        self.grants.append(TokenGrant(claims=claims, access_token=access_token, scopes=scopes))
        return _json(200, {"access_token": access_token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _bearer_scopes(self, request: HttpRequest) -> list[str] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        live = self._live_tokens.get(token) if scheme.lower() == "bearer" else None
        if live is None or live[0] < time.time():
            return None
        return live[1]

    def _fcm_send(self, request: HttpRequest, project_id: str) -> HttpResponse:
        def record(response: HttpResponse, message: dict[str, Any], code: str = "") -> HttpResponse:
            self.fcm_sends.append(FcmSend(project_id=project_id, message=message, status=response.status,
                                          error_code=code))
            self._arrived.set()
            return response

        scopes = self._bearer_scopes(request)
        if scopes is None:
            return record(_google_error(401, "Request had invalid authentication credentials."), {})
        if FCM_SCOPE not in scopes or project_id != self.project_id:
            return record(_google_error(403, "Permission denied", "SENDER_ID_MISMATCH"), {}, "SENDER_ID_MISMATCH")
        try:
            message = json.loads(request.body)["message"]
            token = message["token"]
        except (ValueError, KeyError, TypeError):
            return record(_google_error(400, "Invalid JSON payload", "INVALID_ARGUMENT"), {}, "INVALID_ARGUMENT")
        if any(not isinstance(v, str) for v in message.get("data", {}).values()):
            return record(_google_error(400, "data values must be strings", "INVALID_ARGUMENT"), message,
                          "INVALID_ARGUMENT")
        android = message.get("android") or {}
        ttl = android.get("ttl")
        if ttl is not None and (not isinstance(ttl, str) or not _FCM_TTL.match(ttl)):
            return record(_google_error(400, f"Invalid value at 'message.android.ttl' ({ttl!r})", "INVALID_ARGUMENT",
                                        "message.android.ttl"), message, "INVALID_ARGUMENT")
        if not isinstance(token, str) or not _FCM_TOKEN.match(token):
            return record(_google_error(400, "The registration token is not a valid FCM registration token",
                                        "INVALID_ARGUMENT", "message.token"), message, "INVALID_ARGUMENT")
        if token in self.unregistered_fcm:
            return record(_google_error(404, "Requested entity was not found.", "UNREGISTERED"), message,
                          "UNREGISTERED")
        if (scripted := self._fcm_script.next()) is not None:
            headers = {"retry-after": str(scripted.retry_after)} if scripted.retry_after is not None else {}
            response = _google_error(scripted.status, "scripted", scripted.reason)
            response = HttpResponse(status=response.status, body=response.body,
                                    headers={**response.headers, **headers})
            return record(response, message, scripted.reason)
        name = f"projects/{project_id}/messages/{len(self.fcm_sends) + 1}"
        self._fcm_reach(token, message)
        return record(_json(200, {"name": name}), message)

    def _fcm_reach(self, token: str, message: dict[str, Any]) -> None:
        if token not in self.fcm_offline:
            self.fcm_reached.setdefault(token, []).append(message)
            return
        android = message.get("android") or {}
        ttl = float(android["ttl"][:-1]) if "ttl" in android else FCM_DEFAULT_TTL
        if ttl == 0:
            return  # "now or never", and the phone is offline
        kept = self.fcm_stored.setdefault(token, [])
        if key := android.get("collapse_key"):  # collapsible: only the newest per key waits
            kept[:] = [k for k in kept if (k[1].get("android") or {}).get("collapse_key") != key]
        kept.append((time.time() + ttl, message))
        del kept[:-100]  # FCM keeps at most 100 waiting messages per device

    def _wallet_patch(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def record(response: HttpResponse, body: dict[str, Any]) -> HttpResponse:
            self.wallet_patches.append(WalletPatch(object_id=object_id, body=body, status=response.status))
            return response

        scopes = self._bearer_scopes(request)
        if scopes is None:
            return record(_google_error(401, "Request had invalid authentication credentials."), {})
        if WALLET_SCOPE not in scopes:
            return record(_google_error(403, "Insufficient scope"), {})
        try:
            body = json.loads(request.body)
        except ValueError:
            return record(_google_error(400, "Invalid JSON"), {})
        if body.get("id", object_id) != object_id:
            return record(_google_error(400, "id in body does not match the URL"), body)
        if (scripted := self._wallet_script.next()) is not None:
            return record(_google_error(scripted.status, scripted.reason or "scripted"), body)
        if object_id not in self.wallet_objects:
            return record(_google_error(404, f"Resource not found: {object_id}"), body)
        self.wallet_objects[object_id] = {**self.wallet_objects[object_id], **body}
        return record(_json(200, self.wallet_objects[object_id]), body)
