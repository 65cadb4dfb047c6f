"""Operator API for segments: /admin/v1/segments/{program}[/{code}] (docs/marketing.md).

Marketers (and admins) create, change, recompute and upload; support may read. A shopper's key or a till's key
is no operator key: 401.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from litestar import Controller, Request, get, patch, post, put
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.admin.auth import current_operator, require_roles
from loyalty_core.marketing import attributes, segments
from loyalty_core.marketing.attributes import AttributesResult
from loyalty_core.marketing.errors import UploadInvalid
from loyalty_core.marketing.segments import (
    Preview,
    PreviewIn,
    RecomputeResult,
    Segment,
    SegmentCreate,
    SegmentUpdate,
    UploadResult,
)

MARKETER = [require_roles("marketer")]
READERS = [require_roles("marketer", "support")]
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _origin(request: Request) -> str:
    return request.client.host if request.client else ""


class SegmentController(Controller):
    path = "/admin/v1/segments"
    tags = ["operator segments"]

    @post("/{program:str}", guards=MARKETER, status_code=HTTP_201_CREATED,
          summary="A static segment (then upload its list) or a dynamic one (computed at once)")
    async def create(self, request: Request, program: str, data: SegmentCreate) -> Segment:
        return await segments.create_segment(program, data, current_operator(request).name, _now(), _origin(request))

    @post("/{program:str}/preview", guards=MARKETER, status_code=HTTP_200_OK,
          summary="How many members a condition selects now (nothing saved)")
    async def preview(self, program: str, data: PreviewIn) -> Preview:
        return await segments.preview(program, data.condition, _now())

    @get("/{program:str}", guards=READERS, summary="The program's segments with their sizes")
    async def list_segments(self, program: str) -> list[Segment]:
        return await segments.list_segments(program)

    @get("/{program:str}/{code:str}", guards=READERS, summary="One segment")
    async def get_segment(self, program: str, code: str) -> Segment:
        return await segments.get_segment(program, code)

    @patch("/{program:str}/{code:str}", guards=MARKETER, summary="Rename, change the condition, archive")
    async def update(self, request: Request, program: str, code: str, data: SegmentUpdate) -> Segment:
        return await segments.update_segment(program, code, data, current_operator(request).name, _now(),
                                             _origin(request))

    @post("/{program:str}/{code:str}/recompute", guards=MARKETER, status_code=HTTP_200_OK,
          summary="Recompute who is in the segment now")
    async def recompute(self, program: str, code: str) -> RecomputeResult:
        return await segments.recompute_segment(program, code, _now())

    @put("/{program:str}/{code:str}/members", guards=MARKETER, request_max_body_size=MAX_UPLOAD_BYTES,
         summary="A static segment's list: CSV of cards, phones or member ids (mode=replace or add)")
    async def upload(self, request: Request, program: str, code: str,
                     mode: Literal["replace", "add"] = "replace") -> UploadResult:
        return await segments.upload_static(program, code, await _text(request), mode, current_operator(request).name,
                                            _now(), _origin(request))


class MemberAttributeController(Controller):
    path = "/admin/v1/segments/{program:str}/attributes"
    tags = ["operator segments"]

    @put("/", guards=MARKETER, request_max_body_size=MAX_UPLOAD_BYTES,
         summary="One custom attribute of many members: CSV 'phone,pet' (card, phone or member id, then the value)")
    async def upload(self, request: Request, program: str) -> AttributesResult:
        return await attributes.upload_attributes(program, await _text(request), current_operator(request).name,
                                                  _now(), _origin(request))


async def _text(request: Request) -> str:
    try:
        return (await request.body()).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadInvalid("the file is not UTF-8 text") from None


ROUTES = [SegmentController, MemberAttributeController]
