"""Queue a campaign whose time has come: set-based, a few statements for any number of shoppers.

In one transaction (all or nothing; a second run finds the campaign queued and does nothing):
1. the targets: members of the segment, each with the holdout draw (`model.HOLDOUT_SQL`, the same for the same
   campaign and member) and the frequency cap as it stands now, recorded in campaign_member;
2. a personal coupon code for every target who will be sent the message (the campaign's series);
3. one campaign_message per target neither in the control group nor capped: the campaigns' outbox.
The cap is checked again when each message goes out (delivery.claim), across campaigns queued meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import msgspec

from loyalty_core import db
from loyalty_core.piccolo_conf import DB

Progress = Callable[[str, int], None]  # (step, rows) as each step finishes

_TARGETS = """
INSERT INTO campaign_member (campaign, membership, customer, control, capped, coupon_code)
SELECT c.id, m.id, m.customer, d.control,
       NOT d.control AND c.cap_messages > 0 AND COALESCE(r.n, 0) >= c.cap_messages, NULL
FROM campaign c
JOIN membership m ON m.program = c.program AND m.segments @> ARRAY[c.segment]::varchar[]
CROSS JOIN LATERAL (SELECT (('x' || substr(md5(c.code || ':' || m.id::text), 1, 8))::bit(32)::bigint % 10000)
                    < c.holdout_bp AS control) d
LEFT JOIN (SELECT x.customer, count(*) AS n FROM campaign_message x
           WHERE x.status IN ('sending', 'sent', 'delivered', 'unknown')
             AND COALESCE(x.send_started_at, $2) > $2 - make_interval(days => $3)
           GROUP BY x.customer) r ON r.customer = m.customer AND $4
WHERE c.id = $1 AND m.status = 'active' AND m.customer IS NOT NULL
ON CONFLICT (campaign, membership) DO NOTHING
"""

# unique codes drawn in SQL (no 0/O/1/I, as loyalty_core.coupons.codes draws them); a clash is drawn again
_COUPONS = """
WITH issued AS (
  INSERT INTO coupon (series, code, membership, uses, status, issued_at, expires_at)
  SELECT s.id, 'K' || translate(upper(substr(md5(random()::text || cm.membership::text), 1, 10)), '01', 'XY'),
         cm.membership, 0, 'active', $2, s.valid_to
  FROM campaign_member cm JOIN campaign c ON c.id = cm.campaign JOIN coupon_series s ON s.code = c.coupon_series
  WHERE cm.campaign = $1 AND NOT cm.control AND NOT cm.capped AND cm.coupon_code IS NULL
  ON CONFLICT (code) DO NOTHING
  RETURNING membership, code)
UPDATE campaign_member cm SET coupon_code = issued.code FROM issued
WHERE cm.campaign = $1 AND cm.membership = issued.membership
"""

_WITHOUT_CODE = ("SELECT EXISTS (SELECT 1 FROM campaign_member WHERE campaign = $1 AND NOT control AND NOT capped "
                 "AND coupon_code IS NULL)")

_MESSAGES = """
INSERT INTO campaign_message (campaign, membership, customer, status, channel, attempts, next_attempt_at,
                              provider_id, last_error)
SELECT cm.campaign, cm.membership, cm.customer, 'pending', '', 0, $2, '', ''
FROM campaign_member cm WHERE cm.campaign = $1 AND NOT cm.control AND NOT cm.capped
ON CONFLICT (campaign, membership) DO NOTHING
"""

_COUNTS = """
UPDATE campaign c SET status = 'queued', queued_at = $2,
  targeted = s.targeted, control = s.control, capped = s.capped
FROM (SELECT count(*) AS targeted, count(*) FILTER (WHERE control) AS control,
             count(*) FILTER (WHERE capped) AS capped FROM campaign_member WHERE campaign = $1) s
WHERE c.id = $1
"""


class Queued(msgspec.Struct, kw_only=True):
    campaign: str
    targeted: int
    control: int
    capped: int
    messages: int
    coupons: int


def _count(status: str) -> int:
    """asyncpg's command tag: 'INSERT 0 123' / 'UPDATE 123'."""
    return int(status.rsplit(" ", 1)[-1])


async def queue_campaign(campaign_id: int, now: dt.datetime, progress: Progress | None = None) -> Queued | None:
    """Queue one scheduled campaign (None when it is not scheduled any more: queued, cancelled, another worker)."""
    say = progress or (lambda step, rows: None)
    async with DB.transaction():
        conn = db.connection()
        row = await conn.fetchrow(
            "SELECT id, code, status, cap_messages, cap_days, coupon_series, send_at FROM campaign "
            "WHERE id = $1 FOR UPDATE SKIP LOCKED", campaign_id)
        if row is None or row["status"] != "scheduled":
            return None
        targeted = _count(await conn.execute(_TARGETS, campaign_id, now, row["cap_days"], row["cap_messages"] > 0))
        say("targets", targeted)
        coupons = 0
        if row["coupon_series"]:
            for _ in range(10):  # a drawn code that exists already is drawn again on the next round
                coupons += _count(await conn.execute(_COUPONS, campaign_id, now))
                if not await conn.fetchval(_WITHOUT_CODE, campaign_id):
                    break
            say("coupons", coupons)
        messages = _count(await conn.execute(_MESSAGES, campaign_id, max(now, row["send_at"])))
        say("messages", messages)
        await conn.execute(_COUNTS, campaign_id, now)
        counts = await conn.fetchrow("SELECT control, capped FROM campaign WHERE id = $1", campaign_id)
    return Queued(campaign=row["code"], targeted=targeted, control=counts["control"], capped=counts["capped"],
                  messages=messages, coupons=coupons)


async def queue_due(now: dt.datetime, progress: Progress | None = None) -> list[Queued]:
    """Every launched campaign whose send time has come (the job `campaigns`)."""
    due = await db.fetch("SELECT id FROM campaign WHERE status = 'scheduled' AND send_at <= $1 ORDER BY send_at, id",
                         now)
    queued = []
    for row in due:
        done = await queue_campaign(row["id"], now, progress)
        if done is not None:
            queued.append(done)
    return queued
