"""Registration from every channel and binding cards to members.

One customer per phone and per e-mail across channels: registering again finds the same
customer. One membership per customer and program. An emitted card handed over at the till or
bound in the app brings its anonymous points along: if the customer has no membership in the
card's program the card's anonymous membership simply becomes theirs, otherwise its lots are
transferred (dates kept) and the anonymous membership is closed.

A card becomes a member's only with proof of possession: the till scanned it (channel `till`),
a legacy import vouches for it (`import`), or the shopper typed the secret printed with it (every
other channel). A card registered to a member never moves to another one (`card-taken`).
The welcome bonus is given once per phone and per e-mail per program, ever (welcome_grant keeps
a keyed hash of the contact, not the contact).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Annotated, Literal

import msgspec

from loyalty_core.errors import (
    CardBlocked,
    CardNotFound,
    CardTaken,
    Conflict,
    NotFound,
    ValidationFailed,
)
from loyalty_core import db
from loyalty_core.ledger import ops
from loyalty_core.piccolo_conf import DB
from loyalty_core.members.card_proof import CardSecret, check_secret
from loyalty_core.shopper_auth.otp import normalise_email, normalise_phone
from loyalty_core.members.tiers import assign_initial_tier
from loyalty_core.tables import (
    Card,
    Consent,
    Customer,
    Membership,
    Notification,
    Program,
    RulesVersion,
)

# --- the statements ------------------------------------------------------------------------------------------

INSERT_CUSTOMER = (
    "INSERT INTO customer (phone, email, name, birth_date, birth_date_set_at, locale, status, created_at) "
    "VALUES ($1, $2, $3, $4, $5, 'ru', 'active', $6) ON CONFLICT DO NOTHING RETURNING id"
)
LOCK_CUSTOMER = "SELECT id FROM customer WHERE id = $1 FOR UPDATE"
CLAIM_WELCOME = (
    "INSERT INTO welcome_grant (program, contact_hash, granted_at) SELECT $1, h, $2 FROM unnest($3::varchar[]) AS h "
    "ON CONFLICT (program, contact_hash) DO NOTHING RETURNING contact_hash"
)

Channel = Literal["app", "web", "till", "call_center", "import", "oidc"]
# channels where the card itself was in hand: the till scanned it, or the legacy base vouches for it
_POSSESSION_CHANNELS = frozenset({"till", "import"})
ConsentChannel = Literal["sms", "email", "push"]
_REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the till

# wire string types: bounded, and without control characters (PostgreSQL text refuses NUL outright)
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Name = Annotated[str, msgspec.Meta(max_length=200, pattern=_PRINTABLE)]
Reason = Annotated[str, msgspec.Meta(max_length=500, pattern=_PRINTABLE)]
Contact = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=_PRINTABLE)]
CardNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class ProgramRef(msgspec.Struct, frozen=True):
    id: int
    code: str
    timezone: str
    rules_version: int


class ConsentIn(msgspec.Struct, frozen=True):
    channel: ConsentChannel
    granted: bool


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    phone: Contact | None = None
    email: Contact | None = None
    name: Name = ""
    birth_date: dt.date | None = None
    card_number: CardNumber | None = None  # an emitted card handed over (till) or a plastic card to bind
    card_secret: CardSecret | None = None  # printed with the card: proof of possession outside the till
    referral_code: Code | None = None
    consents: list[ConsentIn] = []


class Registered(msgspec.Struct, kw_only=True):
    customer_id: int
    membership_id: int
    program: str
    card_number: str
    status: str
    new_customer: bool
    new_membership: bool


async def resolve_program(code: str | None) -> ProgramRef:
    """The named program, or the first one when the caller names none (most chains run one)."""
    query = Program.select(Program.id, Program.code, Program.timezone, Program.rules_version)
    query = query.where(Program.code == code) if code else query.order_by(Program.id)
    row = await query.first()
    if row is None:
        raise NotFound(f"program {code!r} does not exist" if code else "no loyalty program is configured")
    return ProgramRef(**row)


def referral_code() -> str:
    return "".join(secrets.choice(_REFERRAL_ALPHABET) for _ in range(8))


# --- customers --------------------------------------------------------------------------


def normalised_contacts(phone: str | None, email: str | None) -> tuple[str | None, str | None]:
    phone = normalise_phone(phone) if phone else None
    email = normalise_email(email) if email else None
    if phone is None and email is None:
        raise ValidationFailed("a phone or an e-mail is required")
    return phone, email


async def find_or_create_customer(
    phone: str | None, email: str | None, now: dt.datetime, name: str = "", birth_date: dt.date | None = None,
    add_contacts: bool = True,
) -> tuple[int, bool]:
    """(customer id, created). Contacts already normalised. Locks the customer row: run in a transaction.
    `add_contacts`: the caller proved every contact it names (a code, an identity provider), so one the found
    customer lacks is added; otherwise (call centre, import) an unproven contact never joins an existing customer,
    or a caller could add their phone to someone's e-mail account and log in to it."""
    by_phone = await Customer.select(Customer.id, Customer.email).where(Customer.phone == phone).first() if phone else None
    by_email = await Customer.select(Customer.id, Customer.phone).where(Customer.email == email).first() if email else None
    if by_phone and by_email and by_phone["id"] != by_email["id"]:
        raise Conflict("This phone and this e-mail belong to two different customers")
    found = by_phone or by_email
    if found is None:
        rows = await db.fetch(INSERT_CUSTOMER, phone, email, name, birth_date, now if birth_date else None, now)
        if rows:
            return rows[0]["id"], True
        # a concurrent registration of the same person won the insert: use theirs
        return await find_or_create_customer(phone, email, now, name, birth_date, add_contacts)
    customer_id = found["id"]
    await db.fetch(LOCK_CUSTOMER, customer_id)
    fill: dict = {}
    # a contact is added when the customer has none of that kind; a different one on file is kept
    # (changing a proven contact needs the shopper's own code, not a form filled in by someone else)
    if add_contacts and phone and by_phone is None and by_email is not None and by_email["phone"] is None:
        fill[Customer.phone] = phone
    if add_contacts and email and by_email is None and by_phone is not None and by_phone["email"] is None:
        fill[Customer.email] = email
    if name:
        current = await Customer.select(Customer.name).where(Customer.id == customer_id).first()
        if current and not current["name"]:
            fill[Customer.name] = name
    if fill:
        await Customer.update(fill).where(Customer.id == customer_id)
    return customer_id, False


