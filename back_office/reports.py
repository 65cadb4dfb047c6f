"""Finance reports (finance and admin staff): each report's page with its chart and table, its CSV and its SVG.

Read only, from the aggregates the `reports` job keeps (loyalty_core/reports). A bad period or filter answers
the page again with the form and a message (422), never an error trace; see docs/back-office.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter

from back_office import report_views, web
from back_office.charts import SVG_CSP, svg
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.reports import finance
from loyalty_core.reports.export import to_csv
from loyalty_core.reports.rows import Period, ProgramFacts

FINANCE = [web.roles("finance")]
Name = Annotated[str, PathParameter(name="name", max_length=20, pattern=r"^[a-z]+$")]
Text = Annotated[str, QueryParameter(max_length=64)]


class Asked:
    """What the filter form asked, as typed (shown back in the form), and what it means once checked."""

    def __init__(self, program: str, since: str, until: str, grain: str, store: str) -> None:
        self.program, self.since, self.until, self.grain, self.store = program, since, until, grain, store

    async def checked(self, name: str) -> tuple[ProgramFacts, Period, int | None]:
        spec = report_views.REPORTS.get(name)
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
        return facts, period, store_id

    def query(self, period: Period | None = None, facts: ProgramFacts | None = None) -> str:
        from urllib.parse import urlencode

        values = {"program": facts.code if facts else self.program,
                  "since": period.since.isoformat() if period else self.since,
                  "until": period.until.isoformat() if period else self.until,
                  "grain": period.grain if period else self.grain, "store": self.store}
        return urlencode({k: v for k, v in values.items() if v})


class ReportsController(Controller):
    path = web.PATH + "/reports"
    include_in_schema = False

    @get("/", guards=FINANCE)
    async def index(self, request: Request) -> Response:
        return await web.page(request, "office_reports.html", reports=report_views.REPORTS)

    @get("/{name:str}", guards=FINANCE)
    async def report(self, request: Request, name: Name, program: Text = "", since: Text = "", until: Text = "",
                     grain: Text = "", store: Text = "") -> Response:
        asked = Asked(program, since, until, grain, store)
        t = web.i18n.Formats(web.language(request)).t
        context: dict[str, Any] = {"name": name, "spec": report_views.REPORTS.get(name), "asked": asked,
                                   "programs": await finance.programs(), "problem": "", "view": None, "stores": []}
        if context["spec"] is None:
            raise NotFoundException("No such report")
        try:
            facts, period, store_id = await asked.checked(name)
        except (ValidationFailed, NotFound) as exc:
            context["problem"] = t(exc.detail)
            return await web.page(request, "office_report.html", status=exc.status, **context)
        view = await report_views.BUILDERS[name](facts, period, store_id, t, web.language(request))
        context.update(view=view, facts=facts, period=period, query=asked.query(period, facts),
                       stores=await finance.stores(facts.id) if view.uses_store else [],
                       label=report_views.period_label)
        return await web.page(request, "office_report.html", **context)

    @get("/{name:str}/csv", guards=FINANCE)
    async def csv(self, request: Request, name: Name, program: Text = "", since: Text = "", until: Text = "",
                  grain: Text = "", store: Text = "") -> Response:
        facts, period, store_id = await Asked(program, since, until, grain, store).checked(name)
        lang = web.language(request)
        view = await report_views.BUILDERS[name](facts, period, store_id, web.i18n.Formats(lang).t, lang)
        header, rows = report_views.csv_rows(view)
        suffix = "" if not view.uses_period else f"-{period.since}-{period.until}"
        filename = f"kopilka-{name}-{facts.code}{suffix}.csv"
        return Response(to_csv(header, rows, lang), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{_safe(filename)}"',
                                 "Cache-Control": "no-store"})

    @get("/{name:str}/chart.svg", guards=FINANCE)
    async def chart(self, request: Request, name: Name, program: Text = "", since: Text = "", until: Text = "",
                    grain: Text = "", store: Text = "") -> Response:
        facts, period, store_id = await Asked(program, since, until, grain, store).checked(name)
        lang = web.language(request)
        view = await report_views.BUILDERS[name](facts, period, store_id, web.i18n.Formats(lang).t, lang)
        if view.chart is None:
            raise NotFoundException("This report has no chart")
        return Response(svg(view.chart), media_type="image/svg+xml",
                        headers={"Content-Security-Policy": SVG_CSP, "Cache-Control": "no-store"})


def _safe(filename: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
