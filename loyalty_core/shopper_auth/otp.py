"""One-time login codes by SMS or e-mail: normalise the identifier, send through a gateway, verify.

Codes live only in Valkey, hashed with the app secret (a dump of Valkey does not give codes away),
for five minutes; a code is single-use and dies after five wrong attempts. Sends and attempts are
counted per identifier and per client IP in fixed windows; exceeding one raises `RateLimited`
with `retry_after` seconds. Valkey is coordination only: losing it loses nothing but pending codes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
from typing import Any, Literal, Protocol

import msgspec
import phonenumbers

from loyalty_core.errors import DomainError, RateLimited, ValidationFailed

log = logging.getLogger("kopilka.otp")

INBOX_KEY = "kopilka:dev:inbox"
INBOX_KEEP = 1000
DEFAULT_REGION = "RU"
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")


class CodeInvalid(DomainError):
    slug, status, title = "code-invalid", 422, "The code is wrong or expired"


class GatewayMissing(DomainError):
    """No way to deliver codes: neither a real gateway nor the development one was configured."""

    slug, status, title = "otp-gateway-missing", 503, "Sign-in codes cannot be sent"


class OtpPolicy(msgspec.Struct, frozen=True, kw_only=True):
    code_ttl: int = 300
    max_wrong_attempts: int = 5
    window: int = 900  # seconds of every rate-limit window
    sends_per_identifier: int = 5
    sends_per_ip: int = 100  # a shopping mall's NAT puts many shoppers behind one address
    attempts_per_identifier: int = 10
    attempts_per_ip: int = 200


class Identifier(msgspec.Struct, frozen=True):
    kind: Literal["phone", "email"]
    value: str  # E.164 phone or lower-cased e-mail


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValidationFailed(f"{raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    value = raw.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValidationFailed(f"{raw!r} is not an e-mail address")
    return value


def parse_identifier(raw: str) -> Identifier:
    """A phone (any common notation, Russian by default) or an e-mail address."""
    raw = raw.strip()
    if "@" in raw:
        return Identifier("email", normalise_email(raw))
    return Identifier("phone", normalise_phone(raw))


# --- gateways -------------------------------------------------------------------------


class Gateway(Protocol):
    """Delivers one message to a phone (SMS) or an e-mail address."""

    async def send(self, to: Identifier, text: str) -> None: ...


class DevGateway:
    """Development delivery (`kopilka serve --dev`, KOPILKA_DEV_MODE=1): a log line on the server's terminal
    plus the Valkey list the test suite reads. Loopback only: `serve` refuses it on a public address."""

    def __init__(self, valkey: Any) -> None:
        self.valkey = valkey

    async def send(self, to: Identifier, text: str) -> None:
        log.warning("dev gateway: %s to %s: %s", "SMS" if to.kind == "phone" else "e-mail", to.value, text)
        entry = json.dumps({"to": to.value, "channel": to.kind, "text": text, "at": dt.datetime.now(dt.UTC).isoformat()})
        await self.valkey.rpush(INBOX_KEY, entry)
        await self.valkey.ltrim(INBOX_KEY, -INBOX_KEEP, -1)


class InboxMessage(msgspec.Struct, frozen=True):
    to: str
    channel: str
    text: str
    at: str


async def read_inbox(valkey: Any, to: str | None = None, limit: int = 50) -> list[InboxMessage]:
    """The dev inbox, newest first, optionally for one (normalised) recipient."""
    wanted = parse_identifier(to).value if to else None
    raw = await valkey.lrange(INBOX_KEY, -INBOX_KEEP, -1)
    messages = [msgspec.json.decode(r, type=InboxMessage) for r in reversed(raw)]
    return [m for m in messages if wanted is None or m.to == wanted][:limit]


# --- rate limits ----------------------------------------------------------------------

_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""


async def hit(valkey: Any, key: str, limit: int, window: int) -> None:
    """Count one event in a fixed window; over the limit -> RateLimited with the seconds left."""
    count, ttl = await valkey.eval(_HIT, 1, "kopilka:rl:" + key, window)
    if int(count) > limit:
        retry_after = max(int(ttl), 1)
        raise RateLimited(f"Too many attempts; try again in {retry_after} s", retry_after=retry_after)


# --- codes ----------------------------------------------------------------------------

_VERIFY = """
local h = redis.call('HGET', KEYS[1], 'h')
if not h then return -1 end
if h == ARGV[1] then redis.call('DEL', KEYS[1]) return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) end
return n
"""


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def keyed_hash(secret: str, message: str) -> str:
    """What is stored instead of a code: HMAC-SHA256 with the app secret, over the code and what it is bound to."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


async def store_code(valkey: Any, key: str, digest: str, ttl: int) -> None:
    """Put a code's hash at `key` with no wrong attempts yet, replacing the previous code there."""
    async with valkey.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"h": digest, "attempts": 0})
        pipe.expire(key, ttl)
        await pipe.execute()


async def consume_code(
    valkey: Any, key: str, digest: str, max_wrong_attempts: int, error: type[DomainError], missing: str, again: str
) -> None:
    """Consume the code at `key` or raise `error`: `missing` when there is none, the attempts left when wrong
    (the code dies at the last one; `again` says how to get another). Atomic: two right answers cannot both pass."""
    result = int(await valkey.eval(_VERIFY, 1, key, digest, max_wrong_attempts))
    if result == 0:
        return
    if result < 0:
        raise error(missing)
    left = max_wrong_attempts - result
    if left <= 0:
        raise error(f"Too many wrong codes: this code no longer works, {again}")
    raise error(f"Wrong code; {left} attempt(s) left", attempts_left=left)


def _code_key(who: Identifier) -> str:
    return f"kopilka:otp:{who.kind}:{who.value}"


def _code_hash(secret: str, who: Identifier, code: str) -> str:
    return keyed_hash(secret, f"{who.value}:{code}")


async def request_code(
    valkey: Any, gateway: Gateway, who: Identifier, ip: str, secret: str, policy: OtpPolicy = OtpPolicy(),
    language: str = "en",
) -> None:
    """Send a fresh 6-digit code (a new request replaces the previous code), in the shopper's language (ru | en)."""
    await hit(valkey, f"send:ip:{ip}", policy.sends_per_ip, policy.window)
    await hit(valkey, f"send:id:{who.value}", policy.sends_per_identifier, policy.window)
    code = new_code()
    await store_code(valkey, _code_key(who), _code_hash(secret, who, code), policy.code_ttl)
    minutes = max(policy.code_ttl // 60, 1)
    if language == "ru":
        text = f"Копилка: ваш код {code}. Действует {minutes} мин. Никому его не сообщайте."
    else:
        text = f"Kopilka: your code is {code}. It expires in {minutes} min. Do not tell it to anyone."
    await gateway.send(who, text)


async def check_code(
    valkey: Any, who: Identifier, code: str, ip: str, secret: str, policy: OtpPolicy = OtpPolicy()
) -> None:
    """Consume the code or raise CodeInvalid / RateLimited. Atomic: two right answers cannot both pass."""
    await hit(valkey, f"check:ip:{ip}", policy.attempts_per_ip, policy.window)
    await hit(valkey, f"check:id:{who.value}", policy.attempts_per_identifier, policy.window)
    await consume_code(
        valkey, _code_key(who), _code_hash(secret, who, code), policy.max_wrong_attempts, CodeInvalid,
        missing="No valid code for this phone or e-mail: request a new one", again="request a new one",
    )
