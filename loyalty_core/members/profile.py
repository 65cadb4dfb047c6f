"""The shopper's own data: who they are in a program, profile, consents, push devices, account deletion.

Every function takes the authenticated customer id and only ever touches rows reachable from it,
so a foreign id simply is not found.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Literal

import msgspec

from loyalty_core import db
from loyalty_core.errors import DomainError, NotFound, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.office import audit
from loyalty_core.members.identity import (
    ConsentIn,
    Name,
    Reason,
    record_consents,
    resolve_program,
)
from loyalty_core.tables import (
    Card,
    Consent,
    Customer,
    Membership,
    PushDevice,
    RefreshToken,
)

# --- the statements ------------------------------------------------------------------------------------------

MEMBER_OF = (
    "SELECT m.id AS membership_id, m.status, a.id AS account_id FROM membership m "
    "LEFT JOIN account a ON a.membership = m.id AND a.currency = 'points' "
    "WHERE m.customer = $1 AND m.program = $2"
)
MEMBERSHIPS = (
    "SELECT p.code AS program, m.status, m.referral_code, t.code AS tier, m.joined_at, "
    "(SELECT number FROM card c WHERE c.membership = m.id AND c.status = 'active' ORDER BY c.id DESC LIMIT 1) AS card_number "
    "FROM membership m JOIN program p ON p.id = m.program LEFT JOIN tier t ON t.id = m.tier "
    "WHERE m.customer = $1 ORDER BY m.id"
)
REGISTER_DEVICE = (
    "INSERT INTO push_device (customer, platform, token, created_at, dead_at) VALUES ($1, $2, $3, $4, NULL) "
    "ON CONFLICT (platform, token) DO UPDATE SET customer = EXCLUDED.customer, dead_at = NULL "
    "RETURNING id, platform, created_at"
)
DEVICE_SEEN = (
    "INSERT INTO push_device_seen (customer, token_hash, seen_at) VALUES ($1, encode(sha256(convert_to($2, 'UTF8')), "
    "'hex'), $3) ON CONFLICT (customer, token_hash) DO NOTHING"
)


class Member(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: int
    program_id: int
    program_code: str
    timezone: str
    rules_version: int
    membership_id: int
    account_id: int | None
    status: str


async def member_of(customer_id: int, program_code: str | None) -> Member:
    program = await resolve_program(program_code)
    row = await db.fetchrow(MEMBER_OF, customer_id, program.id)
    if row is None:
        raise NotFound(f"You are not a member of program {program.code!r}: join it first")
    return Member(customer_id=customer_id, program_id=program.id, program_code=program.code, timezone=program.timezone,
                  rules_version=program.rules_version, **dict(row))


# --- cursor pagination --------------------------------------------------------------------


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"k1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The last id the previous page ended at; the cursor is opaque to clients."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "k1":
            raise ValueError(raw)
        last = int(value)
        if not 0 < last < 2**63:
            raise ValueError(raw)
        return last
    except ValueError:
        raise ValidationFailed("cursor is not one this API returned") from None


def page_limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise ValidationFailed("limit must be between 1 and 100")
    return limit


# --- profile ------------------------------------------------------------------------------


class MembershipOut(msgspec.Struct, kw_only=True):
    program: str
    status: str
    card_number: str | None
    referral_code: str | None
    tier: str | None
    joined_at: dt.datetime


class Profile(msgspec.Struct, kw_only=True):
    id: int
    phone: str | None
    email: str | None
    name: str
    birth_date: dt.date | None
    locale: str
    created_at: dt.datetime
    memberships: list[MembershipOut]


class BirthDateLocked(DomainError):
    slug, status, title = "birth-date-locked", 409, "The birth date is already set"


class ProfileUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Phone and e-mail are not editable here: a new contact has to be proven with a code first.
    The birth date is set once; a correction goes through support (correct_birth_date, audited)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    birth_date: dt.date | None | msgspec.UnsetType = msgspec.UNSET
    locale: Literal["ru", "en"] | msgspec.UnsetType = msgspec.UNSET


async def profile(customer_id: int) -> Profile:
    row = await Customer.select(
        Customer.id, Customer.phone, Customer.email, Customer.name, Customer.birth_date, Customer.locale, Customer.created_at
    ).where((Customer.id == customer_id) & (Customer.status == "active")).first()
    if row is None:
        raise NotFound("customer does not exist")
    memberships = await db.fetch_as(MembershipOut, MEMBERSHIPS, customer_id)
    return Profile(**row, memberships=memberships)


def _plausible_birth_date(value: object) -> None:
    if isinstance(value, dt.date) and not dt.date(1900, 1, 1) <= value <= dt.date.today():
        raise ValidationFailed("birth_date is not a plausible birth date")


async def update_profile(customer_id: int, change: ProfileUpdate, now: dt.datetime | None = None) -> Profile:
    """Name and locale any time; the birth date once (sending the same date again is fine)."""
    _plausible_birth_date(change.birth_date)
    now = now or dt.datetime.now(dt.UTC)
    fields = {k: v for k, v in msgspec.structs.asdict(change).items() if v is not msgspec.UNSET}
    async with DB.transaction():
        if "birth_date" in fields:
            row = await Customer.select(Customer.birth_date).where(Customer.id == customer_id).lock_rows().first()
            current = row["birth_date"] if row else None
            if current is not None and fields["birth_date"] != current:
                # changing it at will would make any day a birthday (x10 at the till)
                raise BirthDateLocked("The birth date is already set; to correct it, contact support")
            if current is None and fields["birth_date"] is not None:
                fields["birth_date_set_at"] = now
            else:
                del fields["birth_date"]  # unchanged
        values = {getattr(Customer, k): v for k, v in fields.items()}
        if values:
            await Customer.update(values).where((Customer.id == customer_id) & (Customer.status == "active"))
    return await profile(customer_id)


class BirthDateCorrection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    birth_date: dt.date | None  # None: remove a wrong date
    reason: Annotated[Reason, msgspec.Meta(min_length=3)]


async def correct_birth_date(customer_id: int, change: BirthDateCorrection, actor: str, now: dt.datetime,
                             origin: str = "") -> Profile:
    """Support corrects a birth date: recorded in the audit trail with the reason; the birthday rules count
    the new date as known from now (a correction is no shortcut to a birthday bonus)."""
    _plausible_birth_date(change.birth_date)
    async with DB.transaction():
        row = await (
            Customer.select(Customer.birth_date, Customer.birth_date_set_at)
            .where((Customer.id == customer_id) & (Customer.status == "active")).lock_rows().first()
        )
        if row is None:
            raise NotFound(f"customer {customer_id} does not exist")
        await Customer.update({Customer.birth_date: change.birth_date,
                               Customer.birth_date_set_at: now if change.birth_date else None}).where(
            Customer.id == customer_id)
        await audit.record(actor, "customer.birth_date", f"customer:{customer_id}",
                           {"birth_date": row["birth_date"], "birth_date_set_at": row["birth_date_set_at"]},
                           {"birth_date": change.birth_date, "birth_date_set_at": now if change.birth_date else None},
                           change.reason, now, origin)
    return await profile(customer_id)


# --- consents -----------------------------------------------------------------------------


class ConsentOut(msgspec.Struct, kw_only=True):
    channel: str
    granted: bool
    source: str
    changed_at: dt.datetime


class Consents(msgspec.Struct, kw_only=True):
    current: list[ConsentOut]  # the latest decision per channel
    history: list[ConsentOut]  # every decision, newest first


class ConsentUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    consents: list[ConsentIn]
    source: Literal["app", "web"] = "app"


async def consents(customer_id: int) -> Consents:
    rows = await (
        Consent.select(Consent.channel, Consent.granted, Consent.source, Consent.changed_at)
        .where(Consent.customer == customer_id)
        .order_by(Consent.changed_at, ascending=False)
        .order_by(Consent.id, ascending=False)
    )
    history = [ConsentOut(**r) for r in rows]
    current: dict[str, ConsentOut] = {}
    for c in history:
        current.setdefault(c.channel, c)
    return Consents(current=sorted(current.values(), key=lambda c: c.channel), history=history)


async def change_consents(customer_id: int, change: ConsentUpdate, now: dt.datetime) -> Consents:
    if not change.consents:
        raise ValidationFailed("name at least one channel")
    async with DB.transaction():
        await record_consents(customer_id, list(change.consents), change.source, now)
    return await consents(customer_id)


# --- push devices -------------------------------------------------------------------------


class DeviceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    platform: Literal["apns", "fcm"]
    token: Annotated[str, msgspec.Meta(min_length=8, max_length=400, pattern=r"^[\x21-\x7e]+$")]


class Device(msgspec.Struct, kw_only=True):
    id: int
    platform: str
    created_at: dt.datetime


async def register_device(customer_id: int, device: DeviceIn, now: dt.datetime) -> Device:
    """Idempotent per (platform, token); a token seen with another customer moves to this one (same phone, new login)."""
    token = device.token.strip()
    if not 8 <= len(token) <= 400 or any(ch.isspace() for ch in token):
        raise ValidationFailed("token must be 8-400 characters without spaces")
    registered = await db.fetchrow_as(Device, REGISTER_DEVICE, customer_id, device.platform, token, now)
    # the token moves to whoever registers it last; who had it before is kept (the referral check's "same phone")
    await db.fetch(DEVICE_SEEN, customer_id, f"{device.platform}:{token}", now)
    assert registered is not None  # an upsert returns its row
    return registered


async def devices(customer_id: int) -> list[Device]:
    rows = await (
        PushDevice.select(PushDevice.id, PushDevice.platform, PushDevice.created_at)
        .where((PushDevice.customer == customer_id) & PushDevice.dead_at.is_null())
        .order_by(PushDevice.id)
    )
    return [Device(**r) for r in rows]


async def unregister_device(customer_id: int, device_id: int) -> None:
    deleted = await (
        PushDevice.delete().where((PushDevice.id == device_id) & (PushDevice.customer == customer_id)).returning(PushDevice.id)
    )
    if not deleted:
        raise NotFound(f"device {device_id} is not one of yours")


# --- deletion -----------------------------------------------------------------------------


async def delete_account(customer_id: int, now: dt.datetime) -> None:
    """Forget the person, keep the books: contacts and name go, ledger and sales stay (anonymous)."""
    async with DB.transaction():
        await Customer.update(
            {Customer.phone: None, Customer.email: None, Customer.name: "", Customer.birth_date: None,
             Customer.birth_date_set_at: None, Customer.status: "deleted", Customer.deleted_at: now}
        ).where(Customer.id == customer_id)
        await record_consents(customer_id, [ConsentIn(c, False) for c in ("sms", "email", "push")], "deletion", now)
        await PushDevice.delete().where(PushDevice.customer == customer_id)
        await RefreshToken.update({RefreshToken.revoked_at: now}).where(
            (RefreshToken.customer == customer_id) & RefreshToken.revoked_at.is_null()
        )
        membership_ids = [r["id"] for r in await Membership.select(Membership.id).where(Membership.customer == customer_id)]
        if membership_ids:
            await Membership.update({Membership.status: "closed", Membership.referral_code: None}).where(
                Membership.id.is_in(membership_ids)
            )
            await Card.update({Card.status: "blocked", Card.blocked_reason: "account deleted", Card.pass_auth_token: None}).where(
                Card.membership.is_in(membership_ids) & Card.status.is_in(["active", "emitted"])
            )
