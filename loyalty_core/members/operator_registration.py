"""Operator-side registration: the till hands over a card, the call centre types a member in, a legacy base is imported."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from loyalty_core import db
from loyalty_core.errors import CardBlocked, CardNotFound, CardTaken, DomainError, ValidationFailed
from loyalty_core.ledger import ops
from loyalty_core.piccolo_conf import DB
from loyalty_core.office import audit
from loyalty_core.members.card_proof import CardSecret, TillLinkCodes
from loyalty_core.members.identity import (
    CardNumber,
    ConsentIn,
    Contact,
    Name,
    ProgramRef,
    Registered,
    Registration,
    confirm_card,
    confirm_memberships,
    normalised_contacts,
    program_document,
    register_member,
)
from loyalty_core.shopper_auth.otp import normalise_phone
from loyalty_core.tables import Customer, Membership, Program

# --- the statements ------------------------------------------------------------------------------------------

CARD_AT_TILL = (
    "SELECT c.id, c.number, c.status, c.program, c.confirm_needed, m.customer, m.id AS membership FROM card c "
    "LEFT JOIN membership m ON m.id = c.membership WHERE c.number = $1"
)

MAX_IMPORT = 1000


class TillRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A cashier registers the shopper's phone against the emitted card just handed over."""

    phone: Contact
    card_number: CardNumber
    name: Name = ""
    consents: list[ConsentIn] = []
    # the code the registration sent to the phone, read out by the shopper: confirms it
    confirmation_code: Annotated[str, msgspec.Meta(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")] | None = None


class TillRegistered(msgspec.Struct, kw_only=True):
    status: Literal["pending", "active"]  # pending: earns points, cannot spend them until the shopper confirms
    card_number: str
    program: str
    customer_id: int | None  # None while an existing member has not confirmed yet
    membership_id: int | None
    new_customer: bool
    new_membership: bool
    code_sent: bool  # a code went to the phone: the shopper reads it out, the till sends it as confirmation_code
    linked: bool  # the card is the member's now (False: nothing was written, waiting for the code)


async def _card_at_till(number: str) -> tuple[ProgramRef, dict]:
    found = await db.fetchrow(CARD_AT_TILL, number)
    if found is None:
        raise CardNotFound(f"Card {number} was never emitted")
    card = dict(found)
    if card["status"] in ("blocked", "replaced"):
        raise CardBlocked(f"Card {number} is {card['status']} and cannot be registered")
    row = await Program.select(Program.id, Program.code, Program.timezone, Program.rules_version).where(
        Program.id == card["program"]
    ).first()
    return ProgramRef(**row), card  # type: ignore[arg-type]


async def _status(customer_id: int, program: ProgramRef) -> tuple[int | None, str]:
    row = await Membership.select(Membership.id, Membership.status).where(
        (Membership.customer == customer_id) & (Membership.program == program.id)
    ).first()
    return (row["id"], row["status"]) if row else (None, "pending")


async def register_at_till(reg: TillRegistration, now: dt.datetime, codes: TillLinkCodes, place: str = "",
                           program_id: int | None = None) -> TillRegistered:
    """The till scanned the card (proof of possession); the phone is only typed, so the phone's owner confirms.

    - a card of another member -> 409 `card-taken`, never moved;
    - a new phone: a `pending` membership with this card at once (it earns, it cannot spend), and a code to
      the phone; the shopper confirms by reading the code to the cashier or by logging in with a code;
    - the phone of an existing customer: nothing is written; a code goes to the phone, and the card is linked
      (its anonymous points moved) only when the till sends that code back.
    A card linked without that code (a new phone) pays with points only once the member confirms the card: the code
    read out at a till, or in the app/website, signed in. Logging in confirms the membership, not the card: the
    cashier may have kept the card (`place` is shown to the member: which store and till linked it).
    """
    number = reg.card_number.strip()
    phone = normalise_phone(reg.phone)
    program, card = await _card_at_till(number)
    if program_id is not None and program.id != program_id:  # a store bound to a program hands out its cards only
        raise CardNotFound(f"Card {number} was never emitted")
    owner = await Customer.select(Customer.id).where(Customer.phone == phone).first()
    owner_id = owner["id"] if owner else None
    if card["customer"] is not None and card["customer"] != owner_id:
        raise CardTaken(f"Card {number} belongs to another member and stays theirs")
    registration = Registration(phone=phone, name=reg.name, card_number=number, consents=reg.consents)
    if owner_id is None:
        registered = await register_member(program, registration, "till", now, status="pending", linked_via=place)
        try:
            await codes.send_code(phone, number)
        except DomainError:  # registered all the same: the shopper can confirm by logging in with a code
            return _out(registered, program, code_sent=False, linked=True)
        return _out(registered, program, code_sent=True, linked=True)
    if card["customer"] == owner_id:
        # the card is theirs already (registered here before): the code confirms a pending membership
        membership_id, status = await _status(owner_id, program)
        if status == "pending" or card["confirm_needed"]:
            if reg.confirmation_code is None:
                await codes.send_code(phone, number)
                return TillRegistered(status="pending", card_number=number, program=program.code, customer_id=owner_id,
                                      membership_id=membership_id, new_customer=False, new_membership=False,
                                      code_sent=True, linked=True)
            await codes.check_code(phone, number, reg.confirmation_code)
            async with DB.transaction():
                await confirm_memberships(owner_id)
                await confirm_card(number)
        membership_id, status = await _status(owner_id, program)
        return TillRegistered(status=status, card_number=number, program=program.code,  # type: ignore[arg-type]
                              customer_id=owner_id, membership_id=membership_id, new_customer=False,
                              new_membership=False, code_sent=False, linked=True)
    # an existing customer's phone typed at a till: only the code from that phone links the card
    if reg.confirmation_code is None:
        await codes.send_code(phone, number)
        return TillRegistered(status="pending", card_number=number, program=program.code, customer_id=None,
                              membership_id=None, new_customer=False, new_membership=False, code_sent=True, linked=False)
    await codes.check_code(phone, number, reg.confirmation_code)
    registered = await register_member(program, registration, "till", now, linked_via=place)
    async with DB.transaction():
        await confirm_memberships(registered.customer_id)
        await confirm_card(number)  # the code came from the member's phone: they confirmed this card
    registered.status = "active"
    return _out(registered, program, code_sent=False, linked=True)


def _out(registered: Registered, program: ProgramRef, *, code_sent: bool, linked: bool) -> TillRegistered:
    return TillRegistered(status=registered.status, card_number=registered.card_number,  # type: ignore[arg-type]
                          program=program.code, customer_id=registered.customer_id,
                          membership_id=registered.membership_id, new_customer=registered.new_customer,
                          new_membership=registered.new_membership, code_sent=code_sent, linked=linked)


class OperatorRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: Contact | None = None
    email: Contact | None = None
    name: Name = ""
    birth_date: dt.date | None = None
    card_number: CardNumber | None = None
    card_secret: CardSecret | None = None  # the caller reads it off the card: the call centre never sees the card
    consents: list[ConsentIn] = []


async def register_by_call_centre(program: ProgramRef, reg: OperatorRegistration, now: dt.datetime) -> Registered:
    return await register_member(program, Registration(**msgspec.structs.asdict(reg)), "call_center", now)


class ImportedMember(OperatorRegistration, frozen=True, kw_only=True, forbid_unknown_fields=True):
    balance: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0  # legacy points, active from the import
    legacy_id: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


class ImportedRow(msgspec.Struct, kw_only=True):
    row: int
    customer_id: int
    card_number: str
    new_customer: bool
    new_membership: bool
    points_imported: int


class ImportReport(msgspec.Struct, kw_only=True):
    imported: int
    new_customers: int
    new_memberships: int
    points_imported: int
    rows: list[ImportedRow]


def _check_rows(rows: list[ImportedMember]) -> None:
    """Every row is validated before anything is written: one bad row rejects the file."""
    if not 1 <= len(rows) <= MAX_IMPORT:
        raise ValidationFailed(f"import between 1 and {MAX_IMPORT} members per request")
    problems = []
    for i, row in enumerate(rows):
        try:
            normalised_contacts(row.phone, row.email)
        except ValidationFailed as exc:
            problems.append(f"row {i}: {exc.detail}")
    if problems:
        raise ValidationFailed("; ".join(problems[:20]), rows=problems)


async def import_members(program: ProgramRef, rows: list[ImportedMember], now: dt.datetime,
                         operator: str = "") -> ImportReport:
    """All or nothing, in one transaction. A legacy balance is written once, when the membership is created,
    so re-running the same file registers nobody twice and imports no point twice."""
    _check_rows(rows)
    settings = (await program_document(program)).get("settings", {})
    expiry_days = int(settings.get("expiry_days", 365))
    out: list[ImportedRow] = []
    async with DB.transaction():
        for i, row in enumerate(rows):
            reg = Registration(**{k: v for k, v in msgspec.structs.asdict(row).items() if k not in ("balance", "legacy_id")})
            registered = await register_member(program, reg, "import", now, welcome=False)
            points = row.balance if registered.new_membership else 0
            if points:
                state = await ops.lock_account(await ops.ensure_account(registered.membership_id), now)
                await ops.accrue(state, points, now, kind="import", source="import", activates_at=now,
                                 expires_at=now + dt.timedelta(days=expiry_days) if expiry_days else None,
                                 reason=f"legacy balance {row.legacy_id}".strip())
            out.append(ImportedRow(row=i, customer_id=registered.customer_id, card_number=registered.card_number,
                                   new_customer=registered.new_customer, new_membership=registered.new_membership, points_imported=points))
        # an import writes points active at once: which key brought how many, for whom (staff are audited)
        imported = [r for r in out if r.points_imported]
        await audit.record(operator or "unknown", "members.import", f"program:{program.code}", {},
                           {"rows": len(out), "new_customers": sum(1 for r in out if r.new_customer),
                            "points": sum(r.points_imported for r in out),
                            "points_by_customer": {str(r.customer_id): r.points_imported for r in imported}},
                           "", now)
    return ImportReport(
        imported=len(out),
        new_customers=sum(1 for r in out if r.new_customer),
        new_memberships=sum(1 for r in out if r.new_membership),
        points_imported=sum(r.points_imported for r in out),
        rows=out,
    )
