"""Operator-side registration: the till hands over a card, the call centre types a member in, a legacy base is imported."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from loyalty_core.errors import CardNotFound, ValidationFailed
from loyalty_core.ledger import ops
from loyalty_core.piccolo_conf import DB
from loyalty_core.services.identity import (
    CardNumber,
    ConsentIn,
    Contact,
    Name,
    ProgramRef,
    Registered,
    Registration,
    normalised_contacts,
    program_document,
    register_member,
)
from loyalty_core.tables import Card, Program

MAX_IMPORT = 1000


class TillRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A cashier registers the shopper's phone against the emitted card just handed over."""

    phone: Contact
    card_number: CardNumber
    name: Name = ""
    consents: list[ConsentIn] = []


async def register_at_till(reg: TillRegistration, now: dt.datetime) -> Registered:
    """The card names the program; the membership stays `pending` until the shopper confirms with a code."""
    card = await Card.select(Card.program).where(Card.number == reg.card_number.strip()).first()
    if card is None:
        raise CardNotFound(f"Card {reg.card_number} was never emitted")
    row = await Program.select(Program.id, Program.code, Program.timezone, Program.rules_version).where(
        Program.id == card["program"]
    ).first()
    program = ProgramRef(**row)  # type: ignore[arg-type]
    registration = Registration(phone=reg.phone, name=reg.name, card_number=reg.card_number.strip(), consents=reg.consents)
    return await register_member(program, registration, "till", now, status="pending")


class OperatorRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: Contact | None = None
    email: Contact | None = None
    name: Name = ""
    birth_date: dt.date | None = None
    card_number: CardNumber | None = None
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


async def import_members(program: ProgramRef, rows: list[ImportedMember], now: dt.datetime) -> ImportReport:
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
    return ImportReport(
        imported=len(out),
        new_customers=sum(1 for r in out if r.new_customer),
        new_memberships=sum(1 for r in out if r.new_membership),
        points_imported=sum(r.points_imported for r in out),
        rows=out,
    )
