"""The rotating app QR token `KQ1.<card>.<exp>.<mac>`: issued for the app screen, verified at the till.

The app screen refreshes it every 30 s, so a screenshot of someone's app stops working within a minute.
The "KQ1." prefix lets the till's scan resolution tell a token from a card number or a phone number
without guessing; "1" is the format version. Pure: the secret and the time are arguments.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

QR_TOKEN_PREFIX = "KQ1."
_MAC_BYTES = 12  # 96 bits: unforgeable within a token's minute of life, and keeps the QR small
_KEY_LABEL = b"kopilka/app-qr-token/v1"


class QrTokenError(ValueError):
    """Base of the errors a scanned app token can raise."""


class QrTokenInvalid(QrTokenError):
    """Not a token we issued (malformed, wrong key, or tampered with)."""


class QrTokenExpired(QrTokenError):
    """A genuine token, but too old: probably a screenshot."""


def is_app_qr_token(scanned: str) -> bool:
    return scanned.startswith(QR_TOKEN_PREFIX)


def _key(secret: str | bytes) -> bytes:
    # Derive a key of its own so the app secret (which also signs sessions and
    # access tokens) never MACs a QR payload directly.
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()


def _mac(secret: str | bytes, signed_part: str) -> str:
    digest = hmac.new(_key(secret), signed_part.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _epoch(now: dt.datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be time-zone aware")
    return int(now.timestamp())


def issue_app_qr_token(card_number: str, secret: str | bytes, now: dt.datetime, period: int = 30) -> str:
    """A token for the app screen, valid for `period` seconds from `now` (plus the verifier's leeway)."""
    if "." in card_number or not card_number:
        raise ValueError("card number must be non-empty and contain no dots")
    signed_part = f"{QR_TOKEN_PREFIX}{card_number}.{_b36(_epoch(now) + period)}"
    return f"{signed_part}.{_mac(secret, signed_part)}"


def verify_app_qr_token(token: str, secret: str | bytes, now: dt.datetime, leeway: int = 30) -> str:
    """The card number inside a scanned token, or QrTokenInvalid / QrTokenExpired.

    `leeway` covers the phone's clock being behind and the cashier taking a
    moment; a screenshot therefore works for period + leeway seconds at most.
    """
    if not is_app_qr_token(token):
        raise QrTokenInvalid("not an app QR token")
    parts = token[len(QR_TOKEN_PREFIX):].split(".")
    if len(parts) != 3:
        raise QrTokenInvalid("malformed app QR token")
    card_number, exp_b36, mac = parts
    signed_part = token.rsplit(".", 1)[0]
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, once a 500)
    if not hmac.compare_digest(mac.encode(), _mac(secret, signed_part).encode()):
        raise QrTokenInvalid("app QR token signature does not match")
    try:
        expires = int(exp_b36, 36)
    except ValueError:  # only reachable with our own key, i.e. a bug, but keep it a typed error
        raise QrTokenInvalid("malformed expiry") from None
    if _epoch(now) > expires + leeway:
        raise QrTokenExpired(f"app QR token expired {_epoch(now) - expires} s ago")
    return card_number
