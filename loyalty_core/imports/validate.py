"""Validating legacy rows: each becomes a staging record or a reject (file, line, field, reason). Pure code (no I/O
but the rows it is given); the checks that need the database (a card number already in use, a customer already a
member) run in SQL over the staging tables (imports/run.py)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from loyalty_core.errors import ValidationFailed
from loyalty_core.shopper_auth.otp import normalise_email, normalise_phone

MAX_LOT_POINTS = 10_000_000  # one legacy lot above this is a typo or an attack, not a balance: rejected
MAX_SPEND_MINOR = 10**12  # 10 000 000 000 RUB of spend: beyond any shopper
CARD_NUMBER = re.compile(r"^[0-9A-Za-z-]{1,32}$")  # what tills scan (EAN-13, Code128) and the card column holds
LEGACY_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_DMY = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})$")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]+")
_TRUE = {"1", "да", "y", "yes", "true", "истина", "+", "согласен", "есть"}
_FALSE = {"0", "нет", "n", "no", "false", "ложь", "-", ""}
_STATUS = {"active": "active", "активна": "active", "активная": "active", "1": "active", "выдана": "active",
           "blocked": "blocked", "заблокирована": "blocked", "блокирована": "blocked", "0": "blocked",
           "утеряна": "blocked", "lost": "blocked"}
_GENDER = {"м": "m", "муж": "m", "мужской": "m", "m": "m", "male": "m",
           "ж": "f", "жен": "f", "женский": "f", "f": "f", "female": "f"}


@dataclass
class Reject:
    file: str
    line: int
    field: str
    reason: str
    action: str = "rejected"  # rejected: the row is not imported | dropped: the row is, without this field


@dataclass
class Context:
    now: dt.datetime
    tz: ZoneInfo
    expiry_days: int
    tiers: set[str]
    date_format: str = ""


class Bad(Exception):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field_name, reason


def parse_number(raw: str, field_name: str) -> Decimal:
    """`1 234,50`, `1234.5`, `1 234`: spaces (also non-breaking) are thousands separators, a comma is the point."""
    text = _SPACES.sub("", raw).replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Bad(field_name, f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise Bad(field_name, f"{raw!r} is not a number")
    return value


def parse_points(raw: str, field_name: str = "points", *, zero: bool = False) -> int:
    """`zero`: 0 is allowed (a balance that fell to zero; the database checks accept it only in a delta, for a member
    an earlier import gave a balance)."""
    value = parse_number(raw, field_name)
    if value != value.to_integral_value():
        raise Bad(field_name, f"{raw!r}: points are whole numbers")
    if value < 0 or (value == 0 and not zero):
        raise Bad(field_name, f"{raw!r}: points must be positive")
    if value > MAX_LOT_POINTS:
        raise Bad(field_name, f"{raw!r}: more than {MAX_LOT_POINTS} points in one lot")
    return int(value)


def parse_money(raw: str, field_name: str) -> int:
    """Roubles as printed -> kopecks."""
    value = parse_number(raw, field_name) * 100
    if value != value.to_integral_value() or value < 0 or value > MAX_SPEND_MINOR:
        raise Bad(field_name, f"{raw!r} is not an amount of roubles and kopecks")
    return int(value)


def parse_when(raw: str, ctx: Context, field_name: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """A date or a date and time. A naive value is the program's local time; a bare date is the start of that day
    (`end_of_day`: the start of the next one, so a lot that burns on 31.12 can still be spent on 31.12)."""
    text = raw.strip()
    if not text:
        return None
    value: dt.datetime | None = None
    date_only = False
    formats = [ctx.date_format] if ctx.date_format else []
    plain = _DMY.match(text) if ctx.date_format in ("", "%d.%m.%Y") else None
    if plain:  # the usual shape, without strptime's cost (a million rows have several dates each)
        try:
            value, date_only = dt.datetime(int(plain[3]), int(plain[2]), int(plain[1])), True
        except ValueError:
            raise Bad(field_name, f"{raw!r} is not a date") from None
        formats = []
    for fmt in () if plain else (*formats, "%d.%m.%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y-%m-%d", "%d/%m/%Y"):
        try:
            value = dt.datetime.strptime(text, fmt)
            date_only = not any(c in fmt for c in "HMS")
            break
        except ValueError:
            continue
    if value is None:
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise Bad(field_name, f"{raw!r} is not a date") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ctx.tz)
    if date_only and end_of_day:
        value += dt.timedelta(days=1)
    if not dt.datetime(1900, 1, 1, tzinfo=dt.UTC) <= value <= dt.datetime(2200, 1, 1, tzinfo=dt.UTC):
        raise Bad(field_name, f"{raw!r} is out of range")
    return value


def parse_bool(raw: str, field_name: str) -> bool | None:
    low = raw.strip().lower()
    if not low:
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise Bad(field_name, f"{raw!r} is neither yes nor no")


def member(raw: dict[str, str], file: str, line: int, ctx: Context, rejects: list[Reject]) -> tuple | None:
    """A member's staging record, or None (rejected: the reason is in `rejects`). One row at a time: who is who
    across the rows (a repeated legacy id, the merge policy, a conflict) is resolved in SQL over the staged rows
    (imports/run.py `resolve`), so memory stays flat whatever the file's size.

    Merge policy: the first row with a normalised phone or e-mail is the customer; a later row with the same phone
    or e-mail is merged into it (its cards, lots and spend go to that customer; its own contacts, name and dates are
    not used). A row whose phone is one customer's and e-mail another's is a conflict: rejected, for a human."""
    def drop(field_name: str, reason: str) -> None:
        rejects.append(Reject(file, line, field_name, reason, "dropped"))

    legacy = raw.get("legacy_id", "").strip()
    if not legacy or not LEGACY_ID.match(legacy):
        rejects.append(Reject(file, line, "legacy_id", "missing" if not legacy else "not a legacy id (control characters or > 64)"))
        return None
    phone = email = None
    if raw.get("phone", "").strip():
        try:
            phone = normalise_phone(raw["phone"])
        except ValidationFailed:
            drop("phone", f"{raw['phone']!r} is not a phone number")
    if raw.get("email", "").strip():
        try:
            email = normalise_email(raw["email"])
        except ValidationFailed:
            drop("email", f"{raw['email']!r} is not an e-mail address")
    values: dict[str, object] = {}
    for name, end in (("birth_date", False), ("registered_at", False), ("consent_sms_at", False), ("consent_email_at", False)):
        try:
            values[name] = parse_when(raw.get(name, ""), ctx, name, end_of_day=end)
        except Bad as exc:
            drop(exc.field, exc.reason)
            values[name] = None
        if values[name] is not None and values[name] > ctx.now:  # type: ignore[operator]
            drop(name, f"{raw[name]!r} is in the future")
            values[name] = None
    birth = values["birth_date"]
    birth_date = birth.date() if isinstance(birth, dt.datetime) else None
    consents: dict[str, bool | None] = {}
    for name in ("consent_sms", "consent_email"):
        try:
            consents[name] = parse_bool(raw.get(name, ""), name)
        except Bad as exc:
            drop(exc.field, exc.reason)
            consents[name] = None
    gender = _GENDER.get(raw.get("gender", "").strip().lower(), "")
    if raw.get("gender", "").strip() and not gender:
        drop("gender", f"{raw['gender']!r} is not a gender we know")
    return (file, line, legacy, phone, email, raw.get("name", "").strip()[:200],
            birth_date, gender, raw.get("city", "").strip()[:100], consents["consent_sms"], values["consent_sms_at"],
            consents["consent_email"], values["consent_email_at"], values["registered_at"],
            raw.get("channel", "").strip()[:16], None)


def _member_of(raw: dict[str, str], file: str, line: int, rejects: list[Reject]) -> str | None:
    """The row's member as written (whether the files have them, and whom they were merged into, is SQL's: `resolve`);
    None when it cannot be a legacy id at all."""
    owner = raw.get("member", "").strip()
    if not LEGACY_ID.match(owner):
        rejects.append(Reject(file, line, "member", f"unknown member {owner!r}"))
        return None
    return owner


def card(raw: dict[str, str], file: str, line: int, ctx: Context, rejects: list[Reject]) -> tuple | None:
    """A card's staging record; a number twice in the files and an unknown member are found in SQL (`resolve`)."""
    number = _SPACES.sub("", raw.get("number", ""))
    if not CARD_NUMBER.match(number):
        rejects.append(Reject(file, line, "number", f"{raw.get('number', '')!r} is not a card number tills can scan "
                                                    "(1-32 letters, digits, dashes)"))
        return None
    owner = _member_of(raw, file, line, rejects)
    if owner is None:
        return None
    status = _STATUS.get(raw.get("status", "active").strip().lower() or "active")
    if status is None:
        rejects.append(Reject(file, line, "status", f"{raw.get('status')!r} is not a card status (active or blocked)"))
        return None
    try:
        issued = parse_when(raw.get("issued_at", ""), ctx, "issued_at")
        blocked = parse_when(raw.get("blocked_at", ""), ctx, "blocked_at")
    except Bad as exc:
        rejects.append(Reject(file, line, exc.field, exc.reason))
        return None
    return (file, line, number, owner, status, issued, blocked, None)


