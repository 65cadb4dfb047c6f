"""A local APNs: HTTP/2 over TLS (ALPN h2), built on the `h2` package.

It checks what the real service checks that matters to us: the ES256 provider
token (signature with the team's key, iss, kid, age) for app pushes, or the
TLS client certificate and its pass type id for wallet pass pushes, and the
request shape (path, topic, headers, JSON payload size). Every request is
recorded with the answer it got. Tests can script errors (`respond_with`) or
mark a device token as unregistered (`unregister`).

Like APNs it knows which app (topic) a device token belongs to (`register_device`:
another topic gets DeviceTokenNotForTopic; a topic outside the team's apps gets
TopicDisallowed), and it stores for an offline device (`go_offline`) only the
latest notification per app, and only if its `apns-expiration` is in the future:
`apns-expiration: 0` means "try once, keep nothing". `come_online` hands the
stored one over; `on_device(token)` is what reached the phone.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import ProtocolError

from tests.fakes.script import Answer, Script
from wallet_passes.certs import pass_type_id_of

_TOKEN_PATH = re.compile(r"^/3/device/([0-9a-fA-F]+)$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_PAYLOAD = 4096
MAX_COLLAPSE_ID = 64  # bytes
PUSH_TYPES = {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity",
              "pushtotalk", "widgets"}


class ApnsRequest(msgspec.Struct, kw_only=True):
    """One push as the fake saw it, with the answer it gave."""

    device_token: str
    headers: dict[str, str]
    payload: Any  # decoded JSON, or the raw bytes if it was not JSON
    auth: str  # "token" | "cert" | "none"
    topic: str | None
    client_cert_uid: str | None = None
    jwt_claims: dict[str, Any] | None = None
    status: int = 0
    reason: str = ""


class FakeApns:
    def __init__(self, *, server_cert_path: Path, server_key_path: Path, client_ca_paths: list[Path],
                 team_id: str = "KOPILKATST", app_topics: set[str] | None = None) -> None:
        self.team_id = team_id
        self.app_topics = app_topics  # bundle ids the team's provider key may push to (None: any)
        self.key_id = "FAKEKEY001"
        self._provider_key = ec.generate_private_key(ec.SECP256R1())
        self.provider_key_pem = self._provider_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        self._public_keys = {self.key_id: self._provider_key.public_key()}
        self._ssl = self._server_context(server_cert_path, server_key_path, client_ca_paths)
        self._server: asyncio.AbstractServer | None = None
        self.ca_path: Path | None = None  # set by the fixture: the CA that issued server_cert_path
        self.received: list[ApnsRequest] = []
        self.unregistered: dict[str, int] = {}  # device token -> unix time it became invalid
        self.device_topics: dict[str, str] = {}  # device token -> the app (topic) it belongs to
        self.offline: set[str] = set()
        self.stored: dict[tuple[str, str], tuple[int, ApnsRequest]] = {}  # (token, topic) -> (expiration, push)
        self.reached: dict[str, list[ApnsRequest]] = {}  # device token -> pushes that reached the phone
        self._script = Script()
        self._token_scripts: dict[str, Script] = {}
        self._arrived = asyncio.Event()
        self.port = 0

    @staticmethod
    def _server_context(cert: Path, key: Path, client_cas: list[Path]) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        context.set_alpn_protocols(["h2"])
        for ca in client_cas:
            context.load_verify_locations(str(ca))
        # Optional: app pushes come without a client certificate, pass pushes with one.
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _H2Protocol(self), "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- test controls ---------------------------------------------------------

    def respond_with(self, status: int, reason: str = "", *, times: int = 1, retry_after: int | None = None,
                     device_token: str | None = None) -> None:
        """Answer the next `times` well-formed, authenticated pushes (to `device_token` only, if given) with this error."""
        answer = Answer(status=status, reason=reason, retry_after=retry_after)
        if device_token is None:
            self._script.push(answer, times)
        else:
            self._token_scripts.setdefault(device_token, Script()).push(answer, times)

    def unregister(self, device_token: str) -> None:
        """From now on this token gets 410 Unregistered, like an uninstalled app."""
        self.unregistered[device_token] = int(time.time() * 1000)

    def register_device(self, device_token: str, topic: str) -> None:
        """The token belongs to this app: pushes for any other topic get DeviceTokenNotForTopic."""
        self.device_topics[device_token] = topic

    def go_offline(self, device_token: str) -> None:
        self.offline.add(device_token)

    def come_online(self, device_token: str, at: float | None = None) -> list[ApnsRequest]:
        """The phone is reachable again (at unix time `at`): APNs hands over what it kept and has not expired."""
        now = time.time() if at is None else at
        self.offline.discard(device_token)
        handed = []
        for key in [k for k in self.stored if k[0] == device_token]:
            expiration, push = self.stored.pop(key)
            if expiration >= now:
                handed.append(push)
        self.reached.setdefault(device_token, []).extend(handed)
        return handed

    def on_device(self, device_token: str) -> list[ApnsRequest]:
        return list(self.reached.get(device_token, []))

    def reset(self) -> None:
        self.received.clear()
        self.unregistered.clear()
        self.device_topics.clear()
        self.offline.clear()
        self.stored.clear()
        self.reached.clear()
        self._script.clear()
        self._token_scripts.clear()

    def delivered(self) -> list[ApnsRequest]:
        return [r for r in self.received if r.status == 200]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[ApnsRequest]:
        """Wait until at least `count` pushes were delivered (for end-to-end tests with a worker)."""
        async def _wait() -> None:
            while len(self.delivered()) < count:
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.delivered()

    # --- the protocol checks ---------------------------------------------------

    def handle(self, headers: dict[str, str], body: bytes, client_cert: x509.Certificate | None
               ) -> tuple[int, dict[str, str], bytes]:
        request = ApnsRequest(device_token="", headers=headers, payload=_decode(body), auth="none",
                              topic=headers.get("apns-topic"))
        status, reason = self._check(request, headers, body, client_cert)
        token_script = self._token_scripts.get(request.device_token)
        if status == 200 and (scripted := (token_script.next() if token_script else None) or self._script.next()):
            status, reason = scripted.status, scripted.reason
            extra = {"retry-after": str(scripted.retry_after)} if scripted.retry_after is not None else {}
        else:
            extra = {}
        request.status, request.reason = status, reason
        if status == 200:
            self._reach(request)
        self.received.append(request)
        self._arrived.set()
        response_headers = {"apns-id": headers.get("apns-id") or str(uuid.uuid4()), **extra}
        if status == 200:
            return 200, response_headers, b""
        answer: dict[str, Any] = {"reason": reason}
        if status == 410:
            answer["timestamp"] = self.unregistered.get(request.device_token, int(time.time() * 1000))
        return status, {**response_headers, "content-type": "application/json"}, json.dumps(answer).encode()

    def _reach(self, request: ApnsRequest) -> None:
        """Accepted: to the phone now, or kept for it (latest per app) if it may wait, else dropped."""
        token = request.device_token
        if token not in self.offline:
            self.reached.setdefault(token, []).append(request)
            return
        # without the header APNs still stores it for a while (we model 30 days); 0 is "now or never"
        expiration = int(request.headers.get("apns-expiration", str(int(time.time()) + 30 * 24 * 3600)))
        key = (token, request.topic or "")
        if expiration == 0:
            return  # "deliver now or never": the phone is offline, so never
        self.stored[key] = (expiration, request)  # a newer push for the app replaces the kept one

    def _check_headers(self, headers: dict[str, str]) -> tuple[int, str]:
        if "apns-expiration" in headers and not headers["apns-expiration"].isdigit():
            return 400, "BadExpirationDate"
        if "apns-priority" in headers and headers["apns-priority"] not in ("1", "5", "10"):
            return 400, "BadPriority"
        if "apns-push-type" in headers and headers["apns-push-type"] not in PUSH_TYPES:
            return 400, "InvalidPushType"
        if "apns-collapse-id" in headers and len(headers["apns-collapse-id"].encode()) > MAX_COLLAPSE_ID:
            return 400, "BadCollapseId"
        if "apns-id" in headers and not _UUID.match(headers["apns-id"]):
            return 400, "BadMessageId"
        return 200, ""

    def _check(self, request: ApnsRequest, headers: dict[str, str], body: bytes,
               client_cert: x509.Certificate | None) -> tuple[int, str]:
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        match = _TOKEN_PATH.match(headers.get(":path", ""))
        if not match:
            return (404, "BadPath") if not headers.get(":path", "").startswith("/3/device/") else (400, "BadDeviceToken")
        request.device_token = match.group(1)
        status, reason = self._check_headers(headers)
        if status != 200:
            return status, reason
        if client_cert is not None and "authorization" not in headers:
            request.auth = "cert"
            request.client_cert_uid = pass_type_id_of(client_cert)
            if request.topic is None:
                return 400, "MissingTopic"
            if request.topic != request.client_cert_uid:
                return 400, "TopicDisallowed"
        else:
            if "authorization" not in headers:
                return 403, "MissingProviderToken"
            request.auth = "token"
            status, reason = self._check_provider_token(request, headers["authorization"])
            if status != 200:
                return status, reason
            if request.topic is None:
                return 400, "MissingTopic"
            if self.app_topics is not None and request.topic not in self.app_topics:
                return 400, "TopicDisallowed"
        if len(body) > MAX_PAYLOAD:
            return 413, "PayloadTooLarge"
        if not isinstance(request.payload, dict):
            return 400, "PayloadEmpty" if not body else "BadPayload"
        if request.device_token in self.unregistered:
            return 410, "Unregistered"
        known = self.device_topics.get(request.device_token)
        if known is not None and known != request.topic:
            return 400, "DeviceTokenNotForTopic"
        return 200, ""

    def _check_provider_token(self, request: ApnsRequest, authorization: str) -> tuple[int, str]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 403, "InvalidProviderToken"
        try:
            key = self._public_keys.get(jwt.get_unverified_header(token).get("kid", ""))
            if key is None:
                return 403, "InvalidProviderToken"
            # APNs tokens carry no exp; APNs judges age by iat itself.
            claims = jwt.decode(token, key, algorithms=["ES256"], options={"require": ["iss", "iat"]})
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        request.jwt_claims = claims
        if claims["iss"] != self.team_id:
            return 403, "InvalidProviderToken"
        if time.time() - int(claims["iat"]) > 3600:
            return 403, "ExpiredProviderToken"
        return 200, ""


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


class _H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection; requests are answered synchronously as their stream ends."""

    def __init__(self, fake: FakeApns) -> None:
        self.fake = fake
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.client_cert: x509.Certificate | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object.selected_alpn_protocol() != "h2":  # APNs is HTTP/2 only
            transport.close()
            return
        if der := ssl_object.getpeercert(binary_form=True):
            self.client_cert = x509.load_der_x509_certificate(der)
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self.streams[event.stream_id] = (dict(event.headers), bytearray())
            elif isinstance(event, DataReceived):
                self.streams[event.stream_id][1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._respond(event.stream_id)
            elif isinstance(event, StreamReset):
                self.streams.pop(event.stream_id, None)
            elif isinstance(event, ConnectionTerminated):
                self.transport.close()
        self.transport.write(self.conn.data_to_send())

    def _respond(self, stream_id: int) -> None:
        headers, body = self.streams.pop(stream_id)
        status, response_headers, response_body = self.fake.handle(headers, bytes(body), self.client_cert)
        self.conn.send_headers(stream_id, [(":status", str(status)), *response_headers.items()],
                               end_stream=not response_body)
        if response_body:
            self.conn.send_data(stream_id, response_body, end_stream=True)
