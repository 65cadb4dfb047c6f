"""The PassKit web service's use-cases: devices registering for a pass's updates, and what changed since.

Apple's protocol: a device that added the pass registers its push token with
the pass's authentication token; after a pass push it asks which of its passes
changed since the tag we gave it last (`lastUpdated`), then fetches each.
The tag is the newest `card.pass_updated_at` among the device's passes, as
epoch microseconds.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Literal

import msgspec

from loyalty_core.tables import Card, PassRegistration


class UpdatedSerials(msgspec.Struct, frozen=True):
    serialNumbers: list[str]
    lastUpdated: str


class InvalidUpdateTag(ValueError):
    """passesUpdatedSince is not a tag this service gave out."""


def update_tag(moment: dt.datetime) -> str:
    return str(int(moment.timestamp()) * 1_000_000 + moment.microsecond)


def parse_update_tag(tag: str | None) -> dt.datetime | None:
    if not tag:
        return None
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 20:
        raise InvalidUpdateTag(tag)
    micros = int(tag)
    try:  # twenty digits pass the check above and still overflow a datetime
        return dt.datetime.fromtimestamp(micros // 1_000_000, dt.UTC) + dt.timedelta(microseconds=micros % 1_000_000)
    except (OverflowError, OSError, ValueError):
        raise InvalidUpdateTag(tag) from None


async def authorized_card(serial: str, token: str) -> int | None:
    """The card id if `token` is the pass's authentication token (compared in constant time)."""
    if not token:
        return None
    row = await Card.select(Card.id, Card.pass_auth_token).where(Card.number == serial).first()
    if row is None or row["pass_auth_token"] is None:
        return None
    if not hmac.compare_digest(row["pass_auth_token"].encode(), token.encode()):
        return None
    return row["id"]


async def register_device(card_id: int, device_id: str, push_token: str) -> Literal["created", "updated"]:
    """Register (or refresh the push token of) a device for the card's updates."""
    rows = await PassRegistration.raw(
        "INSERT INTO pass_registration (card, device_library_id, push_token, created_at) VALUES ({}, {}, {}, now()) "
        "ON CONFLICT (card, device_library_id) DO UPDATE SET push_token = EXCLUDED.push_token "
        "RETURNING (xmax = 0) AS inserted",
        card_id, device_id, push_token,
    )
    return "created" if rows[0]["inserted"] else "updated"


async def unregister_device(card_id: int, device_id: str) -> None:
    await PassRegistration.delete().where(
        (PassRegistration.card == card_id) & (PassRegistration.device_library_id == device_id))


async def updated_serials(device_id: str, since: dt.datetime | None) -> UpdatedSerials | None:
    """Serial numbers of the device's passes changed after `since`; None if nothing changed."""
    rows = await PassRegistration.raw(
        "SELECT c.number, c.pass_updated_at FROM pass_registration r JOIN card c ON c.id = r.card "
        "WHERE r.device_library_id = {} AND c.pass_updated_at IS NOT NULL "
        "AND ({}::timestamptz IS NULL OR c.pass_updated_at > {}::timestamptz) ORDER BY c.number",
        device_id, since, since,
    )
    if not rows:
        return None
    newest = max(r["pass_updated_at"] for r in rows)
    return UpdatedSerials(serialNumbers=[r["number"] for r in rows], lastUpdated=update_tag(newest))
