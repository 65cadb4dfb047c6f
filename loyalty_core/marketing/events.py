"""Member events the worker's `member_events` job makes happen (docs/marketing.md):

- first purchase: the rules' `first_purchase` event for the member; its `referrer_points` go to whoever referred
  them, once per friend, never when the friend is the referrer under another name (same customer, phone, e-mail,
  a card both held or used, a phone or wallet both signed in on);
- birthday: the `birthday` event on the day, in the program's time zone, once a year, when the birth date has been
  known for settings.birth_date_known_days (points may be `valid_days` only);
- reactivation: the `inactive` event once per quiet spell, after settings.reactivation_after_days without a purchase;
- tier up: the `tier_up` event once per member and tier reached (above the lowest), after the writer's
  `tier_changed` message said so;
- tier at risk: a message (no points) when the spend that stays in the 12-month window settings.tier_at_risk_days
  ahead is below the member's tier, once per tier and month;
- points about to burn: the settle job's `points_expiring` message (loyalty_core/messaging/notifications.py).

Exactly once: each occurrence is claimed in `member_event` (unique membership, kind, occurrence) in the transaction
that writes its points through the ledger writer (Plan -> writer.write), so a repeated or concurrent run, or a
crash, never pays twice. Members whose event earns nothing are not claimed (a rule published later still finds
them within the catch-up window).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core import db
from loyalty_core.engine import MemberEvent, evaluate_event
from loyalty_core.engine.basket import MemberInfo, PricingContext, StoreInfo
from loyalty_core.engine.effects import EventBonus
from loyalty_core.ledger import ops, writer
from loyalty_core.ledger.posting import Plan
from loyalty_core.marketing import event_queries as q
from loyalty_core.piccolo_conf import DB

log = logging.getLogger("kopilka.member_events")
CATCH_UP = dt.timedelta(days=7)  # an event the job did not see in time (worker down) still happens this late


class EventsReport(msgspec.Struct):
    first_purchases: int = 0
    referrers_rewarded: int = 0
    referrals_refused: int = 0  # the friend is the referrer under another name
    birthdays: int = 0
    reactivations: int = 0
    tier_ups: int = 0
    tier_at_risk: int = 0
    points: int = 0
    failed_programs: int = 0

    def summary(self) -> str:
        return (f"{self.first_purchases} first purchases ({self.referrers_rewarded} referrers rewarded, "
                f"{self.referrals_refused} refused as the same person), {self.birthdays} birthdays, "
                f"{self.reactivations} reactivations, {self.tier_ups} tier-up bonuses, {self.tier_at_risk} tier-at-risk "
                f"messages; {self.points} points"
                + (f"; {self.failed_programs} programs failed (see the log)" if self.failed_programs else ""))


class Candidate(msgspec.Struct, frozen=True):
    membership: int
    customer: int | None
    card: int | None
    referred_by: int | None
    tier_code: str | None
    segments: list[str]
    birth_date: dt.date | None
    birth_date_set_at: dt.datetime | None
    joined_at: dt.datetime
    last_purchase_at: dt.datetime | None
    purchases_count: int
    occurrence: str
    days_inactive: int | None = None


class ProgramFacts(msgspec.Struct, frozen=True):
    id: int
    code: str
    timezone: str
    rules_version: int


async def run_member_events(now: dt.datetime, progress: Callable[[str], None] | None = None) -> EventsReport:
    """Every program's member events due at `now`; safe to repeat (each occurrence is claimed once)."""
    from loyalty_core.rules.programs import compiled_program

    report = EventsReport()
    for row in await db.fetch(q.PROGRAMS):
        program = msgspec.convert(dict(row), ProgramFacts)
        try:
            compiled: Any = await compiled_program(program.id, program.rules_version)
            await _first_purchases(program, compiled, now, report)
            await _birthdays(program, compiled, now, report)
            await _reactivations(program, compiled, now, report)
            await _tier_ups(program, compiled, now, report)
            rows = await db.fetch(q.TIER_AT_RISK, program.id, now, compiled.settings.tier_at_risk_days,
                                  program.timezone)
            report.tier_at_risk += len(rows)
        except Exception:  # one program's failure (its rules, a member's row) does not stop the others'
            log.exception("member events of program %s failed; the next run tries again", program.code)
            report.failed_programs += 1
        if progress is not None:
            progress(program.code)
    return report


async def _candidates(sql: str, *args: object) -> list[Candidate]:
    return [msgspec.convert(dict(r), Candidate) for r in await db.fetch(sql, *args)]


async def _first_purchases(program: ProgramFacts, compiled: Any, now: dt.datetime, report: EventsReport) -> None:
    for cand in await _candidates(q.FIRST_PURCHASE_CANDIDATES, program.id, now, now - CATCH_UP):
        referrer = cand.referred_by
        refused = False
        if referrer is not None:
            found = (await db.fetch(q.SAME_PERSON, cand.membership, referrer))[0]
            if found["same"]:
                referrer, refused = None, True
            elif not found["referrer_active"]:  # closed or deleted since: nobody to pay
                referrer = None
        awarded = await _occur(program, compiled, cand, "first_purchase", MemberEvent(kind="first_purchase", at=now),
                               now, referrer=referrer, refused_referrer=cand.referred_by if refused else None)
        if awarded is None:
            continue
        report.first_purchases += 1
        report.points += awarded[0] + awarded[1]
        report.referrers_rewarded += awarded[1] > 0
        report.referrals_refused += refused