async def record_consents(customer_id: int, consents: list[ConsentIn], source: str, now: dt.datetime) -> None:
    for consent in consents:
        await Consent.insert(
            Consent(customer=customer_id, channel=consent.channel, granted=consent.granted, source=source, changed_at=now)
        )


# --- memberships and cards ----------------------------------------------------------------


async def _membership_of(customer_id: int, program_id: int) -> dict | None:
    return await (
        Membership.select(Membership.id, Membership.status)
        .where((Membership.customer == customer_id) & (Membership.program == program_id))
        .first()
    )


async def card_for_registration(number: str, program_id: int) -> dict:
    card = await (
        Card.select(Card.id, Card.number, Card.status, Card.secret_hash, Card.membership,
                    Card.membership.customer.as_alias("customer"))
        .where((Card.number == number) & (Card.program == program_id))
        .lock_rows(of=(Card,))
        .first()
    )
    if card is None:
        raise CardNotFound(f"Card {number} is not a card of this program")
    if card["status"] in ("blocked", "replaced"):
        raise CardBlocked(f"Card {number} is {card['status']} and cannot be registered")
    return card


def claim_card(card: dict, customer_id: int, channel: str, secret: str | None) -> None:
    """The customer may make this card theirs: it is no other member's, and they proved they hold it."""
    if card["customer"] == customer_id:
        return  # already theirs: nothing to prove
    if card["customer"] is not None:
        raise CardTaken(f"Card {card['number']} belongs to another member and stays theirs")
    if channel not in _POSSESSION_CHANNELS:
        check_secret(card["number"], card["secret_hash"], secret)


async def attach_card(card: dict, membership_id: int, customer_id: int, now: dt.datetime, reason: str) -> None:
    """Make an emitted or anonymous card the member's; anonymous points follow it."""
    if card["membership"] == membership_id:
        return
    if card["customer"] is not None:
        raise CardTaken(f"Card {card['number']} belongs to another member and stays theirs")
    anonymous = card["membership"]
    if anonymous is not None:
        source = await ops.ensure_account(anonymous)
        target = await ops.ensure_account(membership_id)
        states = await ops.lock_accounts([source, target], now)
        await ops.transfer(states[source], states[target], now, reason)
        await Membership.update({Membership.status: "closed"}).where(Membership.id == anonymous)
        await Card.update({Card.membership: membership_id, Card.status: "active"}).where(Card.membership == anonymous)
    await Card.update({Card.membership: membership_id, Card.status: "active"}).where(Card.id == card["id"])