def lot(raw: dict[str, str], file: str, line: int, ctx: Context, rejects: list[Reject]) -> tuple | None:
    owner = _member_of(raw, file, line, rejects)
    if owner is None:
        return None
    try:
        points = parse_points(raw.get("points", ""), zero=True)
        if points == 0:  # a legacy balance that fell to zero: its dates say nothing (staged; checked in SQL)
            return (file, line, owner, 0, "active", ctx.now, None, raw.get("source", "").strip()[:32], False, None)
        activates = parse_when(raw.get("activates_at", ""), ctx, "activates_at")
        expires = parse_when(raw.get("expires_at", ""), ctx, "expires_at", end_of_day=True)
    except Bad as exc:
        rejects.append(Reject(file, line, exc.field, exc.reason))
        return None
    by_rule = activates is None and expires is None
    activates = activates or ctx.now
    if expires is None and ctx.expiry_days:
        expires = max(activates, ctx.now) + dt.timedelta(days=ctx.expiry_days)
    if expires is not None and expires <= ctx.now:
        rejects.append(Reject(file, line, "expires_at", f"{raw.get('expires_at')!r}: expired before the import"))
        return None
    if expires is not None and expires <= activates:
        rejects.append(Reject(file, line, "expires_at", "expires before it activates"))
        return None
    state = "pending" if activates > ctx.now else "active"
    source = raw.get("source", "").strip()[:32]
    return (file, line, owner, points, state, activates, expires, source, by_rule, None)


