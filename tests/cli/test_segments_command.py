"""`kopilka segments`: a marketer's list uploaded from a file, the segments listed with their sizes, recomputed by
hand, and the member events job run by hand."""

from __future__ import annotations

import datetime as dt

from loyalty_core.marketing import segments
from loyalty_core.marketing.segments import SegmentCreate
from tests.cli.conftest import run_kopilka
from tests.factories import make_member, make_shop


async def test_upload_list_recompute_and_events_from_the_command_line(db_pool, tmp_path) -> None:
    shop = await make_shop()
    members = [await make_member(shop) for _ in range(2)]
    now = dt.datetime.now(dt.timezone.utc)
    await segments.create_segment(shop.program_code, SegmentCreate(code="vip", kind="static"), "test", now)
    await segments.create_segment(shop.program_code, SegmentCreate(code="new", condition={
        "fact": "days_since_joined", "lte": 30}), "test", now)
    listing = tmp_path / "vip.csv"
    listing.write_text("phone\n" + "\n".join(m.phone or "" for m in members) + "\n+7 000\n", encoding="utf-8")

    uploaded = run_kopilka("segments", "upload", "vip", str(listing), "--program", shop.program_code)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "3 rows, 2 matched, 2 members in vip" in uploaded.stdout and "line 4" in uploaded.stdout

    listed = run_kopilka("segments", "list", "--program", shop.program_code)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:4] for line in listed.stdout.strip().splitlines()] == [
        ["new", "dynamic", "active", "2"], ["vip", "static", "active", "2"]]

    one = run_kopilka("segments", "recompute", "new", "--program", shop.program_code)
    assert one.returncode == 0 and "1 segments recomputed" in one.stdout, one.stderr
    events = run_kopilka("segments", "events")
    assert events.returncode == 0 and "first purchases" in events.stdout, events.stderr
    unknown = run_kopilka("segments", "upload", "nope", str(listing), "--program", shop.program_code)
    assert unknown.returncode == 1 and "segment 'nope' does not exist" in unknown.stderr
