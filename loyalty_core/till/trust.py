"""What a till is trusted with, and what it is not (POS_API.md).

A till reports what it sold, but a phone number is guessable and a till's numbers are typed or
computed by software we do not control. So:
- phone look-ups are counted per till in a one-minute window, on every endpoint that takes a phone;
- spending points by phone needs a one-time code the shopper received (single use, this till only,
  five minutes, five tries);
- a sale's numbers and times must be plausible before anything is priced or written.
Codes live only in Valkey, hashed with the app secret, like the shopper's login codes (otp.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import msgspec

from loyalty_core.engine.program import ProgramSettings
from loyalty_core.errors import ConfirmationRequired, ValidationFailed
from loyalty_core.shopper_auth import otp
from loyalty_core.till.identify import _as_phone, resolve_scan
from loyalty_core.till.types import SaleIn

FUTURE_TOLERANCE = dt.timedelta(minutes=10)  # till clocks drift; more than this is not a clock, it is a lie


class SpendCodePolicy(msgspec.Struct, frozen=True, kw_only=True):
    code_ttl: int = 300
    max_wrong_attempts: int = 5
    sends_per_phone: int = 5  # per `window`: a till cannot flood a shopper's phone with codes
    window: int = 900


def is_phone_scan(scan: str | None) -> bool:
    """What counts against the phone limit: anything typed as a phone, valid or not (a guess is a guess)."""
    return scan is not None and scan.strip().startswith("+")


def spends_by_phone(sale: SaleIn) -> str | None:
    """The shopper's E.164 phone when this sale spends points and names the shopper by phone."""
    if sale.redeem_points <= 0 or sale.card is None:
        return None
    return _as_phone(sale.card.strip())


# --- plausibility ----------------------------------------------------------------------------


def _has_nul(value: str | None) -> bool:
    return value is not None and "\x00" in value


def check_lines(sale: SaleIn) -> None:
    """Numbers a till cannot have rung up; 422 before anything is read or written."""
    problems: list[str] = []
    texts = [sale.receipt_id, sale.card, sale.confirmation_code, *sale.coupons,
             *(ln.sku for ln in sale.lines), *(p.type for p in sale.payments)]
    if any(_has_nul(t) for t in texts):
        problems.append("a text field contains a NUL character")
    if abs((sale.business_date - sale.occurred_at.date()).days) > 1:
        # a business day may run past midnight, never further
        problems.append(f"business_date {sale.business_date} is not the day of occurred_at")
    for line in sale.lines:
        # price x quantity, rounded to the kopeck, plus one kopeck for the till's own rounding
        ceiling = int((Decimal(line.price) * Decimal(repr(line.quantity))).to_integral_value(ROUND_HALF_UP)) + 1
        if line.amount > ceiling:
            problems.append(
                f"line {line.line_no}: amount {line.amount} is more than price x quantity ({ceiling - 1})"
            )
    if problems:
        raise ValidationFailed("; ".join(problems), errors=problems)


def check_time(sale: SaleIn, settings: ProgramSettings | None, now: dt.datetime, offline: bool) -> None:
    """`occurred_at` within the program's window: 10 minutes ahead at most, and so many days behind."""
    settings = settings or ProgramSettings()
    if sale.occurred_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed(
            f"occurred_at {sale.occurred_at.isoformat()} is more than 10 minutes ahead of the server's clock"
        )
    days = settings.offline_sale_max_age_days if offline else settings.sale_max_age_days
    if sale.occurred_at < now - dt.timedelta(days=days):
        where = "a batch" if offline else "a live sale"
        raise ValidationFailed(
            f"occurred_at {sale.occurred_at.isoformat()} is more than {days} days ago: too old for {where}",
            max_age_days=days,
        )


def activation_time(sale: SaleIn, pending_days: int, now: dt.datetime) -> dt.datetime:
    """Points wait the whole pending window from when the sale reached us, or from when it happened if later:
    a late upload (or a back-dated `occurred_at`) cannot skip the return window."""
    return max(sale.occurred_at, now) + dt.timedelta(days=pending_days)


# --- phone look-ups and spend codes -----------------------------------------------------------


class PhoneGate:
    """One till's phone look-ups and spend codes, for one request."""

    def __init__(self, valkey: Any, till_id: int, secret: str, lookups_per_minute: int,
                 gateway: otp.Gateway | None = None, policy: SpendCodePolicy = SpendCodePolicy(),
                 program_id: int | None = None) -> None:
        self.valkey, self.till_id, self.secret = valkey, till_id, secret
        self.lookups_per_minute, self.gateway, self.policy = lookups_per_minute, gateway, policy
        self.program_id = program_id  # the store's program: another program's shoppers get no code from here

    async def count(self, scan: str | None) -> None:
        """One phone look-up by this till; over the limit -> 429 `rate-limited`."""
        if is_phone_scan(scan):
            await otp.hit(self.valkey, f"till:{self.till_id}:phone", self.lookups_per_minute, 60)

    def _key(self, phone: str) -> str:
        return f"kopilka:till-code:{self.till_id}:{phone}"

    def _hash(self, phone: str, code: str) -> str:
        return otp.keyed_hash(self.secret, f"till:{self.till_id}:{phone}:{code}")

    async def send_code(self, scan: str, now: dt.datetime) -> None:
        """A fresh code to the shopper's phone (a new one replaces the previous for this till)."""
        await self.count(scan)
        phone = _as_phone(scan.strip())
        if phone is None:
            raise ValidationFailed("scan must be the shopper's phone in international format, e.g. +79990000001")
        if self.gateway is None:
            raise RuntimeError("PhoneGate.send_code needs a gateway")
        await resolve_scan(phone, now, program_id=self.program_id)  # unknown / blocked: as identify answers
        await otp.hit(self.valkey, f"till-code:send:{phone}", self.policy.sends_per_phone, self.policy.window)
        code = otp.new_code()
        await otp.store_code(self.valkey, self._key(phone), self._hash(phone, code), self.policy.code_ttl)
        minutes = max(self.policy.code_ttl // 60, 1)
        await self.gateway.send(
            otp.Identifier("phone", phone),
            f"Kopilka: code {code} lets the cashier pay with your points. It expires in {minutes} min. "
            "If you are not at a till now, do not tell it to anyone.",
        )

    async def confirm_spend(self, phone: str, code: str | None) -> None:
        """Consume the shopper's code for this till, or 409 `confirmation-required`. Atomic, single use."""
        if not code:
            raise ConfirmationRequired(
                "Paying with points by phone needs the shopper's code: POST /pos/v1/confirmations, "
                "then send it as confirmation_code"
            )
        await otp.consume_code(
            self.valkey, self._key(phone), self._hash(phone, code.strip()), self.policy.max_wrong_attempts,
            ConfirmationRequired, missing="No valid code for this phone at this till: request a new one",
            again="request a new one",
        )
