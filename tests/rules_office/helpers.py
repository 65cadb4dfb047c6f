"""A program with a promotion to change, receipts sold through the real till, and staff actors."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import httpx
import msgspec

from loyalty_core.office.approvals import Actor
from loyalty_core.tables import Store
from tests.factories import Shop, basic_rules, make_shop, sale_body

_ids = itertools.count(9_000_000)


def actor(name: str = "") -> Actor:
    n = next(_ids)
    return Actor(name=f"staff:{name or 'marketer'}-{n}@example.org", ref=f"staff:{n}", origin="127.0.0.1")


async def promo_shop() -> Shop:
    """Basic 3 % / Silver 5 % / Gold 7 %, and a promotion group: 'winter' gives 5 % on dairy."""
    from loyalty_core.engine.effects import PercentPoints
    from loyalty_core.engine.program import Rule, RuleGroup

    base = basic_rules(pending_days=0)
    promo = RuleGroup(code="promo", name="Promotions", stage="accrual", rules=[
        Rule(code="winter", name="Winter points", effect=PercentPoints(bp=500)),
    ])
    discounts = RuleGroup(code="sale", name="Discounts", stage="discount", rules=[])
    shop = await make_shop(msgspec.structs.replace(base, groups=[promo, discounts]))
    await Store.update({Store.program: shop.program_id}).where(Store.id == shop.store_id)  # its sales without a card
    return shop


async def sell(server: str, shop: Shop, card: str | None, lines: list[tuple[str, float, int]],
               when: dt.datetime | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as till:
        answer = await till.post("/pos/v1/sales/confirm", json=sale_body(shop, lines, card=card, when=when),
                                 headers=shop.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def winter_form(bp: str, **more: str) -> dict[str, list[str]]:
    """The editor's form for the 'winter' rule, as a browser posts it."""
    form = {"code": ["winter"], "name": ["Winter points"], "priority": ["0"], "active": ["on"], "group": ["promo"],
            "effect.kind": ["percent_points"], "effect.bp": [bp], "effect.max_points": [""]}
    form.update({k: [v] for k, v in more.items()})
    return form
