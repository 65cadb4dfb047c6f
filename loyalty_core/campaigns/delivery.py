"""The campaigns' outbox as the worker sees it: claim, who the shopper is, mark the send, record the outcome.

Exactly-once rules (stricter than the transactional outbox, because an e-mail or an SMS cannot be collapsed
on the phone like a push):
- `claim` marks due messages `sending` with a lease (next_attempt_at = now + lease) under SKIP LOCKED, and
  applies the frequency cap there: it takes an advisory lock per shopper for the transaction, so two workers
  never both decide that a shopper is under the cap.
- `started` records, and commits, that the provider is about to be called (send_started_at) before it is;
  it holds only while this worker still owns the claim (same status and attempt), so a worker whose lease
  ran out cannot send what another one took over.
- A message whose worker stopped after `started` (the lease runs out with send_started_at set) may have gone
  out: it becomes `unknown` and is never sent again. One whose provider said "not sent, try later" is put
  back `pending` with send_started_at cleared.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from loyalty_core import db
from loyalty_core.piccolo_conf import DB

CAP_LOCK = 7151  # advisory lock class of "a shopper's campaign messages" (pg_advisory_xact_lock(CAP_LOCK, customer))


class Device(msgspec.Struct, frozen=True):
    id: int
    platform: str
    token: str


class Claimed(msgspec.Struct, kw_only=True):
    id: int
    campaign_id: int
    membership_id: int
    customer_id: int
    attempts: int  # including this one


class Shopper(msgspec.Struct, kw_only=True):
    """One claimed message's shopper, read when it goes out (consents change; the last word counts)."""

    message_id: int
    active: bool  # the customer and the membership are active
    email: str | None
    phone: str | None
    locale: str
    name: str
    consents: dict[str, bool]
    devices: list[Device]
    timezone: str


_DUE = """
SELECT id, customer FROM campaign_message
WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1
ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
"""

# one pass over the batch: a started message whose lease ran out becomes unknown (never sent again), one of a
# cancelled campaign skipped, one over the frequency cap capped; the rest are claimed
_CLAIM = """
WITH d AS (
  SELECT m.id, m.customer, c.cap_messages, c.cap_days, c.status AS campaign_status,
         m.status = 'sending' AND m.send_started_at IS NOT NULL AS lost,
         row_number() OVER (PARTITION BY m.customer, m.status = 'sending' AND m.send_started_at IS NOT NULL
                            ORDER BY m.id) AS nth
  FROM campaign_message m JOIN campaign c ON c.id = m.campaign WHERE m.id = ANY($1::bigint[])),
r AS (
  SELECT d.*, (SELECT count(*) FROM campaign_message x
               WHERE x.customer = d.customer AND x.status IN ('sending', 'sent', 'delivered', 'unknown')
                 AND x.id <> ALL($1::bigint[])
                 AND COALESCE(x.send_started_at, $2) > $2 - make_interval(days => d.cap_days)) AS recent
  FROM d),
v AS (
  SELECT r.*, CASE WHEN r.lost THEN 'unknown'
                   WHEN r.campaign_status = 'cancelled' THEN 'skipped'
                   WHEN r.cap_messages > 0 AND r.recent + r.nth > r.cap_messages THEN 'capped'
                   ELSE 'sending' END AS next_status
  FROM r)
UPDATE campaign_message m SET
  status = v.next_status,
  last_error = CASE v.next_status
    WHEN 'unknown' THEN 'the worker stopped after calling the provider: it may have gone out, so it is not sent again'
    WHEN 'skipped' THEN 'campaign cancelled'
    WHEN 'capped' THEN 'frequency cap: ' || v.recent || ' campaign messages within ' || v.cap_days || ' days'
    ELSE m.last_error END,
  attempts = m.attempts + CASE WHEN v.next_status = 'sending' THEN 1 ELSE 0 END,
  next_attempt_at = CASE WHEN v.next_status = 'sending' THEN $3 ELSE m.next_attempt_at END
FROM v WHERE m.id = v.id
RETURNING m.id, m.campaign, m.membership, m.customer, m.status, m.attempts
"""


async def claim(now: dt.datetime, limit: int, lease: dt.timedelta) -> list[Claimed]:
    """Up to `limit` due messages to send; those over the frequency cap or of a cancelled campaign are closed here."""
    async with DB.transaction():
        conn = db.connection()
        due = await conn.fetch(_DUE, now, limit)
        if not due:
            return []
        customers = sorted({r["customer"] for r in due})
        # in one order everywhere, so two workers' batches never wait on each other in a circle
        await conn.execute("SELECT pg_advisory_xact_lock($1, c::int) FROM unnest($2::bigint[]) AS c ORDER BY c",
                           CAP_LOCK, customers)
        rows = await conn.fetch(_CLAIM, [r["id"] for r in due], now, now + lease)
    return [Claimed(id=r["id"], campaign_id=r["campaign"], membership_id=r["membership"], customer_id=r["customer"],
                    attempts=r["attempts"]) for r in rows if r["status"] == "sending"]


_SHOPPERS = """
SELECT m.id AS message_id, cu.status = 'active' AND ms.status = 'active' AS active, cu.email, cu.phone,
  COALESCE(NULLIF(cu.locale, ''), 'ru') AS locale, cu.name,
  COALESCE((SELECT jsonb_object_agg(z.channel, z.granted) FROM (
     SELECT DISTINCT ON (channel) channel, granted FROM consent WHERE customer = cu.id
     ORDER BY channel, changed_at DESC, id DESC) z), '{}'::jsonb) AS consents,
  COALESCE((SELECT jsonb_agg(jsonb_build_array(d.id, d.platform, d.token) ORDER BY d.id) FROM push_device d
            WHERE d.customer = cu.id AND d.dead_at IS NULL), '[]'::jsonb) AS devices,
  COALESCE((SELECT st.timezone FROM sale s JOIN store st ON st.id = s.store WHERE s.membership = ms.id
            ORDER BY s.occurred_at DESC LIMIT 1), p.timezone) AS timezone
FROM campaign_message m
JOIN customer cu ON cu.id = m.customer
JOIN membership ms ON ms.id = m.membership
JOIN program p ON p.id = ms.program
WHERE m.id = ANY($1::bigint[])
"""


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


