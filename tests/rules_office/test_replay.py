"""The replay over real receipts sold through the till: what the draft would have given against what was given,
in total, per rule and per day; bounded by a cap it reports; and nothing written anywhere."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from loyalty_core.errors import ValidationFailed
from loyalty_core.rules import admin as rules_admin
from loyalty_core.rules_office import replay
from tests.factories import count_rows, make_member
from tests.rules_office.helpers import promo_shop, sell


async def test_doubling_the_winter_rate_over_last_weeks_receipts(server: str) -> None:
    shop = await promo_shop()
    anna, boris = await make_member(shop), await make_member(shop)
    now = dt.datetime.now(dt.UTC)
    sold = [await sell(server, shop, anna.card, [("milk", 2, 10_000)], when=now - dt.timedelta(days=3)),
            await sell(server, shop, boris.card, [("cheese", 1, 60_000), ("bread", 1, 5_000)],
                       when=now - dt.timedelta(days=1)),
            await sell(server, shop, None, [("milk", 1, 10_000)], when=now - dt.timedelta(hours=2))]  # no card
    elsewhere = await promo_shop()  # another program's receipts, with a card or without, are not this one's
    await sell(server, elsewhere, (await make_member(elsewhere)).card, [("milk", 1, 10_000)], when=now - dt.timedelta(hours=1))
    await sell(server, elsewhere, None, [("milk", 1, 10_000)], when=now - dt.timedelta(hours=1))
    given = sum(s["totals"]["accrued_points"] for s in sold)
    _, document = await rules_admin.live_raw_document(shop.program_code)
    draft = msgspec.json.decode(msgspec.json.encode(document))
    draft["groups"][0]["rules"][0]["effect"]["bp"] = 1000  # winter: 5 % -> 10 %
    draft["groups"][1]["rules"].append({"code": "bread-off", "name": "Bread -10%", "lines": {"skus": [shop.skus["bread"]]},
                                        "effect": {"kind": "percent_discount", "bp": 1000}})
    writes = [await count_rows(t) for t in ("ledger_entry", "point_lot", "sale", "audit_event")]

    out = await replay.replay_draft(shop.program_code, draft, 7, now)

    assert out.receipts == 3 and not out.capped and out.skipped == 0
    assert out.given.points == given and out.live.points == given  # the live rules replayed give what was given
    winter = next(r for r in out.by_rule if r.rule == "winter")
    assert winter.given.points == winter.live.points > 0
    assert winter.draft.points == pytest.approx(2 * winter.live.points, abs=2)  # rounding per receipt
    bread = next(r for r in out.by_rule if r.rule == "bread-off")
    assert (bread.given.discount, bread.live.discount, bread.draft.discount) == (0, 0, 500)
    assert out.draft.discount - out.live.discount == 500
    assert [d.receipts for d in out.by_day] == [1, 1, 1] or sum(d.receipts for d in out.by_day) == 3
    assert sum(d.draft.points for d in out.by_day) == out.draft.points
    assert [await count_rows(t) for t in ("ledger_entry", "point_lot", "sale", "audit_event")] == writes


async def test_the_cap_bounds_the_work_and_says_so(server: str) -> None:
    shop = await promo_shop()
    member = await make_member(shop)
    now = dt.datetime.now(dt.UTC)
    for hours in (30, 20, 10):
        await sell(server, shop, member.card, [("milk", 1, 10_000)], when=now - dt.timedelta(hours=hours))
    _, document = await rules_admin.live_raw_document(shop.program_code)
    out = await replay.replay_draft(shop.program_code, document, 7, now, cap=2)
    assert out.capped and out.receipts == 2 and out.cap == 2  # the newest two
    assert out.since == now - dt.timedelta(days=7)
    old = await replay.replay_draft(shop.program_code, document, 1, now - dt.timedelta(hours=15))
    assert old.receipts == 2 and not old.capped  # the period is the period
    for days, cap in ((0, 10), (replay.MAX_DAYS + 1, 10), (7, 0), (7, replay.MAX_RECEIPTS + 1)):
        with pytest.raises(ValidationFailed):
            await replay.replay_draft(shop.program_code, document, days, now, cap=cap)
    with pytest.raises(ValidationFailed):  # a draft the engine refuses is not replayed either
        await replay.replay_draft(shop.program_code, {**document, "groups": [{"code": "x"}]}, 7, now)
