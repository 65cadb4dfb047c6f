"""The program reports as Views (back_office/report_views.py draws the page, the CSV and the SVG from one View):
cost per rule, loyalty share per store, active members and registrations, members per tier and tier moves, coupon
redemption. Definitions in docs/back-office.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from back_office.charts import Chart, Series
from back_office.report_views import Column, Fact, ReportSpec, Translate, View, _as_of, period_label
from loyalty_core.reports import program
from loyalty_core.reports.export import Money, Rate
from loyalty_core.reports.rows import Period, ProgramFacts, TierRef, share_bp

TOP = 15  # bars a chart can show readably; the table has every row

REPORTS: dict[str, ReportSpec] = {
    "rules": ReportSpec("Cost per rule", "Points and discounts each rule gave, in points and money",
                        uses_store=True),
    "share": ReportSpec("Loyalty share by store", "Stores ranked by the share of sales with a card", uses_grain=False),
    "members": ReportSpec("Active members", "Members who bought against members registered; new registrations",
                          uses_tier=True),
    "tiers": ReportSpec("Members per tier", "Members in each tier and the moves up and down", uses_tier=True),
    "coupons": ReportSpec("Coupon redemption", "Codes issued and redeemed per coupon series", uses_grain=False),
}


def _rate(bp: int | None) -> Rate | None:
    return None if bp is None else Rate(bp)


def _units(minor: int) -> float:
    return minor / 100


async def rules(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str,
                tier: TierRef | None = None) -> View:
    cost = await program.cost_per_rule(facts, period, store_id)

    def cells(r: Any) -> list[Any]:
        return [r.rule, r.name, r.points, Money(facts.money(r.points)), Money(r.discount),
                Money(facts.money(r.points) + r.discount), r.sales]

    rows: list[list[Any]] = [[r.period, *cells(r)] for r in cost.rows]
    rows += [[t("Total"), *cells(r)] for r in cost.totals]
    points, discount = sum(r.points for r in cost.totals), sum(r.discount for r in cost.totals)
    top = cost.totals[:TOP]
    chart = Chart(kind="hbar", labels=[r.name or r.rule for r in top], y_title=facts.currency,
                  series=[Series(t("Points, in money"), [_units(facts.money(r.points)) for r in top]),
                          Series(t("Discounts"), [_units(r.discount) for r in top])])
    shown = [Fact(t("Points the rules gave"), points),
             Fact(t("Points the ledger accrued on sales"), cost.ledger_accrued),
             Fact(t("Reconciled with the ledger"), points == cost.ledger_accrued, "ok"),
             Fact(t("Discounts the rules gave"), Money(discount), "money"),
             Fact(t("Cost in money at the point value"), Money(facts.money(points) + discount), "money"),
             *await _as_of(facts, t)]
    money = f", {facts.currency}"
    columns = [Column(t("Period"), "period"), Column(t("Rule"), "text"), Column(t("Rule name"), "text"),
               Column(t("Points"), "points"), Column(t("Points, in money") + money, "money"),
               Column(t("Discounts") + money, "money"), Column(t("Cost") + money, "money"), Column(t("Sales"), "count")]
    return View(name="rules", title=t(REPORTS["rules"].title), chart=chart, rows=rows, facts=shown, columns=columns,
                uses_store=True)


async def share(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str,
                tier: TierRef | None = None) -> View:
    stores = await program.loyalty_share(facts, period)
    rows: list[list[Any]] = [[s.code, s.name or s.code, s.receipts, s.carded_receipts, _rate(s.receipts_bp),
                              Money(s.amount), Money(s.carded_amount), _rate(s.amount_bp)] for s in stores]
    receipts, carded = sum(s.receipts for s in stores), sum(s.carded_receipts for s in stores)
    amount, carded_amount = sum(s.amount for s in stores), sum(s.carded_amount for s in stores)
    rows.append([t("Total"), "", receipts, carded, _rate(share_bp(carded, receipts)), Money(amount),
                 Money(carded_amount), _rate(share_bp(carded_amount, amount))])
    top = stores[:TOP]
    chart = Chart(kind="hbar", labels=[s.name or s.code for s in top], y_title="%",
                  series=[Series(t("Sales amount with a card, %"), [(s.amount_bp or 0) / 100 for s in top]),
                          Series(t("Receipts with a card, %"), [(s.receipts_bp or 0) / 100 for s in top])])
    return View(name="share", title=t(REPORTS["share"].title), chart=chart, rows=rows, facts=await _as_of(facts, t),
                columns=[Column(t("Store code"), "text"), Column(t("Store"), "text"), Column(t("Receipts"), "count"),
                         Column(t("With a card"), "count"), Column(t("Receipts with a card, %"), "rate"),
                         Column(_amount(t, facts), "money"), Column(t("With a card") + f", {facts.currency}", "money"),
                         Column(t("Sales amount with a card, %"), "rate")])


def _amount(t: Translate, facts: ProgramFacts) -> str:
    return f"{t('Sales amount')}, {facts.currency}"


def _channel(t: Translate, channel: str) -> str:
    return t("Channel") + ": " + (channel or t("not recorded"))


def _tier_fact(t: Translate, tier: TierRef | None) -> list[Fact]:
    return [Fact(t("Tier"), tier.name if tier else t("All tiers"), "text")]


async def members(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str,
                  tier: TierRef | None = None) -> View:
    days = await program.activity(facts, period, tier.id if tier else None)
    channels = sorted({c for d in days for c in d.new})
    rows: list[list[Any]] = [[d.period, d.active, d.registered, _rate(d.active_bp), sum(d.new.values()),
                              *(d.new.get(c, 0) for c in channels)] for d in days]
    rows.append([t("Total"), None, days[-1].registered if days else 0, None, sum(sum(d.new.values()) for d in days),
                 *(sum(d.new.get(c, 0) for d in days) for c in channels)])
    labels = [period_label(d.period, period.grain, lang) for d in days]
    chart = Chart(kind="bar", labels=labels, y_title=t("Members"), counts=True,
                  series=[Series(t("Active"), [float(d.active) for d in days]),
                          Series(t("New registrations"), [float(sum(d.new.values())) for d in days])])
    return View(name="members", title=t(REPORTS["members"].title), chart=chart, rows=rows,
                facts=[*_tier_fact(t, tier), *await _as_of(facts, t)],
                columns=[Column(t("Period"), "period"), Column(t("Active (bought)"), "count"),
                         Column(t("Registered at the end"), "count"), Column(t("Active, %"), "rate"),
                         Column(t("New registrations"), "count"), *(Column(_channel(t, c), "count") for c in channels)])


async def tiers(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str,
                tier: TierRef | None = None) -> View:
    every = await program.tiers(facts.id)
    shown = [tier] if tier else every
    counts = {c.period: c for c in await program.tier_counts(facts, period, tier.id if tier else None)}
    moves = await program.tier_moves(facts, period, tier.code if tier else None)
    has_none = not tier and any(0 in c.members for c in counts.values())
    columns_tiers: list[tuple[int, str]] = [(x.id, x.name) for x in shown] + ([(0, t("No tier"))] if has_none else [])
    rows: list[list[Any]] = []
    for m in moves:
        count = counts.get(m.period)
        rows.append([m.period, count.counted_on if count else None,
                     *((count.members.get(i, 0) if count else None) for i, _ in columns_tiers),
                     *(m.up.get(x.code, 0) for x in shown), *(m.down.get(x.code, 0) for x in shown)])
    rows.append([t("Total"), None, *(None for _ in columns_tiers),
                 *(sum(m.up.get(x.code, 0) for m in moves) for x in shown),
                 *(sum(m.down.get(x.code, 0) for m in moves) for x in shown)])
    labels = [period_label(m.period, period.grain, lang) for m in moves]
    chart = Chart(kind="stacked", labels=labels, y_title=t("Members"), counts=True, series=[
        Series(name, [float(counts[m.period].members.get(i, 0)) if m.period in counts else None for m in moves])
        for i, name in columns_tiers])
    return View(name="tiers", title=t(REPORTS["tiers"].title), chart=chart, rows=rows,
                facts=[*_tier_fact(t, tier), *await _as_of(facts, t)],
                columns=[Column(t("Period"), "period"), Column(t("Counted on"), "date"),
                         *(Column(name, "count") for _, name in columns_tiers),
                         *(Column(t("Up to") + " " + x.name, "count") for x in shown),
                         *(Column(t("Down to") + " " + x.name, "count") for x in shown)])


async def coupons(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str,
                  tier: TierRef | None = None) -> View:
    series = await program.coupons(facts, period)
    rows: list[list[Any]] = [[s.code, s.name, t("personal codes") if s.personal else t("shared promo code"), s.issued,
                              s.redemptions, _rate(s.rate_bp)] for s in series]
    rows.append([t("Total"), "", "", sum(s.issued for s in series), sum(s.redemptions for s in series), None])
    top = series[:TOP]
    chart = Chart(kind="hbar", labels=[s.name or s.code for s in top], y_title=t("Codes"), counts=True,
                  series=[Series(t("Issued"), [float(s.issued) for s in top]),
                          Series(t("Redemptions"), [float(s.redemptions) for s in top])])
    return View(name="coupons", title=t(REPORTS["coupons"].title), chart=chart, rows=rows, facts=await _as_of(facts, t),
                columns=[Column(t("Series"), "text"), Column(t("Series name"), "text"), Column(t("Kind"), "text"),
                         Column(t("Issued"), "count"), Column(t("Redemptions"), "count"),
                         Column(t("Redeemed, %"), "rate")])


BUILDERS: dict[str, Callable[..., Awaitable[View]]] = {
    "rules": rules, "share": share, "members": members, "tiers": tiers, "coupons": coupons,
}
