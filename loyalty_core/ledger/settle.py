"""The settle job: applies due activations and expirations in batches, for display and notifications.

Correctness never depends on it: every operation applies what fell due under the account lock first.
Accounts busy in another transaction are skipped (SKIP LOCKED) and picked up by the next batch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from loyalty_core import db
from loyalty_core.ledger import writer
from loyalty_core.ledger.ops import load_views
from loyalty_core.ledger.posting import Plan
from loyalty_core.piccolo_conf import DB

# accounts with a lot that activates or expires by $2 (= $3), in id order after $1, $4 at most
DUE_ACCOUNTS = (
    "SELECT DISTINCT account FROM point_lot WHERE account > $1 AND ("
    "(state = 'pending' AND activates_at <= $2) OR (state = 'active' AND expires_at <= $3)) "
    "ORDER BY account LIMIT $4"
)

# adds what the shopper is told to the account's plan before it is written (the settle's messages are rows of
# its posting): (plan, points activated, points expired, now); the plan's view knows the holder
AfterAccount = Callable[[Plan, int, int, datetime], object]


class SettleReport(msgspec.Struct):
    accounts: int = 0
    activated_points: int = 0
    expired_points: int = 0
    batches: int = 0


async def due_account_ids(now: datetime, limit: int, after_id: int = 0) -> list[int]:
    rows = await db.fetch(DUE_ACCOUNTS, after_id, now, now, limit)
    return [r["account"] for r in rows]


async def settle_batch(account_ids: list[int], now: datetime, report: SettleReport, on_settled: AfterAccount | None) -> None:
    async with DB.transaction():
        for view in await load_views(account_ids, lock="skip", holder=on_settled is not None):
            plan = Plan(view, now)
            activated, expired = plan.settle(now)
            report.accounts += 1
            report.activated_points += activated
            report.expired_points += expired
            if on_settled is not None:
                on_settled(plan, activated, expired, now)
            if plan.posting().moves_points():
                await writer.write(plan.posting(), view=view)
    report.batches += 1


async def settle_due(
    now: datetime,
    batch_size: int = 500,
    progress: Callable[[SettleReport], None] | None = None,
    on_settled: AfterAccount | None = None,
) -> SettleReport:
    """Settle every account with something due as of `now`, `batch_size` accounts per transaction."""
    report = SettleReport()
    after = 0
    while True:
        ids = await due_account_ids(now, batch_size, after)
        if not ids:
            return report
        await settle_batch(ids, now, report, on_settled)
        after = ids[-1]
        if progress is not None:
            progress(report)