async def shoppers(message_ids: list[int]) -> dict[int, Shopper]:
    """The shopper of each message; the time zone is the one of the store they last bought in (else the program's)."""
    rows = await db.fetch(_SHOPPERS, message_ids)
    return {r["message_id"]: Shopper(
        message_id=r["message_id"], active=bool(r["active"]), email=r["email"], phone=r["phone"], locale=r["locale"],
        name=r["name"] or "", consents=_json(r["consents"]), devices=[Device(*d) for d in _json(r["devices"])],
        timezone=r["timezone"],
    ) for r in rows}


async def campaign_facts(campaign_id: int) -> dict[str, Any]:
    rows = await db.fetch(
        "SELECT c.id, c.code, c.status, c.messages, c.channels, c.bonus_points, c.bonus_valid_days, c.coupon_series, "
        "p.code AS program "
        "FROM campaign c JOIN program p ON p.id = c.program WHERE c.id = $1", campaign_id)
    row = dict(rows[0])
    row["messages"] = _json(row["messages"])
    return row


async def issue_coupon(message: Claimed, now: dt.datetime) -> str | None:
    """The member's personal code of the campaign's series: drawn the first time, the same on every retry."""
    from loyalty_core.coupons.codes import new_code

    async with DB.transaction():
        conn = db.connection()
        row = await conn.fetchrow(
            "SELECT cm.coupon_code, s.id AS series, s.valid_to FROM campaign_member cm "
            "JOIN campaign c ON c.id = cm.campaign JOIN coupon_series s ON s.code = c.coupon_series "
            "WHERE cm.campaign = $1 AND cm.membership = $2 FOR UPDATE OF cm", message.campaign_id, message.membership_id)
        if row is None:
            return None
        if row["coupon_code"] is not None:
            return row["coupon_code"]
        code = None
        while code is None:  # a drawn code that exists already is drawn again
            code = await conn.fetchval(
                "INSERT INTO coupon (series, code, membership, uses, status, issued_at, expires_at) "
                "VALUES ($1, $2, $3, 0, 'active', $4, $5) ON CONFLICT (code) DO NOTHING RETURNING code",
                row["series"], new_code(), message.membership_id, now, row["valid_to"])
        await conn.execute("UPDATE campaign_member SET coupon_code = $3 WHERE campaign = $1 AND membership = $2",
                           message.campaign_id, message.membership_id, code)
    return code


async def started(message: Claimed, channel: str, now: dt.datetime) -> bool:
    """Committed before the provider is called; False when this worker no longer owns the message."""
    rows = await db.fetch(
        "UPDATE campaign_message SET send_started_at = $3, channel = $4 "
        "WHERE id = $1 AND status = 'sending' AND attempts = $2 RETURNING id",
        message.id, message.attempts, now, channel)
    return bool(rows)


async def finish(message: Claimed, status: str, now: dt.datetime, *, channel: str = "", provider_id: str = "",
                 error: str = "", next_attempt_at: dt.datetime | None = None, not_sent: bool = False,
                 uncount_attempt: bool = False) -> None:
    """sent | delivered | failed | skipped | unknown, or pending again (`not_sent`: the provider surely did not send)."""
    await db.fetch(
        "UPDATE campaign_message SET status = $3::varchar, last_error = $4::text, "
        "provider_id = COALESCE(NULLIF($5::varchar, ''), provider_id), "
        "channel = COALESCE(NULLIF($6::varchar, ''), channel), "
        "sent_at = CASE WHEN $3::varchar IN ('sent', 'delivered') THEN $7::timestamptz ELSE sent_at END, "
        "delivered_at = CASE WHEN $3::varchar = 'delivered' THEN $7::timestamptz ELSE delivered_at END, "
        "next_attempt_at = COALESCE($8::timestamptz, next_attempt_at), "
        "send_started_at = CASE WHEN $9::boolean THEN NULL ELSE send_started_at END, "
        "attempts = attempts - CASE WHEN $10::boolean THEN 1 ELSE 0 END "
        "WHERE id = $1 AND status = 'sending' AND attempts = $2",
        message.id, message.attempts, status, error[:2000], provider_id[:200], channel, now, next_attempt_at,
        not_sent, uncount_attempt)


async def sms_awaiting_receipt(since: dt.datetime, limit: int = 100) -> list[str]:
    rows = await db.fetch(
        "SELECT provider_id FROM campaign_message WHERE channel = 'sms' AND status = 'sent' AND provider_id <> '' "
        "AND sent_at >= $1 ORDER BY sent_at LIMIT $2", since, limit)
    return [r["provider_id"] for r in rows]


async def receipt(provider_id: str, delivered: bool, now: dt.datetime, detail: str = "") -> None:
    """A provider's delivery report: delivered, or failed after it was sent."""
    await db.fetch(
        "UPDATE campaign_message SET status = CASE WHEN $2::boolean THEN 'delivered' ELSE 'failed' END, "
        "delivered_at = CASE WHEN $2::boolean THEN $3::timestamptz ELSE NULL END, last_error = $4::text "
        "WHERE provider_id = $1 AND status = 'sent'", provider_id, delivered, now, detail[:2000])
