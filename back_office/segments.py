"""Marketing: segments (marketer and admin). The list with sizes and last recompute, a dynamic segment's condition
with "Preview count", a static segment's CSV upload, recompute now, archive.

Handlers parse the form and call one use-case of loyalty_core.marketing.segments (the operator API's own);
a refused save re-renders the form with each message next to its field (422) and writes nothing."""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import PathParameter, QueryParameter

from back_office import web
from back_office.marketing_forms import SEGMENT_FIELDS, field_errors, program_code, programs
from loyalty_core.errors import DomainError, ValidationFailed
from loyalty_core.marketing import segments
from loyalty_core.marketing.errors import SegmentExists
from loyalty_core.marketing.segments import SegmentCreate, SegmentUpdate

MARKETING = [web.roles("marketer")]
ProgramCode = Annotated[str, PathParameter(name="program", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
SegmentCode = Annotated[str, PathParameter(name="code", max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
Code = Annotated[str, QueryParameter(max_length=64)]
MAX_FORM = 64_000  # a condition is at most 50 comparisons
MAX_UPLOAD = 16 * 1024 * 1024
EXAMPLE = '{"all": [{"fact": "tier", "eq": "gold"}, {"fact": "days_since_last_purchase", "gte": 60}]}'


def _page(program: str, code: str) -> str:
    return f"{web.PATH}/segments/{program}/{code}"


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str) or len(value) > MAX_FORM:
            raise HTTPException(status_code=400, detail="The form is not valid: a value is too long")
        out[key] = value.strip()
    return out


def _condition(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationFailed(f"condition: not JSON ({exc.msg}, line {exc.lineno}, column {exc.colno})") from None


class SegmentsController(Controller):
    path = web.PATH + "/segments"
    include_in_schema = False

    @get("/", guards=MARKETING)
    async def listing(self, request: Request, program: Code = "") -> Response:
        code = await program_code(program)
        return await web.page(request, "office_segments.html", program=code, programs=await programs(),
                              segments=await segments.list_segments(code))

    @get("/new", guards=MARKETING)
    async def new(self, request: Request, program: Code = "", kind: Code = "dynamic") -> Response:
        code = await program_code(program)
        values = {"kind": "static" if kind == "static" else "dynamic", "condition": "" if kind == "static" else EXAMPLE}
        return await self._editor(request, code, None, values)

    async def _editor(self, request: Request, program: str, segment: segments.Segment | None, values: dict[str, str],
                      *, errors: dict[str, str] | None = None, preview: segments.Preview | None = None,
                      status: int = 200, upload: segments.UploadResult | None = None) -> Response:
        return await web.page(request, "office_segment.html", status=status, program=program, segment=segment,
                              values=values, errors=errors or {}, preview=preview, upload=upload, example=EXAMPLE)

    @post("/", guards=MARKETING)
    async def create(self, request: Request) -> Response:
        form = await _form(request)
        program = await program_code(form.get("program", ""))
        kind = "static" if form.get("kind") == "static" else "dynamic"
        values = {k: form.get(k, "") for k in ("code", "name", "condition")} | {"kind": kind}
        try:
            condition = _condition(values["condition"]) if kind == "dynamic" else None
            if form.get("action") == "preview":
                found = await segments.preview(program, condition, web.utc_now())
                return await self._editor(request, program, None, values, preview=found)
            made = await segments.create_segment(program, SegmentCreate(code=values["code"], name=values["name"],
                                                                        kind=kind, condition=condition),
                                                 web.staff_of(request).actor, web.utc_now(), web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            errors = {"code": exc.detail} if isinstance(exc, SegmentExists) else \
                field_errors(exc, "_top", SEGMENT_FIELDS)
            return await self._editor(request, program, None, values, errors=errors, status=exc.status)
        await web.flash(request, "Segment saved")
        return web.back_to(_page(program, made.code))

    @get("/{program:str}/{code:str}", guards=MARKETING)
    async def segment(self, request: Request, program: ProgramCode, code: SegmentCode) -> Response:
        found = await segments.get_segment(program, code)
        values = {"code": found.code, "name": found.name, "kind": found.kind,
                  "condition": json.dumps(found.condition, ensure_ascii=False, indent=1) if found.condition else ""}
        return await self._editor(request, program, found, values)

    @post("/{program:str}/{code:str}", guards=MARKETING)
    async def save(self, request: Request, program: ProgramCode, code: SegmentCode) -> Response:
        form = await _form(request)
        found = await segments.get_segment(program, code)
        values = {"code": found.code, "kind": found.kind, "name": form.get("name", ""),
                  "condition": form.get("condition", "")}
        try:
            condition = _condition(values["condition"]) if found.kind == "dynamic" else None
            if form.get("action") == "preview":
                return await self._editor(request, program, found, values,
                                          preview=await segments.preview(program, condition, web.utc_now()))
            change = SegmentUpdate(name=values["name"]) if found.kind == "static" else \
                SegmentUpdate(name=values["name"], condition=condition)
            await segments.update_segment(program, code, change, web.staff_of(request).actor, web.utc_now(),
                                          web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            return await self._editor(request, program, found, values, errors=field_errors(exc, "_top", SEGMENT_FIELDS),
                                      status=exc.status)
        await web.flash(request, "Segment saved")
        return web.back_to(_page(program, code))

    @post("/{program:str}/{code:str}/recompute", guards=MARKETING)
    async def recompute(self, request: Request, program: ProgramCode, code: SegmentCode) -> Response:
        await _form(request)
        done = await segments.recompute_segment(program, code, web.utc_now())
        await web.flash(request, f"+{done.added} / −{done.removed} → {done.members}")
        return web.back_to(_page(program, code))

    @post("/{program:str}/{code:str}/archive", guards=MARKETING)
    async def archive(self, request: Request, program: ProgramCode, code: SegmentCode) -> Response:
        await _form(request)
        await segments.update_segment(program, code, SegmentUpdate(status="archived"), web.staff_of(request).actor,
                                      web.utc_now(), web.origin(request))
        await web.flash(request, "Segment archived")
        return web.back_to(f"{web.PATH}/segments/?program={program}")

    @post("/{program:str}/{code:str}/upload", guards=MARKETING, request_max_body_size=MAX_UPLOAD)
    async def upload(self, request: Request, program: ProgramCode, code: SegmentCode) -> Response:
        form = await request.form()
        found = await segments.get_segment(program, code)
        values = {"code": found.code, "name": found.name, "kind": found.kind, "condition": ""}
        file, mode = form.get("file"), form.get("mode")
        try:
            if file is None or isinstance(file, str):
                raise ValidationFailed("file: choose a CSV file")
            try:
                text = (await file.read()).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationFailed("file: the file is not UTF-8 text") from None
            result = await segments.upload_static(program, code, text, "add" if mode == "add" else "replace",
                                                  web.staff_of(request).actor, web.utc_now(), web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            return await self._editor(request, program, found, values, errors=field_errors(exc, "file", frozenset()),
                                      status=exc.status)
        return await self._editor(request, program, await segments.get_segment(program, code), values, upload=result)
