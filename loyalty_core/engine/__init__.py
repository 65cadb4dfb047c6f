"""The pure rule engine: (basket, context, compiled program) -> priced basket + trace. No I/O.

Time is an argument (PricingContext.now); callers compile a program version once and cache it.
"""

from loyalty_core.engine.basket import (
    Basket,
    BasketLine,
    CouponInput,
    MemberInfo,
    Payment,
    PricingContext,
    StoreInfo,
)
from loyalty_core.engine.compiled import CompiledProgram, compile_program
from loyalty_core.engine.conditions import All, AnyOf, Arith, Compare, Condition, InList, Not, Var
from loyalty_core.engine.effects import (
    AccrualCap,
    AmountDiscount,
    Bogo,
    CheapestItemBonus,
    Effect,
    EventBonus,
    FixedPoints,
    IssueCoupon,
    LadderDiscount,
    MForN,
    Multiplier,
    NoAccrual,
    NoRedeem,
    NthItemFree,
    PercentDiscount,
    PercentPoints,
    PointsPerAmount,
    PointsPerItem,
    RedeemShare,
    SetComponent,
    SetPrice,
    ThresholdDiscount,
    ThresholdStep,
)
from loyalty_core.engine.errors import EngineError, RedeemLimitExceeded, RuleValidationError
from loyalty_core.engine.events import MemberEvent, evaluate_event
from loyalty_core.engine.money import format_money, split_largest_remainder
from loyalty_core.engine.pricing import price
from loyalty_core.engine.program import CounterDef, ProgramRules, ProgramSettings, Rule, RuleGroup, TierDef
from loyalty_core.engine.result import (
    AppliedRule,
    CouponResult,
    EventAward,
    LineEffect,
    PricedBasket,
    PricedLine,
    Totals,
    TraceEntry,
)
from loyalty_core.engine.targeting import HourRange, LineFilter, Schedule, Targeting
from loyalty_core.engine.validate import validate_program

__all__ = [
    "AccrualCap", "All", "AmountDiscount", "AnyOf", "AppliedRule", "Arith", "Basket", "BasketLine",
    "Bogo", "CheapestItemBonus", "Compare", "CompiledProgram", "Condition", "CounterDef", "CouponInput",
    "CouponResult", "Effect", "EngineError", "EventAward", "EventBonus", "FixedPoints", "HourRange",
    "InList", "IssueCoupon", "LadderDiscount", "LineEffect", "LineFilter", "MForN", "MemberEvent",
    "MemberInfo", "Multiplier", "NoAccrual", "NoRedeem", "Not", "NthItemFree", "Payment",
    "PercentDiscount", "PercentPoints", "PointsPerAmount", "PointsPerItem", "PricedBasket", "PricedLine",
    "PricingContext", "ProgramRules", "ProgramSettings", "RedeemLimitExceeded", "RedeemShare", "Rule",
    "RuleGroup", "RuleValidationError", "Schedule", "SetComponent", "SetPrice", "StoreInfo", "Targeting",
    "ThresholdDiscount", "ThresholdStep", "TierDef", "Totals", "TraceEntry", "Var", "compile_program",
    "evaluate_event", "format_money", "price", "split_largest_remainder", "validate_program",
]  # fmt: skip
