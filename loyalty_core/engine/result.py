"""What the engine returns: per-line numbers that add up exactly, the applied rules, the trace."""

from __future__ import annotations

import msgspec


class PricedLine(msgspec.Struct, frozen=True, kw_only=True):
    line_no: int
    amount: int
    discount: int
    redeemed_points: int
    redeemed_amount: int
    to_pay: int  # amount - discount - redeemed_amount
    accrued_points: int


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    amount: int
    discount: int
    redeemed_points: int
    redeemed_amount: int
    to_pay: int
    accrued_points: int


class LineEffect(msgspec.Struct, frozen=True, kw_only=True):
    """What one rule did to one line, with the sentence shown for that line."""

    line_no: int
    discount: int = 0
    points: int = 0
    explanation: str = ""


class AppliedRule(msgspec.Struct, frozen=True, kw_only=True):
    rule: str  # rule code ("tier" for the built-in tier accrual)
    name: str
    effect: str  # effect kind
    lines: list[int]
    explanation: str
    points: int = 0
    discount: int = 0
    details: list[LineEffect] = []


class CouponResult(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    status: str  # applied | rejected
    reason: str | None = None


class TraceEntry(msgspec.Struct, frozen=True, kw_only=True):
    stage: str
    group: str
    rule: str
    fired: bool
    reason: str


class PricedBasket(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[PricedLine]
    totals: Totals
    max_redeem_points: int
    applied: list[AppliedRule]
    coupons: list[CouponResult]
    issued_coupons: list[str]
    trace: list[TraceEntry]
    rules_version: int
    language: str = "ru"  # of the explanations, trace and coupon reasons: the run's language


class EventAward(msgspec.Struct, frozen=True, kw_only=True):
    """Points (and maybe a coupon) a member event earns; the caller writes them to the ledger."""

    membership_id: str
    points: int
    rule: str
    name: str
    explanation: str
    issue_coupon: str | None = None
