"""What the finance reports return: msgspec Structs, points as signed integers (as they move the liability),
money in minor units at the program's point value."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

Grain = Literal["day", "week", "month"]


class ProgramFacts(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    code: str
    name: str
    timezone: str
    currency: str = "RUB"
    point_value_minor: int = 100  # the live rules' settings.point_value_minor: what one point pays for

    def money(self, points: int) -> int:
        return points * self.point_value_minor


class StoreRef(msgspec.Struct, frozen=True):
    id: int
    code: str
    name: str


class Period(msgspec.Struct, frozen=True, kw_only=True):
    since: dt.date
    until: dt.date  # inclusive
    grain: Grain = "day"


class Movement(msgspec.Struct, frozen=True, kw_only=True):
    """Points per kind of movement in one period, signed as they change the liability; `net` is their sum."""

    period: dt.date
    accrued: int = 0  # sales, welcome and event awards
    redeemed: int = 0  # paid with points (negative)
    expired: int = 0  # burnt at the lot's end of life (negative)
    adjusted: int = 0  # manual adjustments, net of write-offs
    clawed_back: int = 0  # a return took back what its sale accrued (negative)
    refunded: int = 0  # a return gave back the points its sale spent
    imported: int = 0  # opening balances from a legacy system
    debt_repaid: int = 0  # points that paid a member's debt (negative)
    other: int = 0  # merges between accounts (net zero for a program) and any future kind
    net: int = 0


class LiabilityPoint(msgspec.Struct, frozen=True, kw_only=True):
    """The liability at the end of a period (or of the range, whichever is earlier)."""

    period: dt.date
    active: int
    pending: int

    @property
    def total(self) -> int:
        return self.active + self.pending


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    """The aggregate's whole history against the account balances, both read in one refresh's snapshot."""

    as_of: dt.datetime
    accounts: int
    accounts_active: int
    accounts_pending: int
    accounts_debt: int
    days_active: int
    days_pending: int

    @property
    def difference(self) -> int:
        return (self.days_active + self.days_pending) - (self.accounts_active + self.accounts_pending)


class Liability(msgspec.Struct, frozen=True, kw_only=True):
    opening: LiabilityPoint  # the day before the range
    points: list[LiabilityPoint]
    reconciliation: Reconciliation | None  # None: the aggregate was never refreshed


class Breakage(msgspec.Struct, frozen=True, kw_only=True):
    period: dt.date
    accrued: int
    expired: int  # as a positive number of points

    @property
    def rate_bp(self) -> int | None:
        """expired / accrued in basis points (10 000 = 100 %), rounded half up; None when nothing was accrued."""
        if self.accrued <= 0:
            return None
        return (self.expired * 20_000 + self.accrued) // (2 * self.accrued)


class AgingBucket(msgspec.Struct, frozen=True, kw_only=True):
    expires_month: dt.date | None  # None: never expires
    active: int
    pending: int
    lots: int
    as_of: dt.datetime

    @property
    def total(self) -> int:
        return self.active + self.pending


class StoreTotals(msgspec.Struct, frozen=True, kw_only=True):
    store_id: int  # 0: movements without a sale (adjustments, welcome awards, imports, expiry)
    code: str
    name: str
    accrued: int
    redeemed: int
    clawed_back: int
    refunded: int
    net: int


# --- the program reports (loyalty_core/reports/program.py) --------------------------------------------------


def share_bp(part: int, whole: int) -> int | None:
    """part / whole in basis points (10 000 = 100 %), rounded half up; None when the whole is zero."""
    if whole <= 0:
        return None
    return (part * 20_000 + whole) // (2 * whole)


class TierRef(msgspec.Struct, frozen=True):
    id: int
    code: str
    name: str
    rank: int


class RuleCost(msgspec.Struct, frozen=True, kw_only=True):
    """What one rule gave in one period (period None: the whole range): points accrued on sales with a card,
    discounts in minor units, and on how many sales it fired."""

    period: dt.date | None
    rule: str
    name: str
    points: int
    discount: int
    sales: int


class CostPerRule(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[RuleCost]  # per period and rule
    totals: list[RuleCost]  # per rule over the range, the costliest first
    ledger_accrued: int  # what the ledger accrued on sales in the range: the rules' points add up to it


class StoreShare(msgspec.Struct, frozen=True, kw_only=True):
    store_id: int
    code: str
    name: str
    receipts: int
    carded_receipts: int
    amount: int
    carded_amount: int

    @property
    def receipts_bp(self) -> int | None:
        return share_bp(self.carded_receipts, self.receipts)

    @property
    def amount_bp(self) -> int | None:
        return share_bp(self.carded_amount, self.amount)


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """Members who bought in a period against the members registered at its end; new registrations by channel."""

    period: dt.date
    active: int
    registered: int
    new: dict[str, int]

    @property
    def active_bp(self) -> int | None:
        return share_bp(self.active, self.registered)


class TierCount(msgspec.Struct, frozen=True, kw_only=True):
    period: dt.date
    counted_on: dt.date  # the day of the last count in the period
    members: dict[int, int]  # tier id (0: none) -> members


class TierMoves(msgspec.Struct, frozen=True, kw_only=True):
    period: dt.date
    up: dict[str, int]  # tier code reached -> moves
    down: dict[str, int]


class CouponRedemption(msgspec.Struct, frozen=True, kw_only=True):
    series_id: int
    code: str
    name: str
    personal: bool
    issued: int
    redemptions: int

    @property
    def rate_bp(self) -> int | None:
        """Redemptions per code issued; None for a shared promo code (one code, any number of uses)."""
        return share_bp(self.redemptions, self.issued) if self.personal else None
