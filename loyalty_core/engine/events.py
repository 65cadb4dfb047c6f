"""Member events that are not a basket: registration, first purchase, birthday, long absence.

The services call evaluate_event when the event happens (register_member; confirm_sale for a
member's first purchase; a daily job for birthdays and for members inactive N days) and write
the awards to the ledger. Referral: both sides are rewarded on the referred member's FIRST
PURCHASE, not on registration, so a farm of fake sign-ups earns nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from loyalty_core.engine.basket import Basket, PricingContext
from loyalty_core.engine.compiled import CompiledProgram
from loyalty_core.engine.effects import EventBonus
from loyalty_core.engine.explain import event_award, referral_award
from loyalty_core.engine.facts import basket_facts, line_infos
from loyalty_core.engine.language import words_for
from loyalty_core.engine.result import EventAward
from loyalty_core.engine.run import Run


# what makes each event kind happen: an event rule of a kind missing here would never fire (the validator refuses it)
TRIGGERS: dict[str, str] = {
    "registered": "registration (members.identity.register_member)",
    "first_purchase": "the member_events job: the member's first purchase (the referral's both sides)",
    "birthday": "the member_events job: on the member's birthday, in the program's time zone",
    "inactive": "the member_events job: settings.reactivation_after_days without a purchase",
    "tier_up": "the member_events job: the member reached a tier above the lowest (once per tier)",
}


class MemberEvent(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["registered", "first_purchase", "birthday", "inactive", "tier_up"]
    at: dt.datetime
    days_inactive: int | None = None  # for "inactive": how long since the last purchase


def evaluate_event(
    event: MemberEvent, ctx: PricingContext, program: CompiledProgram, *, lang: str | None = None
) -> list[EventAward]:
    """Awards for one event. ctx.member is the member the event is about (required).
    Explanations are in `lang` if given, else in ctx.lang (as in price())."""
    member = ctx.member
    if member is None:
        return []
    words = words_for(lang or ctx.lang, program.settings.currency)
    run = Run([], basket_facts(Basket(lines=[]), ctx, program, line_infos(Basket(lines=[]), program)), words, [])
    run.facts["event.days_inactive"] = event.days_inactive
    awards: list[EventAward] = []
    for group in program.stages["event"]:
        firing = [
            r
            for r in run.firing_rules(group, "event")
            if isinstance(r.effect, EventBonus) and r.effect.event == event.kind
        ]
        if group.mode != "stack":
            firing = (
                sorted(firing, key=lambda r: -(r.effect.points + r.effect.referrer_points))[:1]
                if group.mode == "best"
                else firing[:1]
            )
        for rule in firing:
            effect = rule.effect
            if effect.points or effect.issue_coupon:
                awards.append(
                    EventAward(
                        membership_id=member.membership_id,
                        points=effect.points,
                        rule=rule.code,
                        name=rule.name,
                        explanation=event_award(rule.name, effect.points, words),
                        issue_coupon=effect.issue_coupon,
                    )
                )
            if effect.referrer_points and member.referred_by:
                awards.append(
                    EventAward(
                        membership_id=member.referred_by,
                        points=effect.referrer_points,
                        rule=rule.code,
                        name=rule.name,
                        explanation=referral_award(rule.name, effect.referrer_points, words),
                    )
                )
    return awards
