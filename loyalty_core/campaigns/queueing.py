"""Queue a campaign whose time has come: set-based, one statement for any number of shoppers.

In one transaction (all or nothing; a second run finds the campaign queued and does nothing), one statement
reads the segment's members once and writes:
1. the targets, each with the holdout draw (`model.holdout_bucket`: the same for the same campaign and member) and
   the frequency cap as it stands now, recorded in campaign_member (the control group too);
2. one campaign_message per target neither in the control group nor capped: the campaigns' outbox.
A triggered campaign (`trigger`: a member event kind) is queued instead, on every run from its send time on,
for the members whose event happened since the last run (queue_events), once per member.
The cap is checked again when each message goes out (delivery.claim), across campaigns queued meanwhile; a
personal coupon is issued when its message goes out (delivery.issue_coupon), so nobody unreachable holds one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import msgspec

from loyalty_core import db
from loyalty_core.piccolo_conf import DB

Progress = Callable[[str, int], None]  # (step, rows) as each step finishes
ANALYZE_AFTER = 10_000  # targets: from here the tables' statistics are refreshed after queueing

# the targets and their messages in one statement: one pass over the segment's members
# both queueings end alike: the targets' insert closed, the messages of those not held out or capped, the counts
_MESSAGES = """  ON CONFLICT (campaign, membership) DO NOTHING
  RETURNING membership, customer, control, capped),
messages AS (
  INSERT INTO campaign_message (campaign, membership, customer, status, channel, attempts, next_attempt_at,
                                provider_id, last_error)
  SELECT $1, t.membership, t.customer, 'pending', '', 0, $5, '', '' FROM t WHERE NOT t.control AND NOT t.capped
  ON CONFLICT (campaign, membership) DO NOTHING RETURNING 1)
SELECT (SELECT count(*) FROM t) AS targeted, (SELECT count(*) FROM t WHERE control) AS control,
       (SELECT count(*) FROM t WHERE capped) AS capped, (SELECT count(*) FROM messages) AS messages
"""

_QUEUE = """
WITH c AS (SELECT * FROM campaign WHERE id = $1),
recent AS (SELECT x.customer, count(*) AS n FROM campaign_message x
           WHERE $4 AND x.status IN ('sending', 'sent', 'delivered', 'unknown')
             AND COALESCE(x.send_started_at, $2) > $2 - make_interval(days => $3)
           GROUP BY x.customer),