async def _new_membership(
    customer_id: int, program: ProgramRef, channel: str, status: str, card: dict | None, referrer: int | None, now: dt.datetime
) -> tuple[int, str]:
    values = dict(customer=customer_id, status=status, registration_channel=channel, referral_code=referral_code(),
                  referred_by=referrer, joined_at=now)
    if card is not None and card["customer"] is not None:
        raise CardTaken(f"Card {card['number']} belongs to another member and stays theirs")
    if card is not None and card["membership"] is not None and card["customer"] is None:
        # the anonymous membership of the handed-over card becomes the member's, points and history included
        membership_id = card["membership"]
        await Membership.update({getattr(Membership, k): v for k, v in values.items()}).where(Membership.id == membership_id)
    else:
        rows = await Membership.insert(Membership(program=program.id, **values)).returning(Membership.id)
        membership_id = rows[0]["id"]
    await ops.ensure_account(membership_id)
    await assign_initial_tier(membership_id, program.id)
    if card is not None:
        await Card.update({Card.membership: membership_id, Card.status: "active"}).where(Card.id == card["id"])
        number = await Card.select(Card.number).where(Card.id == card["id"]).first()
        return membership_id, number["number"]  # type: ignore[index]
    return membership_id, await issue_virtual_card(program.id, membership_id, now)


async def issue_virtual_card(program_id: int, membership_id: int, now: dt.datetime) -> str:
    from loyalty_core.setup.entities import next_card_number

    number = await next_card_number()
    await Card.insert(Card(number=number, program=program_id, membership=membership_id, kind="virtual", status="active",
                           created_at=now))
    return number


async def _referrer(program_id: int, code: str | None) -> int | None:
    if not code:
        return None
    row = await (
        Membership.select(Membership.id)
        .where((Membership.referral_code == code.strip().upper()) & (Membership.program == program_id))
        .first()
    )
    if row is None:
        raise ValidationFailed(f"referral code {code!r} is unknown")
    return row["id"]


async def register_member(
    program: ProgramRef, reg: Registration, channel: Channel, now: dt.datetime, *, status: str = "active",
    welcome: bool = True, linked_via: str = "",
) -> Registered:
    """Find or create the customer, then their membership in the program (with a card), in one transaction.
    `linked_via` says where a card was linked (shown to the member when the card waits for their confirmation)."""
    phone, email = normalised_contacts(reg.phone, reg.email)
    async with DB.transaction():
        customer_id, new_customer = await find_or_create_customer(phone, email, now, reg.name, reg.birth_date,
                                                                  add_contacts=channel in _CONTACT_PROVING_CHANNELS)
        existing = await _membership_of(customer_id, program.id)
        card = await card_for_registration(reg.card_number, program.id) if reg.card_number else None
        if card is not None:
            claim_card(card, customer_id, channel, reg.card_secret)
            if card["customer"] != customer_id and _needs_member_confirmation(channel, new_customer):
                await Card.update({Card.confirm_needed: True, Card.linked_at: now,
                                   Card.linked_via: linked_via or _LINKED_VIA.get(channel, channel)}).where(
                    Card.id == card["id"]
                )
        if existing is not None:
            membership_id, new_membership = existing["id"], False
            if card is not None:
                await attach_card(card, membership_id, customer_id, now, f"card {reg.card_number} registered")
            number = await _current_card(membership_id)
            status = existing["status"]
        else:
            referrer = await _referrer(program.id, reg.referral_code)
            membership_id, number = await _new_membership(customer_id, program, channel, status, card, referrer, now)
            new_membership = True
            if welcome:  # an imported member is not new to the chain: no welcome bonus, no welcome message
                if await first_welcome(program.id, phone, email, now):
                    await award_event(program, membership_id, referrer, "registered", channel, now)
                await Notification.insert(
                    Notification(customer=customer_id, kind="welcome", payload={"program": program.code}, next_attempt_at=now)
                )
        await record_consents(customer_id, list(reg.consents), channel, now)
    return Registered(customer_id=customer_id, membership_id=membership_id, program=program.code, card_number=number,
                      status=status, new_customer=new_customer, new_membership=new_membership)


_LINKED_VIA = {"till": "a till", "call_center": "the call centre", "import": "an import"}
# channels on which the shopper proved every contact of the registration (a code to it, a provider's verified claim)
_CONTACT_PROVING_CHANNELS = frozenset({"app", "web", "oidc"})


def _needs_member_confirmation(channel: str, new_customer: bool) -> bool:
    """A card linked by someone other than the member pays with points only once the member confirms it: a till
    or the call centre typed the phone (the person holding the card need not own it); an import vouches for the
    cards of the customers it creates, not for a card it adds to someone who was already a customer."""
    if channel in ("till", "call_center"):
        return True
    return channel == "import" and not new_customer


async def confirm_card(number: str) -> None:
    """The member confirmed this card (the code sent to their phone at the till, or signed in): it may pay."""
    await Card.update({Card.confirm_needed: False}).where(Card.number == number)


async def _current_card(membership_id: int) -> str:
    row = await (
        Card.select(Card.number)
        .where((Card.membership == membership_id) & (Card.status == "active"))
        .order_by(Card.id, ascending=False)
        .first()
    )
    return row["number"] if row else ""