def tier(raw: dict[str, str], file: str, line: int, ctx: Context, rejects: list[Reject]) -> tuple | None:
    owner = _member_of(raw, file, line, rejects)
    if owner is None:
        return None
    code = raw.get("tier", "").strip()
    match = next((t for t in ctx.tiers if t.lower() == code.lower()), None)
    if match is None:
        rejects.append(Reject(file, line, "tier", f"{code!r} is not a tier of the program ({', '.join(sorted(ctx.tiers))})"))
        return None
    try:
        spend = parse_money(raw["spend"], "spend") if raw.get("spend", "").strip() else 0
    except Bad as exc:
        rejects.append(Reject(file, line, exc.field, exc.reason))
        return None
    return (file, line, owner, match, spend, None)


MAX_RECEIPT_LINES = 1000


def receipt(raw: dict[str, str], file: str, line: int, ctx: Context, rejects: list[Reject]) -> tuple | None:
    """A legacy receipt (purchase history): it feeds the tier's spend, the purchase counters and analytics, and never
    moves points. Unique per store and legacy receipt number (in the files: `resolve`; in Kopilka: exactly once)."""
    owner = _member_of(raw, file, line, rejects)
    if owner is None:
        return None
    number = raw.get("receipt", "").strip()
    store = raw.get("store", "").strip()
    for name, value in (("receipt", number), ("store", store)):
        if (value or name == "receipt") and not LEGACY_ID.match(value):
            rejects.append(Reject(file, line, name, "missing" if not value else "not a code (control characters or > 64)"))
            return None
    try:
        occurred = parse_when(raw.get("occurred_at", ""), ctx, "occurred_at")
        if occurred is None:
            raise Bad("occurred_at", "missing")
        if occurred > ctx.now:
            raise Bad("occurred_at", f"{raw['occurred_at']!r} is in the future")
        amount = parse_money(raw.get("amount", ""), "amount")
        discount = parse_money(raw["discount"], "discount") if raw.get("discount", "").strip() else 0
        to_pay = parse_money(raw["to_pay"], "to_pay") if raw.get("to_pay", "").strip() else amount - discount
        earning = parse_money(raw["earning"], "earning") if raw.get("earning", "").strip() else to_pay
        if to_pay < 0 or discount > amount or to_pay > amount or earning > amount:
            raise Bad("to_pay", "the totals do not add up (paid or spend above the amount, or a discount above it)")
    except Bad as exc:
        rejects.append(Reject(file, line, exc.field, exc.reason))
        return None
    lines = None
    if raw.get("lines", "").strip():
        try:
            lines = _receipt_lines(raw["lines"])
        except Bad as exc:
            rejects.append(Reject(file, line, "lines", exc.reason, "dropped"))
    return (file, line, number, owner, occurred, store, amount, discount, to_pay, earning, lines, None)


def _receipt_lines(text: str) -> str:
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        raise Bad("lines", "not a JSON array of lines") from None
    if not isinstance(doc, list) or len(doc) > MAX_RECEIPT_LINES or not all(isinstance(x, dict) for x in doc):
        raise Bad("lines", f"not a JSON array of at most {MAX_RECEIPT_LINES} objects")
    out = []
    for item in doc:
        sku = str(item.get("sku", "")).strip()
        if not LEGACY_ID.match(sku):
            raise Bad("lines", f"{sku!r} is not a SKU")
        quantity = parse_number(str(item.get("quantity", "1")), "lines") * 1000
        if quantity <= 0 or quantity != quantity.to_integral_value() or quantity > 10**9:
            raise Bad("lines", f"{item.get('quantity')!r} is not a quantity")
        amount = parse_money(str(item.get("amount", "")), "lines")
        price = parse_money(str(item["price"]), "lines") if item.get("price") not in (None, "") else amount
        out.append({"sku": sku, "quantity_milli": int(quantity), "price": price, "amount": amount})
    return json.dumps(out)
