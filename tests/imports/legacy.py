"""In-process import runs for the stories that need the clock (a tier carry that ends, a delta a day later): the
same functions `kopilka import` calls (stage, apply, reconcile), against the test database."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

from loyalty_core import db
from loyalty_core.imports import read, report
from loyalty_core.imports import run as runs
from tests.factories import Shop


def phone() -> str:
    return "+7983" + f"{secrets.randbelow(10**7):07d}"


def write(src: Path, files: dict[str, list[dict]]) -> Path:
    """Kopilka's own field names need no mapping: CSV (`;`) for flat rows, JSON Lines for history with lines."""
    src.mkdir(parents=True, exist_ok=True)
    for old in src.iterdir():
        old.unlink()
    for name, rows in files.items():
        if name.endswith(".jsonl"):
            (src / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        else:
            header = list(rows[0])
            text = ";".join(header) + "\n" + "".join(";".join(str(r.get(h, "")) for h in header) + "\n" for r in rows)
            (src / name).write_text(text, encoding="utf-8")
    return src


async def apply(shop: Shop, src: Path, now: dt.datetime | None = None, *, dry: bool = False) -> report.Reconciliation:
    now = now or dt.datetime.now(dt.UTC)
    program = await runs.load_program(shop.program_id)
    staged = await runs.stage(program, [src], read.load_mapping(None), now)
    if not dry:
        await runs.apply(program, staged.run, now, "test")
    return await report.reconcile(staged.run)


async def membership(shop: Shop, legacy_id: str) -> dict:
    row = await db.fetchrow(
        "SELECT ms.id, ms.customer, ms.tier_spend, ms.carried_spend, ms.carried_until, ms.purchases_count, t.code tier, "
        "a.id account, a.active, a.pending, (SELECT number FROM card c WHERE c.membership = ms.id AND c.status = 'active' "
        "ORDER BY c.id LIMIT 1) card FROM membership ms JOIN tier t ON t.id = ms.tier JOIN account a ON a.membership = ms.id "
        "WHERE ms.program = $1 AND ms.legacy_id = $2", shop.program_id, legacy_id)
    assert row is not None, legacy_id
    return dict(row)
