"""A small OpenID Connect provider for tests: discovery, JWKS, authorize (auto-approves the next user), token.

Authorization code flow with PKCE (S256), client_secret_basic, RS256 id_tokens — what a real provider speaks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from litestar import Litestar, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Response

CLIENT_ID = "kopilka-test"
CLIENT_SECRET = "provider-secret"


class Provider:
    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.port = port
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig"})
        self.next_user: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tamper: str | None = None  # "audience", "signature", "nonce": make the next id_token wrong that way
        self._server: uvicorn.Server | None = None

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant["nonce"], **grant["user"]}
        key = self.key
        if self.tamper == "audience":
            claims["aud"] = "someone-else"
        elif self.tamper == "nonce":
            claims["nonce"] = "replayed"
        elif self.tamper == "signature":
            key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.tamper = None
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)

    def app(self) -> Litestar:
        provider = self

        @get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": provider.issuer,
                "authorization_endpoint": provider.issuer + "/authorize",
                "token_endpoint": provider.issuer + "/token",
                "jwks_uri": provider.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @get("/jwks")
        async def jwks() -> dict[str, Any]:
            return KeySet([provider.key]).as_dict(private=False)

        @get("/authorize")
        async def authorize(request: Request) -> Redirect:
            q = request.query_params
            assert q["client_id"] == CLIENT_ID and q["response_type"] == "code" and q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            provider.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                                    "user": dict(provider.next_user)}
            return Redirect(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))

        @post("/token", status_code=200)
        async def token(request: Request,
                        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            grant = provider.codes.pop(data.get("code", ""), None)
            if request.headers.get("authorization") != expected or grant is None:
                return Response({"error": "invalid_grant"}, status_code=400)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(data["code_verifier"].encode()).digest()).decode().rstrip("=")
            if challenge != grant["challenge"] or data.get("redirect_uri") != grant["redirect_uri"]:
                return Response({"error": "invalid_grant"}, status_code=400)
            return Response({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                             "id_token": provider.id_token(grant)})

        return Litestar([discovery, jwks, authorize, token])

    def start(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        threading.Thread(target=self._server.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test OIDC provider did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True


# One provider per test process. The app server (a session fixture shared by every test directory) reads
# its OIDC settings from the environment when it starts, so the address is fixed at collection time,
# before any server exists, by whichever conftest imports this first.
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PROVIDER = Provider(_free_port())
_started = False
os.environ.update(KOPILKA_OIDC_ISSUER=_PROVIDER.issuer, KOPILKA_OIDC_CLIENT_ID=CLIENT_ID,
                  KOPILKA_OIDC_CLIENT_SECRET=CLIENT_SECRET)


def running_provider() -> Provider:
    global _started
    if not _started:
        _PROVIDER.start()
        _started = True
    return _PROVIDER
