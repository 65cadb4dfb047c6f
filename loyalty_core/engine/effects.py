"""What a rule does when it fires: a msgspec tagged union, tag field "kind".

Each effect belongs to one stage (see STAGE_OF). Money in minor units, rates in basis points
(10000 = 100 %), multipliers as factor in basis points (100000 = x10).
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec

from loyalty_core.engine.targeting import LineFilter


class _Effect(msgspec.Struct, tag_field="kind", frozen=True, kw_only=True):
    pass


# --- discount stage -------------------------------------------------------------------


class PercentDiscount(_Effect, tag="percent_discount"):
    """bp off every eligible line (a coupon, a tier discount, a category promo)."""

    bp: int
    max_discount: int | None = None  # money cap for the whole receipt


class AmountDiscount(_Effect, tag="amount_discount"):
    """A fixed sum off the eligible lines, spread over them in proportion to their amounts."""

    amount: int


class ThresholdStep(msgspec.Struct, frozen=True, kw_only=True):
    min_amount: int
    bp: int


class ThresholdDiscount(_Effect, tag="threshold_discount"):
    """The highest step the eligible amount reaches: 5 % from 3 000 RUB, 10 % from 5 000 RUB."""

    steps: list[ThresholdStep]


class LadderDiscount(_Effect, tag="ladder_discount"):
    """The k-th eligible item (receipt order) gets steps_bp[k-1]; the last step repeats."""

    steps_bp: list[int]


class NthItemFree(_Effect, tag="nth_item_free"):
    """Every n-th item free; items ranked dearest first, so the free one is the cheapest of each n."""

    n: int


class MForN(_Effect, tag="m_for_n"):
    """Take m, pay for n (3 for 2): in each group of m items, the m-n cheapest are free."""

    m: int
    n: int


class Bogo(_Effect, tag="bogo"):
    """Buy `buy_quantity` of `buy`, get `get_quantity` of `get` at get_bp off (10000 = free)."""

    buy: LineFilter
    get: LineFilter
    buy_quantity: int = 1
    get_quantity: int = 1
    get_bp: int = 10_000


class SetComponent(msgspec.Struct, frozen=True, kw_only=True):
    lines: LineFilter
    quantity: int = 1


class SetPrice(_Effect, tag="set_price"):
    """A complete set (e.g. burger + fries + drink) costs `price`; repeats while sets are complete."""

    components: list[SetComponent]
    price: int


# --- limits stage ----------------------------------------------------------------------


class RedeemShare(_Effect, tag="redeem_share"):
    """Eligible lines may be paid with points up to max_share_bp (overrides the program's share)."""

    max_share_bp: int


class NoRedeem(_Effect, tag="no_redeem"):
    """Eligible lines cannot be paid with points."""


class NoAccrual(_Effect, tag="no_accrual"):
    """Eligible lines earn no points (e.g. goods already sold at a promo price)."""


class AccrualCap(_Effect, tag="accrual_cap"):
    """At most this many points per receipt and/or per member per day (all rules together)."""

    per_receipt: int | None = None
    per_day: int | None = None


# --- accrual stage ---------------------------------------------------------------------


class PercentPoints(_Effect, tag="percent_points"):
    """bp of what the eligible lines are paid with money, in points."""

    bp: int
    max_points: int | None = None


class PointsPerItem(_Effect, tag="points_per_item"):
    """Fixed points per piece of an eligible line (a weighed line counts as one piece)."""

    points: int
    max_points: int | None = None


class PointsPerAmount(_Effect, tag="points_per_amount"):
    """`points` for each full `per_amount` paid with money on the eligible lines."""

    points: int
    per_amount: int
    max_points: int | None = None


class Multiplier(_Effect, tag="multiplier"):
    """Multiplies the tier's base points on the eligible lines (x10 adds 9 times the base)."""

    factor_bp: int
    max_points: int | None = None


class CheapestItemBonus(_Effect, tag="cheapest_item_bonus"):
    """Extra bp on the cheapest eligible line (by unit price; earlier line on a tie)."""

    bp: int
    max_points: int | None = None


class FixedPoints(_Effect, tag="fixed_points"):
    """A fixed bonus once per receipt (first purchase, every 5th purchase, welcome back)."""

    points: int


# --- any stage -------------------------------------------------------------------------


class IssueCoupon(_Effect, tag="issue_coupon"):
    """Ask the caller to issue a personal coupon of this series to the member."""

    series: str


# --- events (not driven by a basket) ---------------------------------------------------

EventKind = Literal["registered", "first_purchase", "birthday", "inactive", "tier_up"]


class EventBonus(_Effect, tag="event_bonus"):
    """Points on a member event; referrer_points go to whoever referred the member (on the friend's first
    purchase only). `valid_days`: the points burn this many days after the award (None: the program's expiry)."""

    event: EventKind
    points: int = 0
    referrer_points: int = 0
    issue_coupon: str | None = None
    valid_days: int | None = None


Effect = Union[
    PercentDiscount,
    AmountDiscount,
    ThresholdDiscount,
    LadderDiscount,
    NthItemFree,
    MForN,
    Bogo,
    SetPrice,
    RedeemShare,
    NoRedeem,
    NoAccrual,
    AccrualCap,
    PercentPoints,
    PointsPerItem,
    PointsPerAmount,
    Multiplier,
    CheapestItemBonus,
    FixedPoints,
    IssueCoupon,
    EventBonus,
]

DISCOUNT_EFFECTS = (
    PercentDiscount,
    AmountDiscount,
    ThresholdDiscount,
    LadderDiscount,
    NthItemFree,
    MForN,
    Bogo,
    SetPrice,
)
LIMIT_EFFECTS = (RedeemShare, NoRedeem, NoAccrual, AccrualCap)
ACCRUAL_EFFECTS = (PercentPoints, PointsPerItem, PointsPerAmount, Multiplier, CheapestItemBonus, FixedPoints)
EVENT_EFFECTS = (EventBonus,)

STAGE_EFFECTS = {
    "discount": DISCOUNT_EFFECTS,
    "limits": LIMIT_EFFECTS,
    "accrual": ACCRUAL_EFFECTS,
    "event": EVENT_EFFECTS,
}


def effect_kind(effect: Effect) -> str:
    return type(effect).__struct_config__.tag
