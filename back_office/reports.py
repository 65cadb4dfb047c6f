"""Finance reports (finance and admin staff): each report's page with its chart and table, its CSV and its SVG.

Read only, from the aggregates the `reports` job keeps (loyalty_core/reports). A bad period or filter answers
the page again with the form and a message (422), never an error trace; see docs/back-office.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter

from back_office import program_report_views, report_views, web
from back_office.charts import SVG_CSP, svg
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.reports import finance
from loyalty_core.reports import program as program_reports
from loyalty_core.reports.export import to_csv
from loyalty_core.reports.rows import Period, ProgramFacts, TierRef

FINANCE = [web.roles("finance")]
# the finance reports (liability, movements, ...) and the program reports (rules, share, members, tiers, coupons)
REPORTS = {**report_views.REPORTS, **program_report_views.REPORTS}
BUILDERS = {**report_views.BUILDERS, **program_report_views.BUILDERS}
Name = Annotated[str, PathParameter(name="name", max_length=20, pattern=r"^[a-z]+$")]
Text = Annotated[str, QueryParameter(max_length=64)]
Short = Annotated[str, QueryParameter(max_length=32)]


class Asked:
    """What the filter form asked, as typed (shown back in the form), and what it means once checked."""

    def __init__(self, program: str, since: str, until: str, grain: str, store: str, tier: str = "") -> None:
        self.program, self.since, self.until, self.grain, self.store = program, since, until, grain, store
        self.tier = tier
        self.tier_chosen: TierRef | None = None

    async def checked(self, name: str) -> tuple[ProgramFacts, Period, int | None]:
        """The program, period and store; the tier, when the report has the filter, in `tier_chosen`."""
        spec = REPORTS.get(name)
        if spec is None:
            raise NotFoundException("No such report")
        facts = await finance.program(self.program or None)
        today = finance.today_in(facts, web.utc_now())
        # a report without periods in its rows (stores) takes any range up to the longest
        grain = self.grain if spec.uses_grain else "month"
        period = finance.parse_period(self.since, self.until, grain, today)
        store_id = None
        if spec.uses_store and self.store:
            if not self.store.isdigit() or int(self.store) not in {s.id for s in await finance.stores(facts.id)}:
                raise ValidationFailed("Store: choose one from the list")
            store_id = int(self.store)
        if spec.uses_tier:
            self.tier_chosen = await program_reports.tier_filter(facts.id, self.tier)
        return facts, period, store_id

    async def view(self, name: str, lang: str) -> tuple[ProgramFacts, Period, report_views.View]:
        facts, period, store_id = await self.checked(name)
        extra = {"tier": self.tier_chosen} if REPORTS[name].uses_tier else {}
        return facts, period, await BUILDERS[name](facts, period, store_id, web.i18n.Formats(lang).t, lang, **extra)

    def query(self, period: Period | None = None, facts: ProgramFacts | None = None) -> str:
        from urllib.parse import urlencode

        values = {"program": facts.code if facts else self.program,
                  "since": period.since.isoformat() if period else self.since,
                  "until": period.until.isoformat() if period else self.until,
                  "grain": period.grain if period else self.grain, "store": self.store, "tier": self.tier}
        return urlencode({k: v for k, v in values.items() if v})


class ReportsController(Controller):
    path = web.PATH + "/reports"
    include_in_schema = False

    @get("/", guards=FINANCE)
    async def index(self, request: Request) -> Response:
        return await web.page(request, "office_reports.html", reports=REPORTS)

    @get("/{name:str}", guards=FINANCE)
    async def report(self, request: Request, name: Name, program: Text = "", since: Text = "", until: Text = "",
                     grain: Text = "", store: Text = "", tier: Short = "") -> Response:
        asked = Asked(program, since, until, grain, store, tier)
        lang = web.language(request)
        t = web.i18n.Formats(lang).t
        context: dict[str, Any] = {"name": name, "spec": REPORTS.get(name), "asked": asked,
                                   "programs": await finance.programs(), "problem": "", "view": None, "stores": [],
                                   "tiers": []}
        if context["spec"] is None:
            raise NotFoundException("No such report")
        try:
            facts, period, view = await asked.view(name, lang)
        except (ValidationFailed, NotFound) as exc:
            context["problem"] = t(exc.detail)
            return await web.page(request, "office_report.html", status=exc.status, **context)
        context.update(view=view, facts=facts, period=period, query=asked.query(period, facts),
                       stores=await finance.stores(facts.id) if view.uses_store else [],
                       tiers=await program_reports.tiers(facts.id) if context["spec"].uses_tier else [],
                       label=report_views.period_label)
        return await web.page(request, "office_report.html", **context)

    @get("/{name:str}/csv", guards=FINANCE)
    async def csv(self, request: Request, name: Name, program: Text = "", since: Text = "", until: Text = "",
                  grain: Text = "", store: Text = "", tier: Short = "") -> Response:
        lang = web.language(request)
        facts, period, view = await Asked(program, since, until, grain, store, tier).view(name, lang)
        header, rows = report_views.csv_rows(view)
        suffix = "" if not view.uses_period else f"-{period.since}-{period.until}"
        filename = f"kopilka-{name}-{facts.code}{suffix}.csv"
        return Response(to_csv(header, rows, lang), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{_safe(filename)}"',
                                 "Cache-Control": "no-store"})

    @get("/{name:str}/chart.svg", guards=FINANCE)
    async def chart(self, request: Request, name: Name, program: Text = "", since: Text = "", until: Text = "",
                    grain: Text = "", store: Text = "", tier: Short = "") -> Response:
        facts, period, view = await Asked(program, since, until, grain, store, tier).view(name, web.language(request))
        if view.chart is None:
            raise NotFoundException("This report has no chart")
        return Response(svg(view.chart), media_type="image/svg+xml",
                        headers={"Content-Security-Policy": SVG_CSP, "Cache-Control": "no-store"})


def _safe(filename: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
