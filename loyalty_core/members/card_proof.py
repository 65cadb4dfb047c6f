"""Proof that a shopper holds a card, and the limits on trying to prove it.

A card becomes a member's only with proof of possession (DESIGN.md): a till scanned the physical card
(`POST /pos/v1/members`), the shopper typed the secret printed with an emitted card (app, website, call
centre), or a legacy import vouches for it. A card number alone proves nothing: numbers are sequential.

- The secret: 12 symbols of a 32-letter alphabet (60 bits), printed as `XXXX-XXXX-XXXX` and shown once,
  when the card is emitted; only sha256("number:secret") is stored, like till keys.
- Attempts to bind a card by its secret are counted per shopper, per client IP and per card.
- A till linking a card to a phone that already belongs to a member sends that phone a one-time code
  bound to the till, the card and the phone; the card is linked only when the till sends it back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec

from loyalty_core.errors import ConfirmationRequired, DomainError
from loyalty_core.shopper_auth import otp

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols, no 0/O, 1/I: typed from a printed card
SECRET_LENGTH = 12
_GROUP = 4

# what a form or an API body may carry: the printed secret, with or without dashes and spaces
CardSecret = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z -]+$")]


class CardSecretInvalid(DomainError):
    slug, status, title = "card-secret-invalid", 422, "The card's secret does not match"


def new_secret() -> str:
    """A fresh printed secret; 256 is a multiple of 32, so `byte & 31` is uniform over the alphabet."""
    chars = "".join(ALPHABET[b & 31] for b in secrets.token_bytes(SECRET_LENGTH))
    return "-".join(chars[i:i + _GROUP] for i in range(0, SECRET_LENGTH, _GROUP))


def normalise_secret(raw: str) -> str | None:
    """The secret as stored-hashed (upper case, no dashes or spaces), or None when it cannot be one."""
    value = raw.replace("-", "").replace(" ", "").upper()
    if len(value) != SECRET_LENGTH or any(ch not in ALPHABET for ch in value):
        return None
    return value


def secret_hash(number: str, secret: str) -> str:
    """sha256 of "number:secret" (normalised): the same secret on two cards hashes differently."""
    return hashlib.sha256(f"{number}:{normalise_secret(secret) or secret}".encode()).hexdigest()


def check_secret(number: str, stored_hash: str | None, secret: str | None) -> None:
    """The typed secret matches the one printed with the card, or CardSecretInvalid."""
    if stored_hash is None:
        raise CardSecretInvalid(
            f"Card {number} has no secret on file: register it at a till, where the cashier scans the card"
        )
    if not secret:
        raise CardSecretInvalid("Type the secret printed on the card under its number to bind it")
    normal = normalise_secret(secret)
    if normal is None or not hmac.compare_digest(secret_hash(number, normal), stored_hash):
        raise CardSecretInvalid(f"The secret does not match card {number}")


# --- attempt limits ------------------------------------------------------------------------


class BindPolicy(msgspec.Struct, frozen=True, kw_only=True):
    window: int = 3600  # seconds
    per_shopper: int = 10  # binding a family's cards is a handful; guessing is thousands
    per_ip: int = 50  # a shopping mall's NAT puts many shoppers behind one address
    per_card: int = 10  # many accounts and addresses guessing one card's secret


async def count_bind_attempt(valkey: Any, shopper: str, ip: str, number: str, policy: BindPolicy = BindPolicy()) -> None:
    """One attempt to bind a card by its secret; over a limit -> 429 `rate-limited` with Retry-After."""
    await otp.hit(valkey, f"card-bind:ip:{ip}", policy.per_ip, policy.window)
    await otp.hit(valkey, f"card-bind:shopper:{shopper}", policy.per_shopper, policy.window)
    await otp.hit(valkey, f"card-bind:card:{number}", policy.per_card, policy.window)


# --- the till's link code -----------------------------------------------------------------------

Send = Callable[[str, str], Awaitable[None]]  # (E.164 phone, text)


class LinkCodePolicy(msgspec.Struct, frozen=True, kw_only=True):
    code_ttl: int = 300
    max_wrong_attempts: int = 5
    sends_per_phone: int = 5  # per window: a till cannot flood a phone with codes
    window: int = 900


class TillLinkCodes:
    """One-time codes that let a till link a card to a phone's member; not login codes (the cashier hears them)."""

    def __init__(self, valkey: Any, till_id: int, secret: str, send: Send, policy: LinkCodePolicy = LinkCodePolicy()) -> None:
        self.valkey, self.till_id, self.secret, self.send, self.policy = valkey, till_id, secret, send, policy

    def _key(self, phone: str, number: str) -> str:
        return f"kopilka:card-link:{self.till_id}:{number}:{phone}"

    def _hash(self, phone: str, number: str, code: str) -> str:
        return otp.keyed_hash(self.secret, f"card-link:{self.till_id}:{number}:{phone}:{code}")

    async def send_code(self, phone: str, number: str) -> None:
        await otp.hit(self.valkey, f"card-link:send:{phone}", self.policy.sends_per_phone, self.policy.window)
        code = otp.new_code()
        await otp.store_code(self.valkey, self._key(phone, number), self._hash(phone, number, code), self.policy.code_ttl)
        minutes = max(self.policy.code_ttl // 60, 1)
        await self.send(
            phone,
            f"Kopilka: code {code} links card ...{number[-4:]} to your account. It expires in {minutes} min. "
            "Tell it to the cashier only if you are at the till and were handed this card.",
        )

    async def check_code(self, phone: str, number: str, code: str | None) -> None:
        """Consume the code or 409 `confirmation-required`. Atomic and single use, five tries."""
        if not code:
            raise ConfirmationRequired(
                "This phone belongs to a member: the card is linked after they confirm. A code was sent to the "
                "phone; send it back as confirmation_code", code_sent=True,
            )
        await otp.consume_code(
            self.valkey, self._key(phone, number), self._hash(phone, number, code.strip()),
            self.policy.max_wrong_attempts, ConfirmationRequired,
            missing="No valid code for this phone and card at this till: register again for a new one",
            again="register again for a new one",
        )
