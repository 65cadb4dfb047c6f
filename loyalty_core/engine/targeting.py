"""Who, when, where and on which goods a rule applies: schedule, targeting, line filter (data only)."""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core.engine.conditions import Condition


class HourRange(msgspec.Struct, frozen=True, kw_only=True):
    """Store-local hours, start inclusive, end exclusive: 18..21 is 18:00-20:59."""

    start: int
    end: int


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """All parts must match; an empty list means "any". Read in the STORE's time zone."""

    valid_from: dt.date | None = None
    valid_to: dt.date | None = None  # inclusive
    weekdays: list[int] = []  # 1 = Monday .. 7 = Sunday
    month_days: list[int] = []  # 1..31
    hours: list[HourRange] = []


class Targeting(msgspec.Struct, frozen=True, kw_only=True):
    """Empty lists mean "anyone". Lists are OR within a field, AND across fields."""

    tiers: list[str] = []
    segments: list[str] = []  # member is in any of them
    exclude_segments: list[str] = []
    stores: list[str] = []
    regions: list[str] = []
    formats: list[str] = []
    store_attributes: dict[str, str] = {}
    channels: list[str] = []
    payment_types: list[str] = []  # the receipt is (partly) paid with one of them
    coupon_series: list[str] = []  # a valid coupon of one of these series is presented
    coupon_codes: list[str] = []  # ... or one of these shared promo codes
    birthday_window_days: int | None = None  # 0 = on the birthday only, 3 = +-3 days
    # with birthday_window_days: days the birth date must have been known (None: the program's setting)
    birth_date_known_days: int | None = None
    registered_only: bool = False  # an emitted but unregistered card does not qualify
    members_only: bool = False  # a shopper without a card does not qualify


class LineFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which receipt lines a rule touches. Excluded goods never match, whatever the filter."""

    skus: list[str] = []
    categories: list[str] = []  # matches a line whose category or any ancestor is listed
    brands: list[str] = []
    own_brand: bool | None = None
    favourite_categories: bool = False  # the member's chosen categories for the period
    exclude_skus: list[str] = []
    exclude_categories: list[str] = []
    min_price: int | None = None  # unit price
    where: Condition | None = None  # per line, may read line.* facts