async def _birthdays(program: ProgramFacts, compiled: Any, now: dt.datetime, report: EventsReport) -> None:
    today = now.astimezone(ZoneInfo(program.timezone)).date()
    leap_day_today = today.month == 2 and today.day == 28 and not _leap(today.year)
    for cand in await _candidates(q.BIRTHDAY_CANDIDATES, program.id, today, now,
                                  compiled.settings.birth_date_known_days, leap_day_today):
        awarded = await _occur(program, compiled, cand, "birthday", MemberEvent(kind="birthday", at=now), now)
        if awarded is not None:
            report.birthdays += 1
            report.points += awarded[0]


async def _reactivations(program: ProgramFacts, compiled: Any, now: dt.datetime, report: EventsReport) -> None:
    days = compiled.settings.reactivation_after_days
    for cand in await _candidates(q.INACTIVE_CANDIDATES, program.id, now, days, CATCH_UP.days, program.timezone):
        event = MemberEvent(kind="inactive", at=now, days_inactive=cand.days_inactive)
        awarded = await _occur(program, compiled, cand, "inactive", event, now)
        if awarded is not None:
            report.reactivations += 1
            report.points += awarded[0]


async def _tier_ups(program: ProgramFacts, compiled: Any, now: dt.datetime, report: EventsReport) -> None:
    for cand in await _candidates(q.TIER_UP_CANDIDATES, program.id, now, now - CATCH_UP):
        awarded = await _occur(program, compiled, cand, "tier_up", MemberEvent(kind="tier_up", at=now), now)
        if awarded is not None:
            report.tier_ups += 1
            report.points += awarded[0]


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


class _NothingEarned(Exception):
    """Rolls the claim back: an event that earns nothing is not spent."""


async def _occur(program: ProgramFacts, compiled: Any, cand: Candidate, kind: str, event: MemberEvent,
                 now: dt.datetime, *, referrer: int | None = None,
                 refused_referrer: int | None = None) -> tuple[int, int] | None:
    """Claim the occurrence and write what it earns, in one transaction; None when it was claimed before or earns
    nothing. Returns (the member's points, the referrer's points)."""
    ctx = PricingContext(now=now, store=StoreInfo(code="", timezone=program.timezone), channel="app",
                         member=_member_info(cand, referrer), lang=compiled.settings.language)
    awards = evaluate_event(event, ctx, compiled)
    if not awards:
        return None
    effects = {r.code: r.effect for group in compiled.stages["event"] for r in group.rules}
    own = sum(a.points for a in awards if int(a.membership_id) == cand.membership)
    detail: dict[str, Any] = {"rules": sorted({a.rule for a in awards})}
    if refused_referrer is not None:
        detail["referrer_refused"] = refused_referrer
    try:
        async with DB.transaction():
            if not await db.fetch(q.CLAIM, program.id, cand.membership, kind, cand.occurrence, now,
                                  msgspec.json.encode(detail).decode(), own):
                return None
            friend = 0
            for award in awards:
                target = int(award.membership_id)
                if target != cand.membership:  # the referrer's side: once per friend, whatever the rules say
                    if friend or not await db.fetch(
                            q.CLAIM, program.id, target, "referral_referrer", f"friend:{cand.membership}", now,
                            msgspec.json.encode({"friend": cand.membership, "rule": award.rule}).decode(),
                            award.points):
                        continue
                    friend = award.points
                if award.issue_coupon:
                    from loyalty_core.coupons.codes import issue_personal_coupon

                    await issue_personal_coupon(award.issue_coupon, target)
                if award.points > 0:
                    effect = effects.get(award.rule)
                    valid_days = effect.valid_days if isinstance(effect, EventBonus) else None
                    await _accrue(target, award.points, kind if target == cand.membership else "referral",
                                  award.explanation, award.rule, valid_days,
                                  compiled.settings.expiry_days, program.timezone, now)
            if not own and not friend and not any(a.issue_coupon for a in awards):
                raise _NothingEarned
            return own, friend
    except _NothingEarned:
        return None


def _member_info(cand: Candidate, referrer: int | None) -> MemberInfo:
    return MemberInfo(membership_id=str(cand.membership), tier_code=cand.tier_code, segments=cand.segments,
                      birth_date=cand.birth_date, birth_date_known_since=cand.birth_date_set_at,
                      purchases_count=cand.purchases_count, last_purchase_at=cand.last_purchase_at,
                      joined_at=cand.joined_at, referred_by=str(referrer) if referrer else None)


async def _accrue(membership: int, points: int, kind: str, explanation: str, rule: str, valid_days: int | None,
                  expiry_days: int, timezone: str, now: dt.datetime) -> None:
    """The award through the ledger's one writer: a lot active at once, burning after `valid_days` (else the
    program's expiry), and its message, one posting under the account's lock."""
    account = await ops.ensure_account(membership)
    view = (await ops.load_views([account], lock="lock", holder=True))[0]
    await ops.apply_due(view, now)
    days = valid_days or expiry_days
    expires = now + dt.timedelta(days=days) if days else None
    plan = Plan(view, now)
    plan.accrue(points, now, kind="accrue", source="event", activates_at=now, expires_at=expires, reason=explanation)
    payload: dict[str, Any] = {"points": points, "event": kind, "rule": rule}
    if expires is not None:
        payload["expires_on"] = expires.astimezone(ZoneInfo(timezone)).date().isoformat()
    if view.customer is not None:
        plan.message("event_bonus", payload, customer=view.customer, card=view.card)
    plan.pass_update(view.card)
    await writer.write(plan.posting(), view=view)
