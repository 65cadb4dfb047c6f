"""A member's cards: list, bind a plastic card, block, replace, and the QR payloads.

A card belongs to a membership, never to a tier: tier changes never touch the number. A
replacement is a new virtual card on the same membership, so balances, sales and ledger (all
keyed by membership/account) carry over; the old card stays `replaced` with `replaced_by`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from loyalty_core import db
from loyalty_core.errors import CardBlocked, CardNotFound
from loyalty_core.piccolo_conf import DB
from loyalty_core.messaging import outbox
from loyalty_core.members.card_proof import CardSecret, count_bind_attempt
from loyalty_core.members.identity import (
    CardNumber,
    Reason,
    attach_card,
    card_for_registration,
    claim_card,
    issue_virtual_card,
)
from loyalty_core.members.profile import Member
from loyalty_core.replicas import reading
from loyalty_core.tables import Card

QR_PERIOD = 30


class CardOut(msgspec.Struct, kw_only=True):
    number: str
    kind: str
    status: str
    blocked_reason: str | None
    replaced_by: str | None
    created_at: dt.datetime
    # linked to you by a till, the call centre or an import: it cannot pay with points until you confirm it here
    # (or read the code sent to your phone to the cashier); block it if you were not handed this card
    confirm_needed: bool = False
    linked_via: str = ""
    linked_at: dt.datetime | None = None


class CardBind(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    number: CardNumber
    secret: CardSecret | None = None  # printed with the card; required unless the card is already yours


class CardBlock(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[Reason, msgspec.Meta(min_length=1)]


class CardReplace(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = "replaced by the member"


class QrToken(msgspec.Struct, kw_only=True):
    token: str
    expires_in: int
    refresh_after: int


_CARDS = (
    "SELECT c.id, c.number, c.kind, c.status, c.blocked_reason, r.number AS replaced_by, c.created_at, "
    "c.confirm_needed, c.linked_via, c.linked_at "
    "FROM card c LEFT JOIN card r ON r.id = c.replaced_by WHERE c.membership = $1 ORDER BY c.id"
)
CARD_OF_CUSTOMER = (
    "SELECT c.number, c.status FROM card c JOIN membership m ON m.id = c.membership "
    "WHERE c.number = $1 AND m.customer = $2"
)


@reading
async def cards(member: Member) -> list[CardOut]:
    return await db.fetch_as(CardOut, _CARDS, member.membership_id)


async def _own_card(member: Member, number: str, lock: bool = False) -> dict:
    query = Card.select(Card.id, Card.status).where((Card.number == number) & (Card.membership == member.membership_id))
    row = await (query.lock_rows() if lock else query).first()
    if row is None:
        raise CardNotFound(f"Card {number} is not one of your cards")
    return row


async def card_view(member: Member, number: str) -> CardOut:
    for card in await cards(member):
        if card.number == number:
            return card
    raise CardNotFound(f"Card {number} is not one of your cards")


async def bind_card(member: Member, bind: CardBind, now: dt.datetime, valkey: Any, ip: str) -> CardOut:
    """Register a plastic card someone handed over: with the secret printed on it, it becomes this member's,
    its anonymous points too. Attempts are limited per shopper, per address and per card."""
    number = bind.number.strip()
    await count_bind_attempt(valkey, f"customer:{member.customer_id}", ip, number)
    async with DB.transaction():
        card = await card_for_registration(number, member.program_id)
        claim_card(card, member.customer_id, "app", bind.secret)
        await attach_card(card, member.membership_id, member.customer_id, now, f"card {number} bound by the member")
    return await card_view(member, number)


async def confirm_card(member: Member, number: str) -> CardOut:
    """The signed-in member says this card, linked by a till or the call centre, is theirs: it may pay with points."""
    async with DB.transaction():
        card = await _own_card(member, number, lock=True)
        if card["status"] != "active":
            raise CardBlocked(f"Card {number} is {card['status']}")
        await Card.update({Card.confirm_needed: False}).where(Card.id == card["id"])
    return await card_view(member, number)


async def block_card(member: Member, number: str, block: CardBlock) -> CardOut:
    async with DB.transaction():
        card = await _own_card(member, number, lock=True)
        if card["status"] == "replaced":
            raise CardBlocked(f"Card {number} was already replaced")
        await Card.update({Card.status: "blocked", Card.blocked_reason: block.reason}).where(Card.id == card["id"])
        # the wallet pass on the phone is voided at its next fetch
        await outbox.pass_changed(card["id"], dt.datetime.now(dt.UTC))
    return await card_view(member, number)


async def replace_card(member: Member, number: str, change: CardReplace, now: dt.datetime) -> CardOut:
    """A new virtual card on the same membership; the old number stops working at the till."""
    async with DB.transaction():
        card = await _own_card(member, number, lock=True)
        if card["status"] == "replaced":
            raise CardBlocked(f"Card {number} was already replaced")
        new_number = await issue_virtual_card(member.program_id, member.membership_id, now)
        new = await Card.select(Card.id).where(Card.number == new_number).first()
        await Card.update(
            {Card.status: "replaced", Card.replaced_by: new["id"], Card.blocked_reason: change.reason}  # type: ignore[index]
        ).where(Card.id == card["id"])
        # the old pass keeps its token so the phone can fetch it once more, voided
        await outbox.pass_changed(card["id"], now)
    return await card_view(member, new_number)


async def active_card_of_customer(customer_id: int, number: str) -> str:
    """The number if it is an active card of one of the customer's memberships (for QR rendering)."""
    row = await db.fetchrow(CARD_OF_CUSTOMER, number, customer_id)
    if row is None:
        raise CardNotFound(f"Card {number} is not one of your cards")
    if row["status"] != "active":
        raise CardBlocked(f"Card {number} is {row['status']}")
    return number


def qr_token(number: str, secret: str, now: dt.datetime) -> QrToken:
    """The rotating app-screen token `/pos/v1` resolves; refresh a few seconds before it turns."""
    from loyalty_core.shopper_auth.qr_token import issue_app_qr_token

    return QrToken(token=issue_app_qr_token(number, secret, now, period=QR_PERIOD), expires_in=QR_PERIOD,
                   refresh_after=QR_PERIOD - 5)
