"""Replay: what a draft would have given over the last N days of real receipts, against what was given.

Reads only (no ledger, no sale is touched). The confirmed sales of the period (newest first, at most
`MAX_RECEIPTS`; the page says when the cap cut the period) are loaded with their lines in a few set-based
statements, then priced in time order by the engine twice: under the live rules and under the draft. Each receipt
gets the basket it had (lines with today's catalog facts, the coupons it used, the points it paid with, its store,
channel and moment) and the member as far as it can be rebuilt (tier, segments, birth date as they are today; the
purchase count at the time from the sales after it). Not rebuilt: payment types, period counters, favourite
categories. The difference between "given" and "live, replayed" is therefore what the replay cannot reproduce;
"draft - live" is the draft's own effect. Totals, per rule, and per day.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import msgspec

from loyalty_core.engine import (
    Basket,
    BasketLine,
    CompiledProgram,
    CouponInput,
    MemberInfo,
    PricingContext,
    RedeemLimitExceeded,
    StoreInfo,
    compile_program,
    price,
)
from loyalty_core.errors import RateLimited, ValidationFailed
from loyalty_core.rules import admin as rules_admin
from loyalty_core.rules import programs
from loyalty_core.tables import Sale

MAX_DAYS = 92
MAX_RECEIPTS = 5_000  # bounded work: one replay prices at most 2 x this many receipts
_RUNNING = threading.BoundedSemaphore(1)  # one replay at a time per worker process


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    sale_id: int
    occurred_at: dt.datetime
    day: dt.date  # in the program's time zone
    store: StoreInfo
    channel: str
    member: MemberInfo | None
    lines: list[BasketLine]
    coupons: list[CouponInput]
    redeem_points: int
    points: int  # what the sale accrued
    discount: int
    applied: list[dict[str, Any]]  # the sale's applied rules as it answered the till


class Sums(msgspec.Struct, kw_only=True):
    points: int = 0
    discount: int = 0
    receipts: int = 0  # receipts where it gave something


class RuleLine(msgspec.Struct, kw_only=True):
    rule: str
    name: str
    given: Sums
    live: Sums
    draft: Sums


class DayLine(msgspec.Struct, kw_only=True):
    day: dt.date
    receipts: int
    given: Sums
    live: Sums
    draft: Sums


class ReplayOut(msgspec.Struct, kw_only=True):
    days: int
    since: dt.datetime
    until: dt.datetime
    receipts: int  # replayed
    cap: int
    capped: bool  # the period had more receipts than the cap: the newest `cap` were replayed
    skipped: int  # receipts the engine could not price under one of the versions
    given: Sums
    live: Sums
    draft: Sums
    by_rule: list[RuleLine]
    by_day: list[DayLine]
    elapsed_ms: int


# --- loading (set-based: a few statements whatever the number of receipts) ------------------------


async def load_receipts(program_id: int, timezone: str, since: dt.datetime, until: dt.datetime,
                        cap: int) -> tuple[list[Receipt], bool]:
    sales = await Sale.raw(
        "SELECT s.id, s.occurred_at, s.store, s.channel, s.membership, s.redeemed_points, s.accrued_points, "
        "s.discount, COALESCE(s.response->'applied', '[]'::jsonb) AS applied, "
        "COALESCE(s.response->'coupons', '[]'::jsonb) AS coupons "
        "FROM sale s LEFT JOIN membership m ON m.id = s.membership JOIN store st ON st.id = s.store "
        "WHERE s.status = 'confirmed' AND s.occurred_at >= {} AND s.occurred_at < {} "
        # a sale without a member belongs to its store's program, else to the first program (as the till priced it)
        "AND COALESCE(m.program, st.program, (SELECT min(id) FROM program)) = {} "
        "ORDER BY s.occurred_at DESC, s.id DESC LIMIT {}",
        since, until, program_id, cap + 1)
    capped = len(sales) > cap
    sales = list(reversed(sales[:cap]))  # time order: the purchase count and the day's accrual build up
    if not sales:
        return [], capped
    ids = [s["id"] for s in sales]
    lines = await Sale.raw("SELECT sale, line_no, sku, quantity_milli, price, amount FROM sale_line "
                           "WHERE sale = ANY({}::bigint[]) ORDER BY sale, line_no", ids)
    catalog = {r["sku"]: r for r in await Sale.raw(
        "SELECT p.sku, p.excluded, COALESCE(c.path, ARRAY[]::varchar[]) AS path, b.code AS brand, "
        "COALESCE(b.own_brand, false) AS own_brand FROM product p LEFT JOIN category c ON c.id = p.category "
        "LEFT JOIN brand b ON b.id = p.brand WHERE p.sku = ANY({}::varchar[])", sorted({r["sku"] for r in lines}))}
    stores = {r["id"]: r for r in await Sale.raw(
        "SELECT id, code, region, format, timezone, attributes FROM store WHERE id = ANY({}::int[])",
        sorted({s["store"] for s in sales}))}
    members = {r["id"]: r for r in await Sale.raw(
        "SELECT m.id, m.customer IS NOT NULL AS registered, t.code AS tier, m.segments, c.birth_date, "
        "c.birth_date_set_at, m.joined_at, m.purchases_count, m.referred_by FROM membership m "
        "LEFT JOIN tier t ON t.id = m.tier LEFT JOIN customer c ON c.id = m.customer WHERE m.id = ANY({}::int[])",
        sorted({s["membership"] for s in sales if s["membership"]}))}
    codes = sorted({c["code"] for s in sales for c in _json(s["coupons"]) if c.get("status") == "applied"})
    series = {r["code"]: r for r in await Sale.raw(
        "SELECT c.code, s.code AS series, s.personal FROM coupon c JOIN coupon_series s ON s.id = c.series "
        "WHERE c.code = ANY({}::varchar[])", codes)} if codes else {}
    by_sale: dict[int, list[BasketLine]] = defaultdict(list)
    for r in lines:
        facts = catalog.get(r["sku"])
        by_sale[r["sale"]].append(BasketLine(
            line_no=r["line_no"], sku=r["sku"], quantity_milli=r["quantity_milli"], price=r["price"],
            amount=r["amount"], category_codes=list(facts["path"]) if facts else [],
            brand=facts["brand"] if facts else None, own_brand=bool(facts["own_brand"]) if facts else False,
            excluded=bool(facts["excluded"]) if facts else False))
    later = defaultdict(int)  # a member's replayed sales after this one: the purchase count at the time
    for s in sales:
        if s["membership"]:
            later[s["membership"]] += 1
    previous: dict[int, dt.datetime] = {}
    zone = ZoneInfo(timezone)
    receipts = []
    for s in sales:
        member = None
        if s["membership"] and s["membership"] in members:
            m = members[s["membership"]]
            later[m["id"]] -= 1
            member = MemberInfo(
                membership_id=str(m["id"]), registered=bool(m["registered"]), tier_code=m["tier"],
                segments=list(m["segments"] or []), birth_date=m["birth_date"],
                birth_date_known_since=m["birth_date_set_at"],
                purchases_count=max(0, m["purchases_count"] - later[m["id"]] - 1),
                last_purchase_at=previous.get(m["id"]), joined_at=m["joined_at"],
                referred_by=str(m["referred_by"]) if m["referred_by"] else None)
            previous[m["id"]] = s["occurred_at"]
        receipts.append(Receipt(
            sale_id=s["id"], occurred_at=s["occurred_at"], day=s["occurred_at"].astimezone(zone).date(),
            store=_store(stores[s["store"]]), channel=s["channel"], member=member, lines=by_sale.get(s["id"], []),
            coupons=[CouponInput(code=c["code"], series=series[c["code"]]["series"] if c["code"] in series else None,
                                 personal=bool(series[c["code"]]["personal"]) if c["code"] in series else False)
                     for c in _json(s["coupons"]) if c.get("status") == "applied"],
            redeem_points=s["redeemed_points"], points=s["accrued_points"], discount=s["discount"],
            applied=_json(s["applied"])))
    return receipts, capped


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else (value or [])


def _store(row: dict[str, Any]) -> StoreInfo:
    attributes = _json(row["attributes"]) if row["attributes"] else {}
    return StoreInfo(code=row["code"], region=row["region"] or None, format=row["format"] or None,
                     timezone=row["timezone"], attributes={k: str(v) for k, v in dict(attributes).items()})


# --- the pure part ------------------------------------------------------------------------------


def _priced(receipt: Receipt, program: CompiledProgram, accrued_today: int, lang: str) -> Any:
    basket = Basket(lines=receipt.lines, coupons=receipt.coupons, redeem_points=receipt.redeem_points)
    context = PricingContext(now=receipt.occurred_at, store=receipt.store, channel=receipt.channel,
                             member=receipt.member, balance_active=receipt.redeem_points,
                             accrued_today=accrued_today, lang=lang)
    try:
        return price(basket, context, program, line_explanations=False)
    except RedeemLimitExceeded as exc:  # the draft lets points pay for less: the shopper would have paid less
        basket = msgspec.structs.replace(basket, redeem_points=exc.max_redeem_points)
        return price(basket, context, program, line_explanations=False)


def _add(sums: Sums, points: int, discount: int) -> None:
    sums.points += points
    sums.discount += discount
    sums.receipts += 1 if points or discount else 0


def replay(receipts: list[Receipt], live: CompiledProgram, draft: CompiledProgram, lang: str = "en"
           ) -> tuple[Sums, Sums, Sums, list[RuleLine], list[DayLine], int]:
    """(given, live, draft, by rule, by day, skipped) over receipts in time order."""
    given, live_sums, draft_sums = Sums(), Sums(), Sums()
    rules: dict[str, RuleLine] = {}
    days: dict[dt.date, DayLine] = {}
    today: dict[str, dict[tuple[str, dt.date], int]] = {"live": defaultdict(int), "draft": defaultdict(int)}
    skipped = 0

    def rule(code: str, name: str) -> RuleLine:
        if code not in rules:
            rules[code] = RuleLine(rule=code, name=name, given=Sums(), live=Sums(), draft=Sums())
        return rules[code]

    for receipt in receipts:
        who = receipt.member.membership_id if receipt.member else ""
        results = {}
        try:
            for name, program in (("live", live), ("draft", draft)):
                results[name] = _priced(receipt, program, today[name][(who, receipt.day)], lang)
        except Exception:  # an engine refusal on an odd old receipt must not stop the replay; counted
            skipped += 1
            continue
        day = days.setdefault(receipt.day, DayLine(day=receipt.day, receipts=0, given=Sums(), live=Sums(), draft=Sums()))
        day.receipts += 1
        _add(given, receipt.points, receipt.discount)
        _add(day.given, receipt.points, receipt.discount)
        for applied in receipt.applied:
            _add(rule(str(applied.get("rule")), str(applied.get("name", ""))).given, int(applied.get("points") or 0),
                 int(applied.get("discount") or 0))
        for name, sums in (("live", live_sums), ("draft", draft_sums)):
            priced = results[name]
            if who:
                today[name][(who, receipt.day)] += priced.totals.accrued_points
            _add(sums, priced.totals.accrued_points, priced.totals.discount)
            _add(getattr(day, name), priced.totals.accrued_points, priced.totals.discount)
            for applied in priced.applied:
                _add(getattr(rule(applied.rule, applied.name), name), applied.points, applied.discount)
    by_rule = sorted(rules.values(), key=lambda r: -abs(r.draft.points - r.live.points) - abs(r.draft.discount - r.live.discount))
    return given, live_sums, draft_sums, by_rule, sorted(days.values(), key=lambda d: d.day), skipped


async def replay_draft(program_code: str, document: dict[str, Any], days: int, now: dt.datetime,
                       cap: int = MAX_RECEIPTS) -> ReplayOut:
    """The draft `document` over the program's receipts of the last `days` days (at most `cap` of them)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed(f"days: from 1 to {MAX_DAYS}")
    if not 1 <= cap <= MAX_RECEIPTS:
        raise ValidationFailed(f"receipts: from 1 to {MAX_RECEIPTS}")
    draft = compile_program(msgspec.structs.replace(rules_admin.checked(document), version=0))
    program, _ = await rules_admin.live_raw_document(program_code)
    rows = await Sale.raw("SELECT timezone FROM program WHERE id = {}", program["id"])
    live = await programs.compiled_program(program["id"], program["rules_version"])
    if not _RUNNING.acquire(blocking=False):
        raise RateLimited("Another replay is running on this server: try again in a minute")
    try:
        started = time.perf_counter()
        since = now - dt.timedelta(days=days)
        receipts, capped = await load_receipts(program["id"], rows[0]["timezone"], since, now, cap)
        lang = getattr(getattr(live, "settings", None), "language", "en")
        given, live_sums, draft_sums, by_rule, by_day, skipped = await anyio.to_thread.run_sync(
            replay, receipts, live, draft, lang)
    finally:
        _RUNNING.release()
    return ReplayOut(days=days, since=since, until=now, receipts=len(receipts) - skipped, cap=cap, capped=capped,
                     skipped=skipped, given=given, live=live_sums, draft=draft_sums, by_rule=by_rule, by_day=by_day,
                     elapsed_ms=int((time.perf_counter() - started) * 1000))
