"""Google service accounts: the key file and the OAuth2 JWT-bearer grant (RFC 7523).

Shared by the Google Wallet client and the FCM transport; both need an access
token for a scope, cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import msgspec

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
WALLET_SCOPE = "https://www.googleapis.com/auth/wallet_object.issuer"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_REFRESH_MARGIN = 120  # seconds: renew before expiry so a request never carries a dying token


class ServiceAccount(msgspec.Struct, frozen=True, kw_only=True):
    """The fields we use from a Google service-account JSON key file (others are ignored)."""

    client_email: str
    private_key: str  # PEM, RSA
    token_uri: str = GOOGLE_TOKEN_URI
    project_id: str | None = None
    private_key_id: str | None = None


class TokenGrantFailed(RuntimeError):
    """The token endpoint refused the grant (bad key, clock skew, disabled account)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"token grant failed: HTTP {status}: {body[:300]}")
        self.status = status
        self.retryable = status == 429 or status >= 500


class _TokenResponse(msgspec.Struct):
    access_token: str
    expires_in: int = 3600
    token_type: str = "Bearer"


def load_service_account(path: Path | str) -> ServiceAccount:
    return msgspec.json.decode(Path(path).read_bytes(), type=ServiceAccount)


def grant_assertion(account: ServiceAccount, scopes: list[str], audience: str, now: int) -> str:
    """The RS256 JWT a service account presents to the token endpoint (pure)."""
    claims = {"iss": account.client_email, "scope": " ".join(scopes), "aud": audience,
              "iat": now, "exp": now + 3600}
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)


class AccessTokenSource:
    """Access tokens for one account and scope set, fetched on demand and cached until near expiry."""

    def __init__(self, account: ServiceAccount, scopes: list[str], client: httpx.AsyncClient, *,
                 token_url: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self._account = account
        self._scopes = scopes
        self._client = client
        self._token_url = token_url or account.token_uri
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget the cached token (the API answered 401 with it)."""
        self._token = None

    async def token(self) -> str:
        async with self._lock:  # one grant for many concurrent senders
            if self._token is None or self._clock() >= self._expires_at - _REFRESH_MARGIN:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        now = int(self._clock())
        assertion = grant_assertion(self._account, self._scopes, self._token_url, now)
        response = await self._client.post(
            self._token_url, data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion})
        if response.status_code != 200:
            raise TokenGrantFailed(response.status_code, response.text)
        parsed = msgspec.json.decode(response.content, type=_TokenResponse)
        self._token = parsed.access_token
        self._expires_at = now + parsed.expires_in
