"""Marketing: campaigns (marketer and admin). The list with status; a draft's form (segment, texts per channel and
language, a coupon or bonus points, send time, holdout, frequency cap); launch and cancel behind a confirmation;
four eyes for a launch that gives points (loyalty_core.campaigns.approval); the report with its charts, table and CSV.

Handlers call the operator API's use-cases (loyalty_core.campaigns.service, .report); a refused save re-renders
the form with each message next to its field (422) and writes nothing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import PathParameter, QueryParameter

from back_office import web
from back_office.charts import SVG_CSP, Chart, Series, svg
from back_office.marketing_forms import (
    CAMPAIGN_FIELDS,
    LANGUAGES,
    TEXT_FIELDS,
    campaign_from_form,
    campaign_to_form,
    field_errors,
    program_code,
    programs,
    timezone_of,
)
from loyalty_core import db
from loyalty_core.campaigns import approval, service
from loyalty_core.campaigns import report as campaign_report
from loyalty_core.campaigns.model import CHANNELS, CampaignOut, CampaignReport
from loyalty_core.errors import DomainError
from loyalty_core.reports.export import to_csv

MARKETING = [web.roles("marketer")]
CampaignCode = Annotated[str, PathParameter(name="code", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Code = Annotated[str, QueryParameter(max_length=64)]
MAX_VALUE = 10_000


def _page(code: str) -> str:
    return f"{web.PATH}/campaigns/{code}"


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str) or len(value) > MAX_VALUE or len(key) > 40:
            raise HTTPException(status_code=400, detail="The form is not valid: a value is too long")
        out[key] = value.strip()
    if len(out) > 60:
        raise HTTPException(status_code=400, detail="The form is not valid: too many fields")
    return out


async def _choices(program: str) -> dict[str, Any]:
    segments = await db.fetch(
        "SELECT s.code, s.name, s.member_count FROM segment s JOIN program p ON p.id = s.program "
        "WHERE p.code = $1 AND s.status = 'active' ORDER BY s.name", program)
    series = await db.fetch(
        "SELECT c.code, c.name FROM coupon_series c JOIN program p ON p.id = c.program "
        "WHERE p.code = $1 AND c.personal ORDER BY c.name", program)
    return {"segment_choices": segments, "series_choices": series}


class CampaignsController(Controller):
    path = web.PATH + "/campaigns"
    include_in_schema = False

    @get("/", guards=MARKETING)
    async def listing(self, request: Request, program: Code = "") -> Response:
        code = await program_code(program)
        return await web.page(request, "office_campaigns.html", program=code, programs=await programs(),
                              campaigns=await service.campaigns(code))

    @get("/new", guards=MARKETING)
    async def new(self, request: Request, program: Code = "") -> Response:
        code = await program_code(program)
        return await self._editor(request, code, None, {"offer": "none", "holdout_percent": "10", "uplift_days": "14"})

    async def _editor(self, request: Request, program: str, campaign: CampaignOut | None, values: dict[str, str],
                      *, errors: dict[str, str] | None = None, status: int = 200) -> Response:
        return await web.page(request, "office_campaign_form.html", status=status, program=program, campaign=campaign,
                              values=values, errors=errors or {}, languages=LANGUAGES, text_fields=TEXT_FIELDS,
                              **await _choices(program))

    @post("/", guards=MARKETING)
    async def create(self, request: Request) -> Response:
        form = await _form(request)
        program = await program_code(form.get("program", ""))
        try:
            spec = campaign_from_form(form, program, await timezone_of(program))
            await service.create_campaign(spec, web.utc_now(), operator=web.staff_of(request).actor,
                                          origin=web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            errors = {"code": exc.detail} if exc.status == 409 else field_errors(exc, "_top", CAMPAIGN_FIELDS)
            return await self._editor(request, program, None, form, errors=errors, status=exc.status)
        await web.flash(request, "Campaign saved")
        return web.back_to(_page(spec.code))

    @get("/{code:str}", guards=MARKETING)
    async def campaign(self, request: Request, code: CampaignCode) -> Response:
        found = await service.campaign(code)
        waiting = await approval.proposal(code)
        return await web.page(request, "office_campaign.html", campaign=found, proposal=waiting,
                              mine=waiting is not None and waiting.requested_ref == web.actor_of(request).ref,
                              four_eyes=approval.needs_four_eyes(found),
                              report=await campaign_report.report(code, web.utc_now()),
                              timezone=await timezone_of(found.program))

    @get("/{code:str}/edit", guards=MARKETING)
    async def edit(self, request: Request, code: CampaignCode) -> Response:
        found = await service.campaign(code)
        return await self._editor(request, found.program, found, campaign_to_form(found, await timezone_of(found.program)))

    @post("/{code:str}/edit", guards=MARKETING)
    async def save(self, request: Request, code: CampaignCode) -> Response:
        form = await _form(request) | {"code": code}
        found = await service.campaign(code)
        try:
            spec = campaign_from_form(form, found.program, await timezone_of(found.program))
            await service.update_campaign(code, spec, web.utc_now(), operator=web.staff_of(request).actor,
                                          origin=web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            if exc.status == 409:
                await web.flash(request, "! " + exc.detail)
                return web.back_to(_page(code))
            return await self._editor(request, found.program, found, form, errors=field_errors(exc, "_top", CAMPAIGN_FIELDS),
                                      status=exc.status)
        await web.flash(request, "Campaign saved")
        return web.back_to(_page(code))

    @get("/{code:str}/confirm", guards=MARKETING)
    async def confirm(self, request: Request, code: CampaignCode,
                      action: Annotated[Literal["launch", "cancel"], QueryParameter()] = "launch") -> Response:
        found = await service.campaign(code)
        return await web.page(request, "office_campaign_confirm.html", campaign=found, action=action,
                              four_eyes=approval.needs_four_eyes(found), timezone=await timezone_of(found.program))

    async def _act(self, request: Request, code: str, call: Any, done: str) -> Response:
        try:
            result = await call
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            await web.flash(request, "! " + exc.detail)
        else:
            await web.flash(request, done(result) if callable(done) else done)
        return web.back_to(_page(code))

    @post("/{code:str}/launch", guards=MARKETING)
    async def launch(self, request: Request, code: CampaignCode) -> Response:
        form = await _form(request)
        return await self._act(request, code, approval.launch(code, web.actor_of(request), form.get("reason", ""),
                                                              web.utc_now()),
                               lambda r: "Proposed: waits for a second person" if r.proposal else "Launched")

    @post("/{code:str}/cancel", guards=MARKETING)
    async def cancel(self, request: Request, code: CampaignCode) -> Response:
        await _form(request)
        return await self._act(request, code, approval.cancel(code, web.actor_of(request), web.utc_now()),
                               "Campaign cancelled")

    @post("/{code:str}/approve", guards=[web.roles(*approval.APPROVER_ROLES)])
    async def approve(self, request: Request, code: CampaignCode) -> Response:
        await _form(request)
        approval_id = await approval.approval_of(code)
        status = await approval.approve(approval_id, web.actor_of(request), web.utc_now())
        if status != "approved":
            from loyalty_core.office import approvals

            problem = (await approvals.get(approval_id)).result.get("problem", {})
            await web.flash(request, "! " + str(problem.get("detail", status)))
        else:
            await web.flash(request, "Launched")
        return web.back_to(_page(code))

    @post("/{code:str}/reject", guards=MARKETING)
    async def reject(self, request: Request, code: CampaignCode) -> Response:
        form = await _form(request)
        approval_id = await approval.approval_of(code)
        return await self._act(request, code, approval.reject(approval_id, web.actor_of(request),
                                                               form.get("reason", ""), web.utc_now()),
                               "Sent back to a draft")

    # --- the report ---------------------------------------------------------------------------------------

    @get("/{code:str}/chart/{which:str}", guards=MARKETING)
    async def chart(self, request: Request, code: CampaignCode,
                    which: Annotated[Literal["channels.svg", "spend.svg"], PathParameter()]) -> Response:
        t = web.i18n.Formats(web.language(request)).t
        found = await campaign_report.report(code, web.utc_now())
        return Response(svg(_chart(found, which, t)), media_type="image/svg+xml",
                        headers={"Content-Security-Policy": SVG_CSP, "Cache-Control": "no-store"})

    @get("/{code:str}/report.csv", guards=MARKETING)
    async def csv(self, request: Request, code: CampaignCode) -> Response:
        lang = web.language(request)
        t = web.i18n.Formats(lang).t
        found = await campaign_report.report(code, web.utc_now())
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in code)
        return Response(to_csv([t("Report"), t("Channel"), t("Value")], report_rows(found, t), lang),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="kopilka-campaign-{safe}.csv"',
                                 "Cache-Control": "no-store"})


MEASURES = (("sent", "Sent"), ("delivered", "Delivered"), ("opened", "Opened"), ("failed", "Failed"))


def _chart(found: CampaignReport, which: str, t: Any) -> Chart:
    if which == "channels.svg":
        channels = [c for c in CHANNELS if c in found.by_channel] or list(CHANNELS)
        return Chart(kind="bar", labels=[t(c.upper() if c == "sms" else c.capitalize()) for c in channels],
                     series=[Series(name=t(label), values=[getattr(found.by_channel.get(c), key, 0) or 0
                                                           for c in channels]) for key, label in MEASURES])
    return Chart(kind="bar", labels=[t("Spend per member")], y_title="₽",
                 series=[Series(name=t("Targeted"), values=[found.targeted_spend.spend_per_member / 100]),
                         Series(name=t("Control"), values=[found.control_spend.spend_per_member / 100])])


def report_rows(found: CampaignReport, t: Any) -> list[list[object]]:
    """The report's numbers as (what, channel, value): the table under the charts and the CSV."""
    from loyalty_core.reports.export import Money

    rows: list[list[object]] = []
    for channel in CHANNELS:
        counts = found.by_channel.get(channel)
        if counts is not None:
            rows += [[t(label), channel, getattr(counts, key)] for key, label in MEASURES]
    rows += [[t(label), "", value] for label, value in (
        ("Targeted", found.targeted), ("Control", found.control), ("Waiting", found.waiting),
        ("Skipped", found.skipped), ("Capped", found.capped), ("Unknown", found.unknown),
        ("Coupons issued", found.coupons_issued), ("Coupons redeemed", found.coupons_redeemed),
        ("Bonus points granted", found.bonus_points_granted))]
    for label, group in (("Targeted", found.targeted_spend), ("Control", found.control_spend)):
        rows += [[f"{t(label)}: {t('Members')}", "", group.members], [f"{t(label)}: {t('Buyers')}", "", group.buyers],
                 [f"{t(label)}: {t('Spend')}", "", Money(group.spend)],
                 [f"{t(label)}: {t('Spend per member')}", "", Money(group.spend_per_member)]]
    rows.append([t("Uplift per member"), "", Money(found.uplift_per_member)])
    return rows
