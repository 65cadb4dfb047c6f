"""Each finance report as one table (columns, rows) and one chart: the page, the CSV and the SVG are drawn from
the same View, so the chart, the table and the download can never disagree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec

from back_office.charts import Chart, Series
from loyalty_core.reports import finance
from loyalty_core.reports.export import Money, Rate
from loyalty_core.reports.rows import Period, ProgramFacts

ColumnKind = Literal["period", "date", "text", "points", "money", "rate", "count"]
Translate = Callable[[str], str]


class Column(msgspec.Struct, frozen=True):
    label: str
    kind: ColumnKind


class Fact(msgspec.Struct, frozen=True):
    """A line above the table: a figure with its label (the liability now, the reconciliation, the as-of time)."""

    label: str
    value: Any
    kind: ColumnKind | Literal["datetime", "ok"] = "points"


class View(msgspec.Struct, kw_only=True):
    name: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    chart: Chart | None = None
    facts: list[Fact] = []
    uses_period: bool = True
    uses_store: bool = False


class ReportSpec(msgspec.Struct, frozen=True):
    title: str
    description: str
    uses_period: bool = True
    uses_store: bool = False
    uses_grain: bool = True
    uses_tier: bool = False


REPORTS: dict[str, ReportSpec] = {
    "liability": ReportSpec("Points liability", "Active and pending points the members hold, in points and money"),
    "movements": ReportSpec("Accrued, redeemed, expired, adjusted",
                            "Every movement of points per day, week or month", uses_store=True),
    "breakage": ReportSpec("Breakage", "Points expired against points accrued"),
    "aging": ReportSpec("Liability by expiry month", "What burns when, if nobody spends it", uses_period=False,
                        uses_grain=False),
    "stores": ReportSpec("Stores", "Accrual and redemption per store", uses_grain=False),
}


def period_label(start: dt.date, grain: str, lang: str) -> str:
    if grain == "month":
        return f"{start:%m.%Y}" if lang == "ru" else f"{start:%Y-%m}"
    day = f"{start:%d.%m.%Y}" if lang == "ru" else start.isoformat()
    return day if grain == "day" else ("нед. с " if lang == "ru" else "week of ") + day


def _money(t: Translate, facts: ProgramFacts) -> str:
    return f"{t('Money')}, {facts.currency}"


async def _as_of(facts: ProgramFacts, t: Translate) -> list[Fact]:
    when = await finance.as_of(facts)
    if when is None:
        return [Fact(t("Figures as of"), t("not yet summed"), "text")]
    return [Fact(t("Figures as of"), when, "datetime")]


async def liability(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str) -> View:
    report = await finance.liability(facts, period)
    rows = [[p.period, finance.period_end(p.period, period), p.active, p.pending, p.total,
             Money(facts.money(p.total))] for p in report.points]
    labels = [period_label(p.period, period.grain, lang) for p in report.points]
    chart = Chart(kind="stacked", labels=labels, y_title=t("Points"),
                  series=[Series(t("Active"), [float(p.active) for p in report.points]),
                          Series(t("Pending"), [float(p.pending) for p in report.points])])
    facts_shown = [Fact(t("Liability before the range"), report.opening.total)]
    if report.points:
        last = report.points[-1]
        facts_shown += [Fact(t("Liability at the end of the range"), last.total),
                        Fact(t("In money at the point value"), Money(facts.money(last.total)), "money")]
    rec = report.reconciliation
    if rec is not None:
        facts_shown += [
            Fact(t("Sum of account balances"), rec.accounts_active + rec.accounts_pending),
            Fact(t("Sum of all ledger days"), rec.days_active + rec.days_pending),
            Fact(t("Reconciled with the accounts"), rec.difference == 0, "ok"),
            Fact(t("Owed by members (debt), not in the liability"), rec.accounts_debt),
            Fact(t("Figures as of"), rec.as_of, "datetime"),
        ]
    return View(name="liability", title=t(REPORTS["liability"].title), chart=chart, facts=facts_shown, rows=rows,
                columns=[Column(t("Period"), "period"), Column(t("End of period"), "date"),
                         Column(t("Active"), "points"), Column(t("Pending"), "points"),
                         Column(t("Liability, points"), "points"), Column(_money(t, facts), "money")])


async def movements(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str) -> View:
    moves = await finance.movements(facts, period, store_id)
    labels = [period_label(m.period, period.grain, lang) for m in moves]
    chart = Chart(kind="bar", labels=labels, y_title=t("Points"),
                  series=[Series(t("Accrued"), [float(m.accrued) for m in moves]),
                          Series(t("Redeemed"), [float(-m.redeemed) for m in moves]),
                          Series(t("Expired"), [float(-m.expired) for m in moves]),
                          Series(t("Adjusted"), [float(m.adjusted) for m in moves])])
    fields = ("accrued", "redeemed", "expired", "adjusted", "clawed_back", "refunded", "imported", "debt_repaid",
              "other", "net")
    rows = [[m.period, *(getattr(m, f) for f in fields)] for m in moves]
    rows.append([t("Total"), *(sum(getattr(m, f) for m in moves) for f in fields)])
    names = ("Accrued", "Redeemed", "Expired", "Adjusted", "Returns: taken back", "Returns: given back", "Imported",
             "Debt repaid", "Other (merges)", "Net change")
    return View(name="movements", title=t(REPORTS["movements"].title), chart=chart, rows=rows, uses_store=True,
                columns=[Column(t("Period"), "period"), *(Column(t(n), "points") for n in names)],
                facts=[Fact(t("Signs"), t("as the points change the liability: + adds, − takes away"), "text"),
                       *await _as_of(facts, t)])


async def breakage(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str) -> View:
    moves = await finance.movements(facts, period)
    rows_in = finance.breakage(moves)
    total = finance.breakage_total(moves)
    labels = [period_label(b.period, period.grain, lang) for b in rows_in]
    chart = Chart(kind="line", labels=labels, y_title=t("Breakage, %"),
                  series=[Series(t("Breakage, %"), [None if b.rate_bp is None else b.rate_bp / 100 for b in rows_in])])
    rows: list[list[Any]] = [[b.period, b.accrued, b.expired, None if b.rate_bp is None else Rate(b.rate_bp)]
                             for b in rows_in]
    if total is not None:
        rows.append([t("Total"), total.accrued, total.expired, None if total.rate_bp is None else Rate(total.rate_bp)])
    return View(name="breakage", title=t(REPORTS["breakage"].title), chart=chart, rows=rows,
                facts=await _as_of(facts, t),
                columns=[Column(t("Period"), "period"), Column(t("Accrued"), "points"), Column(t("Expired"), "points"),
                         Column(t("Breakage, %"), "rate")])


async def aging(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str) -> View:
    buckets = await finance.aging(facts)
    labels = [period_label(b.expires_month, "month", lang) if b.expires_month else t("Never") for b in buckets]
    chart = Chart(kind="stacked", labels=labels, y_title=t("Points"),
                  series=[Series(t("Active"), [float(b.active) for b in buckets]),
                          Series(t("Pending"), [float(b.pending) for b in buckets])])
    rows = [[b.expires_month or t("Never"), b.active, b.pending, b.total, Money(facts.money(b.total)), b.lots]
            for b in buckets]
    rows.append([t("Total"), sum(b.active for b in buckets), sum(b.pending for b in buckets),
                 sum(b.total for b in buckets), Money(facts.money(sum(b.total for b in buckets))),
                 sum(b.lots for b in buckets)])
    shown = [Fact(t("Figures as of"), buckets[0].as_of, "datetime")] if buckets else []
    return View(name="aging", title=t(REPORTS["aging"].title), chart=chart, rows=rows, facts=shown, uses_period=False,
                columns=[Column(t("Expires in"), "period"), Column(t("Active"), "points"),
                         Column(t("Pending"), "points"), Column(t("Liability, points"), "points"),
                         Column(_money(t, facts), "money"), Column(t("Lots"), "count")])


async def stores(facts: ProgramFacts, period: Period, store_id: int | None, t: Translate, lang: str) -> View:
    totals = await finance.by_store(facts, period)
    def name(s: Any) -> str:
        return s.name or s.code if s.store_id else t("No store (adjustments, welcome, imports, expiry)")
    top = totals[:15]
    chart = Chart(kind="hbar", labels=[name(s) if s.store_id else t("No store") for s in top],
                  series=[Series(t("Accrued"), [float(s.accrued) for s in top]),
                          Series(t("Redeemed"), [float(-s.redeemed) for s in top])])
    rows = [[s.code, name(s), s.accrued, s.redeemed, s.clawed_back, s.refunded, s.net] for s in totals]
    return View(name="stores", title=t(REPORTS["stores"].title), chart=chart, rows=rows,
                facts=await _as_of(facts, t),
                columns=[Column(t("Store code"), "text"), Column(t("Store"), "text"), Column(t("Accrued"), "points"),
                         Column(t("Redeemed"), "points"), Column(t("Returns: taken back"), "points"),
                         Column(t("Returns: given back"), "points"), Column(t("Net change"), "points")])


BUILDERS: dict[str, Callable[..., Awaitable[View]]] = {
    "liability": liability, "movements": movements, "breakage": breakage, "aging": aging, "stores": stores,
}


def csv_rows(view: View) -> tuple[list[str], list[list[Any]]]:
    """The table for a spreadsheet: a period as its first day (ISO), the other cells as the page shows them."""
    return [c.label for c in view.columns], view.rows
