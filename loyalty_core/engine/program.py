"""The rules document of one program version: settings, tiers, rule groups and rules.

One msgspec document, JSON round-trippable, stored per version; a sale records the version
it was priced with so a later change never alters a confirmed sale.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from loyalty_core.engine.conditions import Condition
from loyalty_core.engine.effects import Effect
from loyalty_core.engine.targeting import LineFilter, Schedule, Targeting

Stage = Literal["discount", "limits", "accrual", "event"]
STAGE_ORDER: dict[str, int] = {"discount": 0, "limits": 1, "accrual": 2, "event": 3}

Mode = Literal["stack", "first", "best"]


class TierDef(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    rank: int  # higher is better
    threshold_spend_minor: int  # spend (minor units) over the qualifying period to reach it
    accrual_bp: int  # base points on every purchase, built in: no rule needed
    names: dict[str, str] = {}  # per language for the shopper's website; `name` when a language is missing


class CounterDef(msgspec.Struct, frozen=True, kw_only=True):
    """A purchase counter the caller computes and passes as member.purchases_in_period[name]."""

    name: str
    period: Literal["day", "week", "month", "year", "days"] = "month"  # calendar periods
    days: int | None = None  # for period "days": rolling window


class ProgramSettings(msgspec.Struct, frozen=True, kw_only=True):
    currency: str = "RUB"
    point_value_minor: int = 100  # kopecks one point pays for
    max_redeem_share_bp: int = 3000  # share of a receipt payable with points
    anonymous_can_redeem: bool = False  # an emitted card nobody registered yet
    tiers: list[TierDef] = []
    default_tier: str | None = None  # for a member whose tier_code is unknown; else the lowest rank
    excluded_skus: list[str] = []  # no discount, no points, no payment with points
    excluded_categories: list[str] = []
    # caps a till cannot exceed whatever it reports (None: no cap, only if an operator says so explicitly)
    max_accrual_per_receipt: int | None = 10_000
    max_accrual_per_day: int | None = 30_000
    counters: list[CounterDef] = []
    pending_days: int = 14  # ledger: points activate after the return window
    sale_max_age_days: int = 7  # a live till's sale (calculate, confirm) may be this old
    offline_sale_max_age_days: int = 30  # a sale uploaded in a batch by a till that was offline
    expiry_days: int = 365  # ledger: a lot burns this long after it activates
    # ledger: accrued points a return cannot take back (already spent) become a debt paid from the next
    # refunds and accruals ("carry"), or are written off at once ("write_off")
    return_debt: Literal["carry", "write_off"] = "carry"
    favourite_categories_count: int = 3  # how many favourite categories a shopper picks per period
    # a birthday rule fires only when the birth date has been known this many days (no "birthday on demand");
    # a rule's target.birth_date_known_days overrides it
    birth_date_known_days: int = 30
    language: str = "ru"  # of the explanations the till and the shopper read: ru | en
    # member events (loyalty_core/marketing/events.py): an "inactive" event after this many days without a purchase,
    # a "tier at risk" message when the spend that stays in the window this many days ahead is below the tier's
    reactivation_after_days: int = 90
    tier_at_risk_days: int = 30
    expiry_notice_days: int = 7  # the settle job's "points about to burn" message comes this many days before


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    code: str  # stable id, shown in the trace and stored with the sale
    name: str  # shown to cashier and shopper
    effect: Effect
    # the shopper's website shows names[its language] (then `name`); descriptions say what you get, per language
    names: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    priority: int = 0  # higher first
    active: bool = True
    schedule: Schedule | None = None
    target: Targeting | None = None
    condition: Condition | None = None
    lines: LineFilter | None = None  # None = every line that takes part in loyalty


class RuleGroup(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    stage: Stage
    mode: Mode = "stack"  # stack all / first by priority / best for the customer
    cascade: bool = False  # discounts only: each next one on what the previous left
    priority: int = 0  # groups of a stage run higher first
    active: bool = True
    target: Targeting | None = None  # base condition of the group
    condition: Condition | None = None
    rules: list[Rule] = []


class ProgramRules(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 1
    settings: ProgramSettings = ProgramSettings()
    groups: list[RuleGroup] = []
