"""What a shopper's links do: unsubscribe from a channel (no login: the signed token is the proof), an
e-mail's open pixel, and the app reporting a campaign push opened. Tokens are made and read in model.py."""

from __future__ import annotations

import datetime as dt

from loyalty_core import db
from loyalty_core.piccolo_conf import DB


async def unsubscribe(customer_id: int, channel: str, now: dt.datetime) -> bool:
    """The channel's consent withdrawn (a new consent row, as every consent change is); False if it already was."""
    async with DB.transaction():
        conn = db.connection()
        # one change at a time per shopper: two clicks at once record one withdrawal
        await conn.execute("SELECT pg_advisory_xact_lock(7152, $1::int)", customer_id)
        latest = await conn.fetchrow(
            "SELECT granted FROM consent WHERE customer = $1 AND channel = $2 ORDER BY changed_at DESC, id DESC LIMIT 1",
            customer_id, channel)
        exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customer WHERE id = $1)", customer_id)
        if not exists or (latest is not None and not latest["granted"]):
            return False
        await conn.execute(
            "INSERT INTO consent (customer, channel, granted, source, changed_at) "
            "VALUES ($1, $2, false, 'unsubscribe', $3)",
            customer_id, channel, now)
    return True


async def opened(message_id: int, now: dt.datetime) -> None:
    """The first time counts; the pixel may be loaded again by every re-read."""
    await db.fetch("UPDATE campaign_message SET opened_at = $2 WHERE id = $1 AND opened_at IS NULL", message_id, now)


async def opened_in_app(message_id: int, customer_id: int, now: dt.datetime) -> None:
    """The app says the shopper opened a campaign push: only their own message (404 for any other)."""
    from loyalty_core.errors import NotFound

    rows = await db.fetch(
        "UPDATE campaign_message SET opened_at = COALESCE(opened_at, $3) WHERE id = $1 AND customer = $2 RETURNING id",
        message_id, customer_id, now)
    if not rows:
        raise NotFound("No such campaign message")
