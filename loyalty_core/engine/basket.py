"""What the till service hands the engine: the basket and who / where / when it is priced for."""

from __future__ import annotations

import datetime as dt

import msgspec


class BasketLine(msgspec.Struct, frozen=True, kw_only=True):
    line_no: int
    sku: str
    quantity_milli: int  # 1.5 kg -> 1500, 2 pieces -> 2000
    price: int  # minor units per unit
    amount: int  # line total before loyalty, as the till computed it
    category_codes: list[str] = []  # the product's category and all its ancestors
    brand: str | None = None
    own_brand: bool = False
    excluded: bool = False  # tobacco, alcohol, ...: no discount, no points, no payment with points


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    type: str  # cash, bank_card, partner_bank_card, sbp, ...
    amount: int


class CouponInput(msgspec.Struct, frozen=True, kw_only=True):
    """The caller looked the code up; the engine decides which rules it unlocks."""

    code: str
    series: str | None = None
    valid: bool = True
    reason: str | None = None  # why not valid: expired, used up, not this member's
    personal: bool = False


class Basket(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[BasketLine]
    payments: list[Payment] = []
    coupons: list[CouponInput] = []
    redeem_points: int = 0


class StoreInfo(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    region: str | None = None
    format: str | None = None
    timezone: str = "Europe/Moscow"  # IANA; schedules are read in this zone
    attributes: dict[str, str] = {}


class MemberInfo(msgspec.Struct, frozen=True, kw_only=True):
    membership_id: str
    registered: bool = True
    tier_code: str | None = None
    segments: list[str] = []
    birth_date: dt.date | None = None
    # when the birth date became known (set by the shopper or corrected by support); None: not tracked
    birth_date_known_since: dt.datetime | None = None
    favourite_categories: list[str] = []
    purchases_count: int = 0  # confirmed purchases before this one
    purchases_in_period: dict[str, int] = {}  # counters named in settings.counters
    last_purchase_at: dt.datetime | None = None
    joined_at: dt.datetime | None = None
    referred_by: str | None = None  # membership id of the referrer
    attributes: dict[str, int | str] = {}


class PricingContext(msgspec.Struct, frozen=True, kw_only=True):
    now: dt.datetime  # tz-aware; the engine has no clock
    store: StoreInfo
    channel: str = "store"  # store | online | app | call_center
    member: MemberInfo | None = None  # None = no card
    balance_active: int = 0  # points the member can spend now
    accrued_today: int = 0  # points already accrued today, for per-day limits
    lang: str = "en"  # explanations' language: "ru" or "en" (the program's or the store's); price(lang=) overrides
