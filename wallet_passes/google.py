"""Google Wallet: the "Save to Google Wallet" link and loyaltyObject updates.

The link carries the whole loyaltyObject in an RS256 JWT signed by the
issuer's service account, so saving needs no API call from us. Afterwards
every balance change PATCHes the object through the Wallet REST API.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import msgspec

from wallet_passes.google_auth import WALLET_SCOPE, AccessTokenSource, ServiceAccount
from wallet_passes.pkpass import PassContent, expiring_line, labels
from wallet_passes.tls import client_ssl_context

SAVE_URL = "https://pay.google.com/gp/v/save/"
GOOGLE_WALLET_API = "https://walletobjects.googleapis.com"
_ID_UNSAFE = re.compile(r"[^\w.-]")  # Google allows letters, digits, '.', '_' and '-' after the issuer id


class GoogleWalletError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Google Wallet API answered HTTP {status}: {body[:300]}")
        self.status = status
        self.retryable = status == 429 or status >= 500


def object_id(issuer_id: str, card_number: str) -> str:
    return f"{issuer_id}.{_ID_UNSAFE.sub('_', card_number)}"


def loyalty_object(content: PassContent, *, issuer_id: str, class_id: str) -> dict[str, Any]:
    """The loyaltyObject for a card (pure). `class_id` is the class suffix or a full "issuer.class" id."""
    full_class = class_id if class_id.startswith(f"{issuer_id}.") else f"{issuer_id}.{class_id}"
    t = labels(content.locale)  # the same texts as the Apple pass, in the shopper's language
    obj: dict[str, Any] = {
        "id": object_id(issuer_id, content.card_number),
        "classId": full_class,
        "state": "INACTIVE" if content.voided else "ACTIVE",
        "accountId": content.card_number,
        "accountName": content.member_name,
        "loyaltyPoints": {"label": t["balance"], "balance": {"int": content.balance_active}},
        "secondaryLoyaltyPoints": {"label": t["pending"], "balance": {"int": content.balance_pending}},
        "barcode": {"type": "QR_CODE", "value": content.card_number, "alternateText": content.card_number},
        "textModulesData": [],
    }
    if content.tier_name:
        obj["textModulesData"].append({"id": "tier", "header": t["tier"], "body": content.tier_name})
    if content.expiring:
        soonest = min(content.expiring, key=lambda e: e.expires_on)
        obj["textModulesData"].append({"id": "expiring", "header": t["expiring_soon"],
                                       "body": expiring_line(soonest, content.locale)})
    return obj


def save_jwt(account: ServiceAccount, loyalty_objects: list[dict[str, Any]], *,
             origins: list[str], now: dt.datetime) -> str:
    claims = {
        "iss": account.client_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": int(now.timestamp()),
        "origins": origins,  # pages allowed to show the button; empty for links in apps/e-mail
        "payload": {"loyaltyObjects": loyalty_objects},
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)


def save_link(account: ServiceAccount, content: PassContent, *, issuer_id: str, class_id: str,
              now: dt.datetime, origins: list[str] | None = None, save_url: str = SAVE_URL) -> str:
    """The "Save to Google Wallet" URL for a card."""
    obj = loyalty_object(content, issuer_id=issuer_id, class_id=class_id)
    return save_url + save_jwt(account, [obj], origins=origins or [], now=now)


class GoogleWalletClient:
    """Updates saved loyalty objects. One per process; close with `aclose()`."""

    def __init__(self, base_url: str, token_url: str, service_account: ServiceAccount, *,
                 verify: str | bool = True, timeout: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, verify=client_ssl_context(verify), timeout=timeout)
        self._tokens = AccessTokenSource(service_account, [WALLET_SCOPE], self._client,
                                         token_url=token_url, clock=clock)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> GoogleWalletClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def patch_loyalty_object(self, obj: dict[str, Any]) -> bool:
        """PATCH the object. False if Google has no such object (the shopper never saved the card)."""
        path = f"/walletobjects/v1/loyaltyObject/{obj['id']}"
        body = msgspec.json.encode(obj)
        for attempt in range(2):
            token = await self._tokens.token()
            response = await self._client.patch(path, content=body, headers={
                "authorization": f"Bearer {token}", "content-type": "application/json"})
            if response.status_code == 401 and attempt == 0:
                self._tokens.invalidate()  # revoked or expired early: one fresh grant, then give up
                continue
            break
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise GoogleWalletError(response.status_code, response.text)
        return True

    async def update_card(self, content: PassContent, *, issuer_id: str, class_id: str) -> bool:
        return await self.patch_loyalty_object(loyalty_object(content, issuer_id=issuer_id, class_id=class_id))