async def confirm_memberships(customer_id: int) -> None:
    """The shopper proved the phone/e-mail is theirs: memberships started at the till become active."""
    await Membership.update({Membership.status: "active"}).where(
        (Membership.customer == customer_id) & (Membership.status == "pending")
    )


async def join_program(customer_id: int, program: ProgramRef, channel: Channel, now: dt.datetime,
                       referral: str | None = None) -> Registered:
    """A logged-in customer's membership in the program, created on first use (a login is a registration)."""
    row = await Customer.select(Customer.phone, Customer.email).where(Customer.id == customer_id).first()
    if row is None:
        raise NotFound("customer does not exist")
    return await register_member(program, Registration(phone=row["phone"], email=row["email"], referral_code=referral),
                                 channel, now)


# --- welcome and referral bonuses ---------------------------------------------------------


def contact_hash(program_id: int, contact: str) -> str:
    """HMAC of a normalised phone or e-mail under a key derived from the app secret: without the secret
    the table gives no contact away (a bare hash of a phone number is reversed by trying them all)."""
    from loyalty_core.till.identify import _secret

    key = hmac.new(_secret().encode(), b"kopilka/welcome-contact/v1", hashlib.sha256).digest()
    return hmac.new(key, f"{program_id}:{contact}".encode(), hashlib.sha256).hexdigest()


_GMAIL = frozenset({"gmail.com", "googlemail.com"})


def mailbox(email: str) -> str:
    """The mailbox an address delivers to, for counting welcome bonuses: `+tag` sub-addresses and, at Gmail, dots
    and googlemail.com reach the same inbox, so `a.b+1@gmail.com` and `ab@googlemail.com` are one person's one
    bonus. (Used only for the welcome count: the address itself is kept and used as typed, lower-cased.)"""
    local, _, domain = email.lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


async def first_welcome(program_id: int, phone: str | None, email: str | None, now: dt.datetime) -> bool:
    """Record that these contacts got the program's welcome bonus; False when any of them got it before
    (deleting the account and registering again earns nothing). The unique index settles races."""
    hashes = [contact_hash(program_id, c) for c in (phone, mailbox(email) if email else None) if c]
    rows = await db.fetch(CLAIM_WELCOME, program_id, now, hashes)
    return len(rows) == len(hashes)

_ENGINE_CHANNELS = {"app": "app", "web": "online", "oidc": "online", "till": "store", "call_center": "call_center"}


async def program_document(program: ProgramRef) -> dict:
    """The live rules document as plain data (for settings the engine's structs do not carry)."""
    row = await (
        RulesVersion.select(RulesVersion.document)
        .where((RulesVersion.program == program.id) & (RulesVersion.version == program.rules_version))
        .first()
    )
    if row is None:
        return {}
    document = row["document"]
    return msgspec.json.decode(document) if isinstance(document, str | bytes) else document


async def award_event(program: ProgramRef, membership_id: int, referrer: int | None, event: str, channel: str,
                      now: dt.datetime) -> None:
    """Ask the rule engine what the event earns (welcome bonus, ...) and write it to the ledger, in the caller's transaction."""
    from loyalty_core.engine import MemberEvent, evaluate_event
    from loyalty_core.engine.basket import MemberInfo, PricingContext, StoreInfo
    from loyalty_core.rules.programs import compiled_program

    compiled = await compiled_program(program.id, program.rules_version)
    tier = await Membership.select(Membership.tier.code.as_alias("code")).where(Membership.id == membership_id).first()
    member = MemberInfo(membership_id=str(membership_id), tier_code=tier["code"] if tier else None, joined_at=now,
                        referred_by=str(referrer) if referrer else None)
    ctx = PricingContext(now=now, store=StoreInfo(code="", timezone=program.timezone),
                         channel=_ENGINE_CHANNELS.get(channel, "app"), member=member, lang=compiled.settings.language)
    awards = evaluate_event(MemberEvent(kind=event, at=now), ctx, compiled)  # type: ignore[arg-type]
    for award in awards:
        if award.issue_coupon:
            from loyalty_core.coupons.codes import issue_personal_coupon

            await issue_personal_coupon(award.issue_coupon, int(award.membership_id))
    expiry_days = compiled.settings.expiry_days  # type: ignore[attr-defined]
    expires = now + dt.timedelta(days=expiry_days) if expiry_days else None
    for award in awards:
        if award.points <= 0:
            continue
        state = await ops.lock_account(await ops.ensure_account(int(award.membership_id)), now)
        await ops.accrue(state, award.points, now, kind="accrue", source="welcome", activates_at=now, expires_at=expires,
                         reason=award.explanation)
