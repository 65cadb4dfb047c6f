"""Operator API for the legacy import (docs/import.md): upload the exports (a dry run: validated, staged, reported),
then apply the staged run. The same code as `kopilka import`; the CLI remains the tool for very large bases (the
request waits for the whole staging or apply)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import PathParameter
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.admin.auth import current_operator, require_roles
from backend.api.guards import ProgramCode
from loyalty_core import db
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.imports import read, report
from loyalty_core.imports import run as runs
from loyalty_core.members.identity import resolve_program

MAX_UPLOAD = 200 * 1024 * 1024  # the whole upload; larger bases go through `kopilka import`
MAX_FILES = 8
_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,200}\.(csv|jsonl|ndjson|txt)$", re.IGNORECASE)
RunId = Annotated[str, PathParameter(name="run", pattern=r"^[0-9a-f]{64}$")]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _out(rec: report.Reconciliation, dry_run: bool) -> dict[str, Any]:
    body = dataclasses.asdict(rec)
    body["merges"] = body["merges"][:1000]
    body["conflicts"] = body["conflicts"][:1000]
    body["balanced"] = rec.balanced
    body["report_markdown"] = report.markdown(rec, dry_run=dry_run)
    return body


async def _run_of(run: str) -> runs.Program:
    row = await db.fetchrow("SELECT program FROM import_run WHERE id = $1", run)
    if row is None:
        raise NotFound(f"no import run {run}")
    return await runs.load_program(row["program"])


class AdminImportsController(Controller):
    path = "/admin/v1/imports"
    tags = ["operator import"]
    dependencies = {"now": Provide(_now, sync_to_thread=False)}
    guards = [require_roles("import")]

    @post("/", status_code=HTTP_201_CREATED, request_max_body_size=MAX_UPLOAD)
    async def upload(self, request: Request, now: dt.datetime, program: ProgramCode = None) -> dict[str, Any]:
        """Multipart: the export files (each part's file name says what it holds, or the mapping does) and an
        optional part named `mapping` (TOML). Validates and stages them: a dry run; nothing but the staging tables
        is written. Answers the reconciliation report; `POST /admin/v1/imports/{run}/apply` writes."""
        ref = await resolve_program(program)
        if request.content_type[0] != "multipart/form-data":
            raise ValidationFailed("send the files as multipart/form-data")
        # read here, not as `data`: the input guard takes a declared body for JSON
        form = await request.form()
        parts = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
        mapping_part = next((v for k, v in parts if k == "mapping"), None)
        files = [v for k, v in parts if k != "mapping"]
        if not files or len(files) > MAX_FILES:
            raise ValidationFailed(f"upload 1 to {MAX_FILES} export files")
        with tempfile.TemporaryDirectory(prefix="kopilka-import-") as tmp:
            paths = []
            for upload in files:
                name = Path(upload.filename or "").name
                if not _NAME.match(name) or name != upload.filename:
                    raise ValidationFailed(f"{upload.filename!r}: a file name ending in .csv or .jsonl, without a path")
                path = Path(tmp) / name
                if path.exists():
                    raise ValidationFailed(f"two files are named {name!r}")
                path.write_bytes(await upload.read())
                paths.append(path)
            try:
                mapping = read.Mapping()
                if mapping_part is not None:
                    mapping_path = Path(tmp) / "mapping.toml.in"
                    mapping_path.write_bytes(await mapping_part.read())
                    mapping = read.load_mapping(mapping_path)
                staged = await runs.stage(await runs.load_program(ref.id), paths, mapping, now)
            except read.ReadError as exc:
                raise ValidationFailed(str(exc)) from None
        return _out(await report.reconcile(staged.run), dry_run=True)

    @post("/{run:str}/apply", status_code=HTTP_200_OK)
    async def apply(self, request: Request, run: RunId, now: dt.datetime) -> dict[str, Any]:
        """Write the staged run (the phases not done yet: repeating it changes nothing). Audited with the key's
        name. `balanced` is true only when every accepted point is in the database."""
        program = await _run_of(run)
        try:
            await runs.apply(program, run, now, current_operator(request).name)
        except read.ReadError as exc:
            raise ValidationFailed(str(exc)) from None
        return _out(await report.reconcile(run), dry_run=False)

    @get("/{run:str}")
    async def show(self, run: RunId) -> dict[str, Any]:
        """The run's reconciliation report, as it stands."""
        await _run_of(run)
        rec = await report.reconcile(run)
        return _out(rec, dry_run=not rec.applied)

    @get("/{run:str}/rejects", media_type="text/csv")
    async def rejects(self, run: RunId) -> Response[bytes]:
        """Every row not imported (file, line, field, reason, action), as CSV."""
        await _run_of(run)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rejects.csv"
            await report.write_rejects(run, path)
            return Response(path.read_bytes(), media_type="text/csv; charset=utf-8")


ROUTES = [AdminImportsController]
