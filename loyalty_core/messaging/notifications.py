"""Messages the settle job queues: points activated, points expiring soon, and the pass updates they imply.

`after_settle` is settle_due's `on_settled` callback: it adds the messages to
the account's posting, so they are written by the same statement as the ledger change.
`queue_expiring_soon` finds points expiring within N days and queues one
message per account and expiry day; notification.dedupe_key makes a second
run a no-op, so each lot is announced once (the key is claimed in notification_dedupe by a trigger that skips
a row whose key was claimed before: notification is partitioned by month, so it holds no unique index on the key).
"""

from __future__ import annotations

import datetime as dt

from loyalty_core import db
from loyalty_core.ledger.posting import Plan

EXPIRING_NOTICE_DAYS = 7


def after_settle(plan: Plan, activated: int, expired: int, now: dt.datetime) -> None:
    """The pass shows the new balance; the shopper hears about points that became spendable."""
    if not activated and not expired:
        return
    view = plan.view
    plan.pass_update(view.card)
    if activated and view.customer is not None:
        plan.message("points_activated", {"points": activated, "active": view.active},
                     customer=view.customer, card=view.card)


# active points expiring in ($1, $2 + the program's notice days ($3, else its settings, else $4)]; one message per
# account and day, a dedupe key seen before is skipped by the table's trigger
QUEUE_EXPIRING = (
    "WITH due AS ("
    " SELECT l.account, (l.expires_at AT TIME ZONE p.timezone)::date AS expires_on, SUM(l.remaining) AS points, "
    "  m.customer, (SELECT c.id FROM card c WHERE c.membership = m.id AND c.status = 'active' "
    "   ORDER BY c.id DESC LIMIT 1) AS card_id "
    " FROM point_lot l JOIN account a ON a.id = l.account JOIN membership m ON m.id = a.membership "
    " JOIN program p ON p.id = m.program "
    " LEFT JOIN rules_version rv ON rv.program = p.id AND rv.version = p.rules_version "
    " WHERE l.state = 'active' AND l.remaining > 0 AND l.expires_at > $1 AND l.expires_at <= $2::timestamptz "
    "  + make_interval(days => COALESCE($3::int, (rv.document->'settings'->>'expiry_notice_days')::int, $4)) "
    "  AND m.customer IS NOT NULL "
    " GROUP BY l.account, expires_on, m.customer, m.id) "
    "INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error, "
    " created_at, dedupe_key) "
    "SELECT customer, card_id, 'points_expiring', "
    " jsonb_build_object('points', points, 'expires_on', expires_on::text, 'account', account), "
    " 'pending', 0, now(), '', now(), 'points_expiring:' || account || ':' || expires_on::text FROM due "
    "RETURNING id"
)


async def queue_expiring_soon(now: dt.datetime, days: int | None = None) -> int:
    """Queue points_expiring for active points expiring within each program's settings.expiry_notice_days (`days`:
    the same for all programs); returns how many messages were new."""
    rows = await db.fetch(QUEUE_EXPIRING, now, now, days, EXPIRING_NOTICE_DAYS)
    return len(rows)
