"""The outbox worker's reads and writes: claiming messages, delivery records, outcomes, dead tokens.

Claiming marks rows `sending` with a lease (next_attempt_at = now + lease) in
the claiming transaction, so no other worker takes them; a worker that dies
leaves them `sending` and they are claimed again when the lease runs out.
Each device a message reached is recorded at once in notification_delivery,
and a reclaimed message skips those devices.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from loyalty_core.piccolo_conf import DB
from loyalty_core.tables import Notification


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    payload: dict[str, Any]
    customer_id: int | None
    card_id: int | None
    attempts: int  # including this one


class Device(msgspec.Struct, frozen=True):
    id: int
    platform: str  # apns | fcm
    token: str


class Audience(msgspec.Struct, frozen=True, kw_only=True):
    """Who an app push is for: their language, push consent, local time zone and live devices."""

    locale: str
    push_granted: bool
    timezone: str
    devices: list[Device]


class PassDevice(msgspec.Struct, frozen=True):
    registration_id: int
    push_token: str


_RETURNING = "RETURNING n.id, n.kind, n.payload, n.customer AS customer_id, n.card AS card_id, n.attempts"


async def claim(now: dt.datetime, limit: int, lease: dt.timedelta) -> list[Claimed]:
    """Take up to `limit` due messages: first those whose worker died (lease over), then pending ones."""
    until = now + lease
    claimed: list[Claimed] = []
    async with DB.transaction():
        for status in ("sending", "pending"):
            if len(claimed) >= limit:
                break
            rows = await Notification.raw(
                "UPDATE notification n SET status = 'sending', attempts = n.attempts + 1, next_attempt_at = {} "
                "FROM (SELECT id FROM notification WHERE status = {} AND next_attempt_at <= {} "
                "ORDER BY next_attempt_at, id LIMIT {} FOR UPDATE SKIP LOCKED) due WHERE n.id = due.id " + _RETURNING,
                until, status, now, limit - len(claimed),
            )
            claimed += [_claimed(r) for r in rows]
    return claimed


def _claimed(row: dict[str, Any]) -> Claimed:
    payload = row["payload"]
    if isinstance(payload, (str, bytes)):
        payload = msgspec.json.decode(payload)
    return Claimed(id=row["id"], kind=row["kind"], payload=payload or {}, customer_id=row["customer_id"],
                   card_id=row["card_id"], attempts=row["attempts"])


async def recorded_targets(notification_id: int) -> dict[str, str]:
    """Targets this message already reached or gave up on, with the outcome."""
    rows = await Notification.raw(
        "SELECT target, outcome FROM notification_delivery WHERE notification = {}", notification_id)
    return {r["target"]: r["outcome"] for r in rows}


async def record_delivery(notification_ids: list[int], target: str, outcome: str, provider_id: str = "",
                          detail: str = "") -> None:
    """One row per message: a card's grouped pass updates share the push that stood for all of them."""
    await Notification.raw(
        "INSERT INTO notification_delivery (notification, target, outcome, provider_id, detail, created_at) "
        "SELECT n, {}, {}, {}, {}, now() FROM unnest({}::bigint[]) AS n "
        "ON CONFLICT (notification, target) DO NOTHING",
        target, outcome, provider_id[:200], detail, notification_ids,
    )


async def finish(ids: list[int], status: str, now: dt.datetime, *, error: str = "",
                 next_attempt_at: dt.datetime | None = None, uncount_attempt: bool = False) -> None:
    """Record what became of claimed messages: sent | skipped | failed, or pending again (retry, deferral)."""
    await Notification.raw(
        "UPDATE notification SET status = {}, last_error = {}, next_attempt_at = COALESCE({}, next_attempt_at), "
        "sent_at = CASE WHEN {} = 'sent' THEN {}::timestamptz ELSE sent_at END, "
        "attempts = attempts - CASE WHEN {} THEN 1 ELSE 0 END "
        "WHERE id = ANY({}::bigint[]) AND status = 'sending'",
        status, error[:2000], next_attempt_at, status, now, uncount_attempt, ids,
    )


async def audience(message: Claimed) -> Audience | None:
    if message.customer_id is None:
        return None
    rows = await Notification.raw(
        "SELECT cu.locale, cu.status, "
        "(SELECT granted FROM consent WHERE customer = cu.id AND channel = 'push' "
        " ORDER BY changed_at DESC, id DESC LIMIT 1) AS push_granted, "
        "COALESCE((SELECT p.timezone FROM card c JOIN program p ON p.id = c.program WHERE c.id = {}), "
        " (SELECT p.timezone FROM program p WHERE p.code = {}), "
        " (SELECT p.timezone FROM membership m JOIN program p ON p.id = m.program WHERE m.customer = cu.id "
        "  ORDER BY m.id LIMIT 1), 'Europe/Moscow') AS timezone "
        "FROM customer cu WHERE cu.id = {}",
        message.card_id, str(message.payload.get("program", "")), message.customer_id,
    )
    if not rows or rows[0]["status"] != "active":
        return None
    devices = await Notification.raw(
        "SELECT id, platform, token FROM push_device WHERE customer = {} AND dead_at IS NULL ORDER BY id",
        message.customer_id,
    )
    row = rows[0]
    return Audience(locale=row["locale"] or "ru", push_granted=bool(row["push_granted"]), timezone=row["timezone"],
                    devices=[Device(d["id"], d["platform"], d["token"]) for d in devices])


async def pass_devices(card_id: int) -> list[PassDevice]:
    rows = await Notification.raw(
        "SELECT id, push_token FROM pass_registration WHERE card = {} ORDER BY id", card_id)
    return [PassDevice(r["id"], r["push_token"]) for r in rows]


async def card_number(card_id: int) -> str | None:
    rows = await Notification.raw("SELECT number FROM card WHERE id = {}", card_id)
    return rows[0]["number"] if rows else None


async def device_dead(device_id: int, now: dt.datetime) -> None:
    """The provider says the app was removed: never use this token again (until the app registers it anew)."""
    await Notification.raw("UPDATE push_device SET dead_at = {} WHERE id = {} AND dead_at IS NULL", now, device_id)


async def pass_registration_dead(registration_id: int) -> None:
    """Apple says the push token is gone: the device re-registers if the pass is still on it."""
    await Notification.raw("DELETE FROM pass_registration WHERE id = {}", registration_id)
