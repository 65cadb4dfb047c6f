"""The till's wire structs (POS_API.md): what a till sends and what it gets back. Shared by services and controllers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from loyalty_core.ledger.ops import BalanceOut

Str64 = Annotated[str, Meta(min_length=1, max_length=64)]
Minor = Annotated[int, Meta(ge=0, le=10**12)]
Points = Annotated[int, Meta(ge=0, le=10**10)]
AwareDateTime = Annotated[dt.datetime, Meta(tz=True)]
Channel = Literal["store", "online", "app", "call_center"]


class SaleLineIn(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    line_no: Annotated[int, Meta(ge=1, le=100_000)]
    sku: Str64
    quantity: Annotated[float, Meta(gt=0, le=1_000_000)]
    price: Minor
    amount: Minor


class PaymentIn(msgspec.Struct, frozen=True):
    type: Annotated[str, Meta(min_length=1, max_length=32)]
    amount: Minor


class SaleIn(msgspec.Struct, frozen=True):
    receipt_id: Str64
    business_date: dt.date
    occurred_at: AwareDateTime
    lines: Annotated[list[SaleLineIn], Meta(min_length=1, max_length=1000)]
    card: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
    channel: Channel = "store"
    coupons: Annotated[list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(max_length=20)] = []
    redeem_points: Points = 0
    payments: Annotated[list[PaymentIn], Meta(max_length=20)] = []
    # the shopper's one-time code (POST /pos/v1/confirmations): needed to spend points by phone
    confirmation_code: Annotated[str, Meta(min_length=1, max_length=16)] | None = None


class IdentifyIn(msgspec.Struct, frozen=True):
    scan: Annotated[str, Meta(min_length=1, max_length=512)]


class TierOut(msgspec.Struct):
    code: str
    name: str


class MemberOut(msgspec.Struct):
    id: int | None
    name: str
    tier: TierOut | None
    registered: bool = True


class CardOut(msgspec.Struct):
    number: str
    status: str


class CashierNote(msgspec.Struct, frozen=True, omit_defaults=True):
    """Something the cashier should tell the shopper, as a stable code a till may translate itself; the API
    writes it out in the program's language as `cashier_messages` (backend/pos/messages.py).

    Codes: points_expire (points, on), card_not_registered, registration_pending, card_not_confirmed, birthday,
    points_accrued (points), kept_on_card, accrual_limited (text: the engine's explanation, already in the
    program's language)."""

    code: str
    points: int | None = None
    on: dt.date | None = None
    text: str | None = None


class IdentifyOut(msgspec.Struct, kw_only=True):
    member: MemberOut
    card: CardOut
    balance: BalanceOut
    cashier_messages: list[str] = []  # the notes in `language`, written by the API layer
    cashier_notes: list[CashierNote] = []
    language: str = "ru"  # the program's: of the cashier messages and explanations


class LineOut(msgspec.Struct):
    line_no: int
    discount: int
    redeemed_points: int
    redeemed_amount: int
    to_pay: int
    accrued_points: int


class TotalsOut(msgspec.Struct):
    amount: int
    discount: int
    redeemed_points: int
    redeemed_amount: int
    to_pay: int
    accrued_points: int


class AppliedOut(msgspec.Struct):
    rule: str
    name: str
    effect: str
    lines: list[int]
    explanation: str
    points: int = 0
    discount: int = 0


class CouponOut(msgspec.Struct):
    code: str
    status: str
    reason: str | None = None


class CalculationOut(msgspec.Struct, kw_only=True):
    lines: list[LineOut]
    totals: TotalsOut
    max_redeem_points: int
    applied: list[AppliedOut]
    coupons: list[CouponOut]
    balance_after: BalanceOut | None
    cashier_messages: list[str] = []  # the notes in `language`, written by the API layer
    cashier_notes: list[CashierNote] = []
    language: str = "ru"  # the program's: of the cashier messages, explanations and coupon reasons
    rules_version: int = 0
    sale_id: int | None = None
    status: str | None = None


class ReturnLineIn(msgspec.Struct, frozen=True):
    line_no: Annotated[int, Meta(ge=1, le=100_000)]
    quantity: Annotated[float, Meta(gt=0, le=1_000_000)]


class ReturnIn(msgspec.Struct, frozen=True):
    return_id: Str64
    lines: Annotated[list[ReturnLineIn], Meta(min_length=1, max_length=1000)]


class PrintedReceiptIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the receipt prints: a sale of another store is found by this, never by its id."""

    store: Str64
    business_date: dt.date
    receipt_id: Str64
    till: Str64 | None = None  # needed only when two tills of the store printed the same number that day
    # the receipt's printed total to pay, in kopecks: optional proof that the receipt is in the cashier's hands
    # (a wrong one answers as for an unknown receipt)
    total: Annotated[int, Meta(ge=0, le=2**53 - 1)] | None = None


class ReceiptReturnIn(msgspec.Struct, frozen=True):
    original: PrintedReceiptIn
    return_id: Str64
    lines: Annotated[list[ReturnLineIn], Meta(min_length=1, max_length=1000)]


class ReturnOut(msgspec.Struct, kw_only=True):
    return_id: str
    sale_id: int
    clawed_back_points: int
    refunded_points: int
    refunded_amount: int
    unrecovered_points: int = 0  # accrued points already spent: could not be taken back
    balance_after: BalanceOut | None


class CancelOut(msgspec.Struct, kw_only=True):
    sale_id: int
    status: str
    clawed_back_points: int
    refunded_points: int
    refunded_amount: int
    unrecovered_points: int = 0
    balance_after: BalanceOut | None


class BatchIn(msgspec.Struct, frozen=True):
    # each item is a confirm body (SaleIn), decoded on its own: one malformed item is that item's
    # `rejected` result, never the whole batch's failure
    sales: Annotated[list[Any], Meta(min_length=1, max_length=500)]


class BatchItemOut(msgspec.Struct, kw_only=True):
    receipt_id: str
    status: str  # confirmed | duplicate | rejected
    sale_id: int | None = None
    problem: dict | None = None


class BatchOut(msgspec.Struct):
    results: list[BatchItemOut]


def quantity_milli(quantity: float) -> int:
    """1.5 -> 1500. More than three decimals is not a quantity a till sells."""
    milli = Decimal(repr(quantity)) * 1000
    if milli != milli.to_integral_value():
        from loyalty_core.errors import ValidationFailed

        raise ValidationFailed(f"quantity {quantity} has more than 3 decimals")
    return int(milli)
