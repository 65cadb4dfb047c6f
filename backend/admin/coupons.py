"""Operator API for coupon series: create, generate unique codes, list codes, issue one to a member."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from backend.admin.auth import require_roles
from loyalty_core.coupons import series as coupon_series
from loyalty_core.coupons.series import (
    CodeOut,
    CodesPage,
    GeneratedCodes,
    GenerateIn,
    IssueIn,
    SeriesIn,
    SeriesOut,
)

MARKETER = [require_roles("marketer")]
READERS = [require_roles("marketer", "support")]


class CouponSeriesController(Controller):
    path = "/admin/v1/coupons/series"
    tags = ["operator coupons"]

    @post("/", guards=MARKETER, status_code=HTTP_201_CREATED, summary="A series of personal codes or one shared code")
    async def create(self, data: SeriesIn) -> SeriesOut:
        return await coupon_series.create_series(data)

    @get("/", guards=READERS, summary="Coupon series, newest first")
    async def list_series(self, program: str | None = None) -> list[SeriesOut]:
        return await coupon_series.all_series(program)

    @get("/{code:str}", guards=READERS, summary="One series with its counts")
    async def get_series(self, code: str) -> SeriesOut:
        return await coupon_series.series(code)

    @post("/{code:str}/codes", guards=MARKETER, status_code=HTTP_201_CREATED, summary="Generate N unique codes")
    async def generate(self, code: str, data: GenerateIn) -> GeneratedCodes:
        return await coupon_series.generate(code, data)

    @get("/{code:str}/codes", guards=READERS, summary="The series' codes, newest first")
    async def list_codes(
        self, code: str, status: Literal["active", "used", "cancelled"] | None = None, cursor: str | None = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 100,
    ) -> CodesPage:
        return await coupon_series.codes(code, status, cursor, limit)

    @post("/{code:str}/issue", guards=[require_roles("marketer", "support")], status_code=HTTP_201_CREATED,
          summary="Give a member a personal code of this series")
    async def issue(self, code: str, data: IssueIn) -> CodeOut:
        return await coupon_series.issue(code, data)


ROUTES = [CouponSeriesController]
