"""A marketer over the operator API: a dynamic segment created, its condition changed, recomputed on demand, and a
static list uploaded, added to and archived; every answer a Struct the console can show."""

from __future__ import annotations

import datetime as dt

from backend.admin.auth import create_operator_key
from loyalty_core import db
from tests.factories import make_shop, unique
from tests.marketing.helpers import UTC, in_segment, member_with

DAY = dt.timedelta(days=1)


async def test_a_marketer_builds_and_tunes_segments(http, db_pool) -> None:
    shop = await make_shop()
    now = dt.datetime.now(UTC)
    quiet = await member_with(shop, last_purchase=now - 100 * DAY, purchases=5)
    quieter = await member_with(shop, last_purchase=now - 200 * DAY, purchases=2)
    headers = {"Authorization": f"Bearer {(await create_operator_key(unique('mkt'), ['marketer'])).key}"}
    url = f"/admin/v1/segments/{shop.program_code}"

    preview = await http.post(f"{url}/preview", json={"condition": {"fact": "days_since_last_purchase", "gte": 90}},
                              headers=headers)
    assert preview.status_code == 200 and preview.json()["members"] == 2, preview.text
    assert await db.fetchrow("SELECT 1 FROM segment WHERE program = $1", shop.program_id) is None
    bad = await http.post(f"{url}/preview", json={"condition": {"fact": "tier", "gt": 1}}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0].startswith("condition.gt")

    created = await http.post(url, json={"code": "quiet", "name": "Quiet 90+", "condition": {
        "fact": "days_since_last_purchase", "gte": 90}}, headers=headers)
    assert created.status_code == 201, created.text
    assert (created.json()["member_count"], created.json()["name"]) == (2, "Quiet 90+")

    changed = await http.patch(f"{url}/quiet", json={"condition": {"fact": "days_since_last_purchase", "gte": 150}},
                               headers=headers)
    assert changed.status_code == 200 and changed.json()["member_count"] == 1, changed.text
    assert await in_segment(shop, "quiet") == {quieter.membership_id}

    await db.fetch("UPDATE membership SET last_purchase_at = $2 WHERE id = $1", quiet.membership_id, now - 160 * DAY)
    recomputed = await http.post(f"{url}/quiet/recompute", headers=headers)
    assert recomputed.status_code == 200, recomputed.text
    assert {k: recomputed.json()[k] for k in ("segment", "members", "added", "removed")} == {
        "segment": "quiet", "members": 2, "added": 1, "removed": 0}

    assert (await http.post(url, json={"code": "vip", "kind": "static"}, headers=headers)).status_code == 201
    first = await http.put(f"{url}/vip/members", content=f"member\n{quiet.membership_id}\n", headers=headers)
    added = await http.put(f"{url}/vip/members", params={"mode": "add"}, headers=headers,
                           content=f"card\n{quieter.card}\nunknown-card\n")
    assert first.json()["members"] == 1 and added.json()["members"] == 2, added.text
    assert added.json()["unmatched"] == [{"line": 3, "kind": "card", "value": "unknown-card",
                                          "reason": "not a member of the program"}]
    archived = await http.patch(f"{url}/vip", json={"status": "archived"}, headers=headers)
    assert archived.json()["status"] == "archived" and archived.json()["member_count"] == 0
    assert await in_segment(shop, "vip") == set()
    one = await http.get(f"{url}/quiet", headers=headers)
    assert one.status_code == 200 and one.json()["condition"] == {"fact": "days_since_last_purchase", "gte": 150}


async def test_a_survey_sets_an_attribute_a_segment_reads(http, db_pool) -> None:
    shop = await make_shop()
    dog, cat, silent = await member_with(shop), await member_with(shop), await member_with(shop)
    headers = {"Authorization": f"Bearer {(await create_operator_key(unique('mkt'), ['marketer'])).key}"}
    url = f"/admin/v1/segments/{shop.program_code}"
    answers = f"phone,pet\n{dog.phone},dog\n{cat.phone},cat\n+79990000000,dog\n"
    uploaded = await http.put(f"{url}/attributes", content=answers, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    assert {k: uploaded.json()[k] for k in ("key", "rows", "set", "cleared", "unmatched_count")} == {
        "key": "pet", "rows": 3, "set": 2, "cleared": 0, "unmatched_count": 1}
    created = await http.post(url, json={"code": "dogs", "condition": {"fact": "attribute", "key": "pet", "eq": "dog"}},
                              headers=headers)
    assert created.json()["member_count"] == 1 and await in_segment(shop, "dogs") == {dog.membership_id}
    # the dog owner answers again with nothing: the attribute is cleared, and the segment follows at the recompute
    cleared = await http.put(f"{url}/attributes", content=f"member,pet\n{dog.membership_id},\n", headers=headers)
    assert cleared.json()["cleared"] == 1
    await http.post(f"{url}/dogs/recompute", headers=headers)
    assert await in_segment(shop, "dogs") == set() and silent.membership_id not in await in_segment(shop, "dogs")
    bad = await http.put(f"{url}/attributes", content="phone,Pet Name!\n+79990000000,x\n", headers=headers)
    assert bad.status_code == 422 and bad.json()["type"].endswith("/segment-upload-invalid")
