"""Back-office staff: local accounts (argon2id password + TOTP second factor) and OIDC sign-ins with roles.

Roles as the admin API's keys have them (support, marketer, admin, import) plus `auditor` (reads the audit log,
changes nothing). A local account is made by `kopilka staff create`, which prints the TOTP provisioning URI once.
Lockout (Valkey counters, so every worker sees them): after MAX_FAILURES wrong passwords or codes for one
e-mail within LOCK_SECONDS, that e-mail is refused — even with the right password — until the window passes.
A used TOTP code is remembered for its validity window, so a code seen over a shoulder does not sign in twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import msgspec
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loyalty_core import db
from loyalty_core.errors import Conflict, DomainError, ValidationFailed
from loyalty_core.office import audit
from loyalty_core.tables import StaffUser

# --- the statements ------------------------------------------------------------------------------------------

LOCK_ACTIVE_ADMINS = "SELECT id FROM staff_user WHERE status = 'active' AND 'admin' = ANY(roles) ORDER BY id FOR UPDATE"
LOCK_STAFF = "SELECT * FROM staff_user WHERE id = $1 FOR UPDATE"

ROLES = ("support", "marketer", "admin", "import", "auditor", "finance")
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
ISSUER = "Kopilka back office"
_HASHER = PasswordHasher()  # argon2id with the library's current defaults
# verify against this when the e-mail is unknown, so a wrong e-mail costs the same time as a wrong password
_DUMMY_HASH = _HASHER.hash("no such staff member")


class Staff(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    email: str
    name: str
    roles: frozenset[str]
    source: str

    @property
    def actor(self) -> str:
        """How the audit names them."""
        return f"staff:{self.email}"

    def may(self, *roles: str) -> bool:
        return bool(self.roles & (set(roles) | {"admin"}))


class CreatedStaff(msgspec.Struct, kw_only=True):
    id: int
    email: str
    roles: list[str]
    totp_uri: str  # shown once: scan it into an authenticator app


class SignInLocked(DomainError):
    slug, status, title = "staff-locked", 429, "Too many failed sign-ins"


class SignInFailed(DomainError):
    slug, status, title = "staff-sign-in-failed", 401, "Wrong e-mail, password or code"


def _email(value: str) -> str:
    email = value.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise ValidationFailed("email: a valid e-mail address")
    return email


def _roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise ValidationFailed(f"roles: one or more of {', '.join(ROLES)}")
    return sorted(set(roles))


async def create(email: str, roles: list[str], password: str | None, now: dt.datetime, *, name: str = "",
                 actor: str = "cli", origin: str = "") -> CreatedStaff:
    """A local account (password + TOTP), or with password None one that signs in only with OIDC."""
    email, roles = _email(email), _roles(roles)
    if password is not None and len(password) < 12:
        raise ValidationFailed("password: at least 12 characters")
    if len(name) > 200:
        raise ValidationFailed("name: at most 200 characters")
    if await StaffUser.exists().where(StaffUser.email == email):
        raise Conflict(f"staff member {email} exists already")
    secret = pyotp.random_base32() if password is not None else None
    rows = await StaffUser.insert(StaffUser(
        email=email, name=name, roles=roles, password_hash=_HASHER.hash(password) if password is not None else None,
        totp_secret=secret, source="local" if password is not None else "oidc", created_at=now,
    )).returning(StaffUser.id)
    await audit.record(actor, "staff.created", f"staff:{email}", {}, {"roles": roles}, "", now, origin)
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER) if secret else ""
    return CreatedStaff(id=rows[0]["id"], email=email, roles=roles, totp_uri=uri)


def _fail_key(email: str) -> str:
    return "kopilka:office:fail:" + hashlib.sha256(email.encode()).hexdigest()


async def locked(valkey: Any, email: str) -> bool:
    return int(await valkey.get(_fail_key(email)) or 0) >= MAX_FAILURES


async def _failed(valkey: Any, email: str, origin: str, now: dt.datetime) -> None:
    key = _fail_key(email)
    count = await valkey.incr(key)
    if count == 1:
        await valkey.expire(key, LOCK_SECONDS)
    await audit.record(f"staff:{email}", "staff.sign_in_failed", f"staff:{email}", {}, {"failures": int(count)}, "",
                       now, origin)


async def sign_in(valkey: Any, email: str, password: str, code: str, origin: str, now: dt.datetime) -> Staff:
    """Password and TOTP code together; one answer for every wrong part (no telling which was wrong)."""
    email = email.strip().lower()[:254]
    if await locked(valkey, email):
        raise SignInLocked("Too many failed attempts: wait 15 minutes or ask an admin")
    row = await StaffUser.select().where((StaffUser.email == email) & (StaffUser.status == "active")).first()
    stored = row["password_hash"] if row and row["password_hash"] else _DUMMY_HASH
    try:
        password_ok = _HASHER.verify(stored, password) and row is not None and bool(row["password_hash"])
    except (VerificationError, InvalidHashError):
        password_ok = False
    code = code.strip().replace(" ", "")
    code_ok = password_ok and row["totp_secret"] and pyotp.TOTP(row["totp_secret"]).verify(code, valid_window=1)
    # a code works once: remembered for its validity window (3 steps of 30 s)
    if code_ok and not await valkey.set(f"kopilka:office:totp:{row['id']}:{code}", "1", nx=True, ex=120):
        code_ok = False
    if not code_ok:
        await _failed(valkey, email, origin, now)
        raise SignInFailed("Wrong e-mail, password or code")
    await valkey.delete(_fail_key(email))
    return await _signed_in(row, origin, now)


async def _signed_in(row: dict[str, Any], origin: str, now: dt.datetime) -> Staff:
    await StaffUser.update({StaffUser.last_sign_in_at: now}).where(StaffUser.id == row["id"])
    await audit.record(f"staff:{row['email']}", "staff.signed_in", f"staff:{row['email']}", {},
                       {"source": row["source"]}, "", now, origin)
    return _staff(row)


async def sign_in_oidc(email: str, name: str, claimed_roles: list[str] | None, origin: str, now: dt.datetime) -> Staff:
    """The company's provider vouched for `email`. Roles: the provider's role claim when it sends one, else the
    staff row of this e-mail (`kopilka staff create --oidc`: the mapping). No roles: no entry."""
    email = _email(email)
    row = await StaffUser.select().where(StaffUser.email == email).first()
    if row is not None and row["status"] != "active":
        raise SignInFailed("This staff account is disabled")
    roles = sorted(set(claimed_roles or []) & set(ROLES)) if claimed_roles is not None else None
    if row is None:
        if not roles:
            raise SignInFailed("The provider gave this account no back-office role")
        rows = await StaffUser.insert(StaffUser(email=email, name=name[:200], roles=roles, source="oidc",
                                                created_at=now)).returning(*StaffUser.all_columns())
        row = rows[0]
        await audit.record("oidc", "staff.created", f"staff:{email}", {}, {"roles": roles}, "", now, origin)
    elif roles is not None and sorted(row["roles"]) != roles:
        await StaffUser.update({StaffUser.roles: roles}).where(StaffUser.id == row["id"])
        await audit.record("oidc", "staff.roles", f"staff:{email}", {"roles": sorted(row["roles"])},
                           {"roles": roles}, "", now, origin)
        row = {**row, "roles": roles}
    if not row["roles"]:
        raise SignInFailed("The provider gave this account no back-office role")
    return await _signed_in(row, origin, now)


async def by_id(staff_id: int) -> Staff | None:
    """The staff member of a session, read per request: a disabled account or a changed role applies at once."""
    row = await StaffUser.select().where((StaffUser.id == staff_id) & (StaffUser.status == "active")).first()
    return _staff(row) if row else None


def _staff(row: dict[str, Any]) -> Staff:
    return Staff(id=row["id"], email=row["email"], name=row["name"], roles=frozenset(row["roles"]), source=row["source"])


# --- managed by admins in the back office (/office/staff) ----------------------------------------


class StaffRow(msgspec.Struct, kw_only=True):
    id: int
    email: str
    name: str
    roles: list[str]
    source: str
    status: str
    created_at: dt.datetime
    last_sign_in_at: dt.datetime | None = None


class LastAdmin(Conflict):
    slug, title = "last-admin", "The last active admin must stay"


async def listing() -> list[StaffRow]:
    rows = await StaffUser.select(StaffUser.id, StaffUser.email, StaffUser.name, StaffUser.roles, StaffUser.source,
                                  StaffUser.status, StaffUser.created_at, StaffUser.last_sign_in_at).order_by(
        StaffUser.email)
    return [msgspec.convert(r, StaffRow) for r in rows]


async def _locked_for_change(staff_id: int) -> tuple[dict[str, Any], int]:
    """The row to change and how many active admins there are, every active admin locked first (id order), so two
    admins demoting each other at the same moment cannot both succeed."""
    admins = await db.fetch(LOCK_ACTIVE_ADMINS)
    row = await db.fetchrow(LOCK_STAFF, staff_id)
    if row is None:
        from loyalty_core.errors import NotFound

        raise NotFound(f"staff member {staff_id} does not exist")
    return dict(row), len(admins)


def _still_an_admin_left(row: dict[str, Any], active_admins: int, roles: list[str], status: str) -> None:
    was = row["status"] == "active" and "admin" in row["roles"]
    stays = status == "active" and "admin" in roles
    if was and not stays and active_admins <= 1:
        raise LastAdmin("This is the last active admin: make another admin first")


async def set_roles(staff_id: int, roles: list[str], actor: str, actor_id: int, now: dt.datetime,
                    origin: str = "") -> StaffRow:
    from loyalty_core.piccolo_conf import DB

    roles = _roles(roles)
    async with DB.transaction():
        row, admins = await _locked_for_change(staff_id)
        _still_an_admin_left(row, admins, roles, row["status"])
        await StaffUser.update({StaffUser.roles: roles}).where(StaffUser.id == staff_id)
        await audit.record(actor, "staff.roles", f"staff:{row['email']}", {"roles": sorted(row["roles"])},
                           {"roles": roles}, "", now, origin)
    return next(r for r in await listing() if r.id == staff_id)


async def set_active(staff_id: int, active: bool, actor: str, actor_id: int, now: dt.datetime,
                     origin: str = "") -> StaffRow:
    """Deactivate (the next request of their session is refused) or reactivate; never oneself, never the last
    active admin."""
    from loyalty_core.piccolo_conf import DB

    if staff_id == actor_id and not active:
        raise ValidationFailed("You cannot deactivate yourself")
    status = "active" if active else "disabled"
    async with DB.transaction():
        row, admins = await _locked_for_change(staff_id)
        _still_an_admin_left(row, admins, row["roles"], status)
        if row["status"] != status:
            await StaffUser.update({StaffUser.status: status}).where(StaffUser.id == staff_id)
            await audit.record(actor, "staff.activated" if active else "staff.deactivated", f"staff:{row['email']}",
                               {"status": row["status"]}, {"status": status}, "", now, origin)
    return next(r for r in await listing() if r.id == staff_id)