t AS (
  INSERT INTO campaign_member (campaign, membership, customer, control, capped, coupon_code)
  SELECT c.id, m.id, m.customer, d.control, NOT d.control AND c.cap_messages > 0 AND COALESCE(r.n, 0) >= c.cap_messages,
         NULL
  FROM c JOIN membership m ON m.program = c.program AND m.segments @> ARRAY[c.segment]::varchar[]
  CROSS JOIN LATERAL (SELECT (('x' || substr(md5(c.code || ':' || m.id::text), 1, 8))::bit(32)::bigint % 10000)
                             < c.holdout_bp AS control) d
  LEFT JOIN recent r ON r.customer = m.customer
  WHERE m.status = 'active' AND m.customer IS NOT NULL
""" + _MESSAGES

# a triggered campaign: the members whose event happened since the last run (one message per member ever)
_QUEUE_EVENTS = """
WITH c AS (SELECT * FROM campaign WHERE id = $1),
e AS (SELECT DISTINCT ON (e.membership) e.membership, e.id FROM member_event e JOIN c ON e.program = c.program
      WHERE e.kind = c.trigger AND e.id > c.event_watermark AND e.id <= $6 AND e.created_at >= c.send_at
      ORDER BY e.membership, e.id),
recent AS (SELECT x.customer, count(*) AS n FROM campaign_message x
           WHERE $4 AND x.status IN ('sending', 'sent', 'delivered', 'unknown')
             AND COALESCE(x.send_started_at, $2) > $2 - make_interval(days => $3)
           GROUP BY x.customer),
t AS (
  INSERT INTO campaign_member (campaign, membership, customer, control, capped, coupon_code)
  SELECT c.id, m.id, m.customer, d.control, NOT d.control AND c.cap_messages > 0 AND COALESCE(r.n, 0) >= c.cap_messages,
         NULL
  FROM c JOIN e ON true JOIN membership m ON m.id = e.membership
  CROSS JOIN LATERAL (SELECT (('x' || substr(md5(c.code || ':' || m.id::text), 1, 8))::bit(32)::bigint % 10000)
                             < c.holdout_bp AS control) d
  LEFT JOIN recent r ON r.customer = m.customer
  WHERE m.status = 'active' AND m.customer IS NOT NULL
    AND (c.segment = '' OR m.segments @> ARRAY[c.segment]::varchar[])
""" + _MESSAGES

_COUNTS = "UPDATE campaign SET status = 'queued', queued_at = $2, targeted = $3, control = $4, capped = $5 WHERE id = $1"


class Queued(msgspec.Struct, kw_only=True):
    campaign: str
    targeted: int
    control: int
    capped: int
    messages: int


async def queue_campaign(campaign_id: int, now: dt.datetime, progress: Progress | None = None) -> Queued | None:
    """Queue one scheduled campaign (None when it is not scheduled any more: queued, cancelled, another worker)."""
    say = progress or (lambda step, rows: None)
    async with DB.transaction():
        conn = db.connection()
        row = await conn.fetchrow(
            "SELECT id, code, status, cap_messages, cap_days, send_at FROM campaign "
            "WHERE id = $1 AND trigger IS NULL FOR UPDATE SKIP LOCKED", campaign_id)
        if row is None or row["status"] != "scheduled":
            return None
        done = await conn.fetchrow(_QUEUE, campaign_id, now, row["cap_days"], row["cap_messages"] > 0,
                                   max(now, row["send_at"]))
        say("targets and messages", done["targeted"])
        await conn.execute(_COUNTS, campaign_id, now, done["targeted"], done["control"], done["capped"])
    if done["targeted"] >= ANALYZE_AFTER:
        # statistics that still say "a few rows" make the worker's claim sort every due message (955 ms a batch at
        # a million) instead of reading the due index in order (6 ms); autovacuum would catch up only later
        await db.fetch("ANALYZE campaign_message")
        await db.fetch("ANALYZE campaign_member")
        say("statistics", done["targeted"])
    return Queued(campaign=row["code"], targeted=done["targeted"], control=done["control"], capped=done["capped"],
                  messages=done["messages"])


async def queue_events(campaign_id: int, now: dt.datetime) -> Queued | None:
    """A triggered campaign: queue the members whose event happened since its last run; it stays `active`.

    Events are read up to the newest committed one when the run starts, and the watermark moves to it: the
    member_events job and this one both run under the jobs' leader, one after the other, so no event with a
    smaller id commits later."""
    async with DB.transaction():
        conn = db.connection()
        row = await conn.fetchrow(
            "SELECT id, code, status, cap_messages, cap_days, send_at, event_watermark FROM campaign "
            "WHERE id = $1 AND trigger IS NOT NULL FOR UPDATE SKIP LOCKED", campaign_id)
        if row is None or row["status"] not in ("scheduled", "active"):
            return None
        newest = await conn.fetchval("SELECT COALESCE(max(id), 0) FROM member_event")
        done = await conn.fetchrow(_QUEUE_EVENTS, campaign_id, now, row["cap_days"], row["cap_messages"] > 0, now,
                                   newest)
        await conn.execute(
            "UPDATE campaign SET status = 'active', queued_at = COALESCE(queued_at, $2), "
            "event_watermark = GREATEST(event_watermark, $3), targeted = targeted + $4, control = control + $5, "
            "capped = capped + $6 WHERE id = $1",
            campaign_id, now, newest, done["targeted"], done["control"], done["capped"])
    return Queued(campaign=row["code"], targeted=done["targeted"], control=done["control"], capped=done["capped"],
                  messages=done["messages"])


async def queue_due(now: dt.datetime, progress: Progress | None = None) -> list[Queued]:
    """Every launched campaign whose send time has come, and every triggered one's new events (job `campaigns`)."""
    due = await db.fetch(
        "SELECT id, trigger IS NOT NULL AS triggered FROM campaign "
        "WHERE (status = 'scheduled' AND send_at <= $1) OR status = 'active' ORDER BY send_at, id", now)
    queued = []
    for row in due:
        done = await (queue_events(row["id"], now) if row["triggered"] else queue_campaign(row["id"], now, progress))
        if done is not None and (done.targeted or not row["triggered"]):
            queued.append(done)
    return queued
