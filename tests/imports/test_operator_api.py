"""The legacy import through the operator API: upload (a dry run), then apply; the `import` role only."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from backend.admin.auth import create_operator_key
from tests.factories import Shop, unique
from tests.imports.generator import generate


async def _key(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await create_operator_key(unique(role), [role])).key}"}


def _files(src: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    parts = [(p.stem, (p.name, p.read_bytes(), "text/csv")) for p in sorted(src.glob("*.csv"))]
    return [*parts, ("mapping", ("mapping.toml", (src / "mapping.toml").read_bytes(), "application/toml"))]


async def test_upload_is_a_dry_run_then_apply_writes_and_balances(http: httpx.AsyncClient, shop: Shop, tmp_path: Path) -> None:
    exp = generate(tmp_path / "x", 40, seed=secrets.randbelow(10**6), tag=secrets.token_hex(3), history=2)
    headers = await _key("import")
    up = await http.post("/admin/v1/imports", params={"program": shop.program_code}, files=_files(tmp_path / "x"),
                         headers=headers)
    assert up.status_code == 201, up.text
    body = up.json()
    run = body["run"]
    assert body["status"] == "staged" and body["balanced"] is False and body["points_db"] == {}
    assert sum(body["points_files"].values()) == exp.points
    assert {f["encoding"] for f in body["files"]} == {"cp1251"}

    applied = await http.post(f"/admin/v1/imports/{run}/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    assert applied.json()["balanced"] is True and sum(applied.json()["points_db"].values()) == exp.points
    assert applied.json()["history"]["receipts written"] == exp.receipts > 0  # the purchase history file too
    again = await http.post(f"/admin/v1/imports/{run}/apply", headers=headers)
    assert again.status_code == 200 and again.json()["points_db"] == applied.json()["points_db"]

    rejects = await http.get(f"/admin/v1/imports/{run}/rejects", headers=headers)
    assert rejects.status_code == 200 and rejects.text.startswith("file,line,field,reason,action")
    shown = await http.get(f"/admin/v1/imports/{run}", headers=headers)
    assert shown.status_code == 200 and shown.json()["balanced"] is True


async def test_only_the_import_role_uploads_and_applies(http: httpx.AsyncClient, shop: Shop, tmp_path: Path) -> None:
    generate(tmp_path / "x", 3, seed=1, tag=secrets.token_hex(3))
    files = _files(tmp_path / "x")
    assert (await http.post("/admin/v1/imports", files=files)).status_code == 401
    marketer = await _key("marketer")
    assert (await http.post("/admin/v1/imports", params={"program": shop.program_code}, files=files,
                            headers=marketer)).status_code == 403
    assert (await http.post(f"/admin/v1/imports/{'a' * 64}/apply", headers=marketer)).status_code == 403
    headers = await _key("import")
    missing = await http.post(f"/admin/v1/imports/{'a' * 64}/apply", headers=headers)
    assert missing.status_code == 404, missing.text
    bad_name = await http.post("/admin/v1/imports", params={"program": shop.program_code}, headers=headers,
                               files=[("members", ("../members.csv", b"legacy_id;phone\n1;+79990000000\n", "text/csv"))])
    assert bad_name.status_code == 422, bad_name.text
    assert bad_name.headers["content-type"].startswith("application/problem+json")
