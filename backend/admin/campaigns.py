"""Operator API for campaigns (marketer or admin): create a draft, launch it, cancel it, read its report."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.admin.auth import current_operator, require_roles
from loyalty_core.campaigns import report as campaign_report
from loyalty_core.campaigns import service
from loyalty_core.campaigns.model import CampaignIn, CampaignOut, CampaignReport

MARKETER = [require_roles("marketer")]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _who(request: Request) -> dict[str, str]:
    return {"operator": current_operator(request).name, "origin": request.client.host if request.client else ""}


class CampaignController(Controller):
    path = "/admin/v1/campaigns"
    tags = ["operator campaigns"]
    guards = MARKETER

    @post("/", status_code=HTTP_201_CREATED, summary="A campaign, as a draft: segment, texts, offer, schedule")
    async def create(self, request: Request, data: CampaignIn) -> CampaignOut:
        return await service.create_campaign(data, _now(), **_who(request))

    @get("/", summary="Campaigns, newest first")
    async def list_campaigns(self, program: str | None = None) -> list[CampaignOut]:
        return await service.campaigns(program)

    @get("/{code:str}", summary="One campaign")
    async def get_campaign(self, code: str) -> CampaignOut:
        return await service.campaign(code)

    @post("/{code:str}/launch", status_code=HTTP_200_OK, summary="Approve a draft: it goes out at its send time")
    async def launch(self, request: Request, code: str) -> CampaignOut:
        return await service.launch(code, _now(), **_who(request))

    @post("/{code:str}/cancel", status_code=HTTP_200_OK, summary="Stop it: messages not yet sent are not sent")
    async def cancel(self, request: Request, code: str) -> CampaignOut:
        return await service.cancel(code, _now(), **_who(request))

    @get("/{code:str}/report", summary="Sent, delivered, failed, opened, coupons redeemed, uplift against control")
    async def report(self, code: str) -> CampaignReport:
        return await campaign_report.report(code, _now())


ROUTES = [CampaignController]
