"""The settle job tells the shopper when points become spendable and, once, when they are about to expire."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.push.messages import render
from loyalty_core.ledger import ops
from loyalty_core.ledger.settle import settle_due
from loyalty_core.piccolo_conf import DB
from loyalty_core.messaging.notifications import after_settle, queue_expiring_soon
from loyalty_core.tables import Notification
from tests.factories import Shop, make_member
from tests.push_worker.conftest import notifications_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_activated_points_are_announced_and_expiring_ones_announced_once(shop: Shop, quiet_outbox: None) -> None:
    now = dt.datetime.now(dt.UTC)
    member = await make_member(shop)
    assert member.account_id is not None and member.customer_id is not None
    async with DB.transaction():
        state = await ops.lock_account(member.account_id, now)
        await ops.accrue(state, 120, now, kind="accrue", source="sale", activates_at=now + dt.timedelta(days=1),
                         expires_at=now + dt.timedelta(days=6), reason="receipt r-1")

    later = now + dt.timedelta(days=2)
    await settle_due(later, on_settled=after_settle)
    activated = await notifications_of(member.customer_id, "points_activated")
    assert [n["payload"] for n in activated] == [{"points": 120, "active": 120}]
    assert activated[0]["card"] == member.card_id
    assert await notifications_of_card_kind(member.card_id, "pass_update") == 1

    assert await queue_expiring_soon(later, days=7) >= 1
    assert await queue_expiring_soon(later, days=7) == 0  # a second run (or a second settle) adds nothing
    expiring = await notifications_of(member.customer_id, "points_expiring")
    assert len(expiring) == 1 and expiring[0]["payload"]["points"] == 120
    message = render("points_expiring", expiring[0]["payload"], "ru", notification_id=expiring[0]["id"])
    assert message is not None and message.body.startswith("120 баллов сгорят ")


async def notifications_of_card_kind(card_id: int, kind: str) -> int:
    return await Notification.count().where((Notification.card == card_id) & (Notification.kind == kind))
