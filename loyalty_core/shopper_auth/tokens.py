"""Shopper API tokens: short-lived JWT access tokens and rotating opaque refresh tokens.

A login starts a *family*: every refresh marks the presented token used and issues the next one
in the same family. Presenting a used token again means it was copied (the thief or the shopper
is replaying it), so the whole family is revoked. Access tokens carry the family (`fam`) and
the guard refuses them once the family is revoked, so logout takes effect at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Annotated, Literal

import jwt
import msgspec

from loyalty_core import db
from loyalty_core.errors import DomainError, Unauthorized, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.members.card_proof import CardSecret, count_bind_attempt
from loyalty_core.members.identity import (
    CardNumber,
    Channel,
    Code,
    ConsentIn,
    Contact,
    Name,
    ProgramRef,
    Registration,
    confirm_memberships,
    register_member,
)
from loyalty_core.shopper_auth.otp import check_code, parse_identifier
from loyalty_core.tables import Customer, RefreshToken

# --- the statements ------------------------------------------------------------------------------------------

LIVE_FAMILIES = (
    "SELECT DISTINCT rt.family FROM refresh_token rt JOIN customer c ON c.id = rt.customer "
    "WHERE rt.family = ANY($1::uuid[]) AND rt.revoked_at IS NULL AND c.status = 'active'"
)
SESSION_ALIVE = (
    "SELECT 1 FROM refresh_token rt JOIN customer c ON c.id = rt.customer "
    "WHERE rt.family = $1 AND rt.customer = $2 AND rt.revoked_at IS NULL AND c.status = 'active' LIMIT 1"
)

ACCESS_TTL = dt.timedelta(minutes=15)
REFRESH_TTL = dt.timedelta(days=30)
ISSUER = "kopilka"
AUDIENCE = "kopilka-shopper"


class RefreshReused(DomainError):
    slug, status, title = "refresh-token-reused", 401, "Refresh token already used"


class TokenPair(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = int(ACCESS_TTL.total_seconds())
    customer_id: int


class AccessClaims(msgspec.Struct, frozen=True):
    customer_id: int
    family: uuid.UUID
    jti: str


def _signing_key(secret: str) -> bytes:
    # a key of its own, so the app secret never signs access tokens directly (and is always 32 bytes)
    return hmac.new(secret.encode(), b"kopilka/access-token/v1", hashlib.sha256).digest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access(customer_id: int, family: uuid.UUID, secret: str, now: dt.datetime) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(customer_id),
        "fam": str(family),
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + ACCESS_TTL).timestamp()),
    }
    return jwt.encode(claims, _signing_key(secret), algorithm="HS256")


def decode_access(token: str, secret: str, now: dt.datetime) -> AccessClaims:
    """Signature, expiry, issuer and audience; the caller checks the family is still alive."""
    try:
        claims = jwt.decode(
            token, _signing_key(secret), algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "jti", "fam"], "verify_iat": False}, leeway=0,
        )
        if claims["exp"] <= now.timestamp():  # the clock is an argument, also for expiry
            raise jwt.ExpiredSignatureError("expired")
        return AccessClaims(customer_id=int(claims["sub"]), family=uuid.UUID(claims["fam"]), jti=claims["jti"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired: refresh it") from None
    except (jwt.InvalidTokenError, ValueError, KeyError):
        raise Unauthorized("The access token is not valid") from None


async def _new_refresh(customer_id: int, family: uuid.UUID, now: dt.datetime) -> str:
    token = "rt_" + secrets.token_urlsafe(32)
    await RefreshToken.insert(
        RefreshToken(customer=customer_id, family=family, token_hash=_hash(token), created_at=now, expires_at=now + REFRESH_TTL)
    )
    return token


async def start_session(customer_id: int, secret: str, now: dt.datetime) -> TokenPair:
    """A new token family after a successful login. Runs in the caller's transaction if there is one."""
    family = uuid.uuid4()
    refresh = await _new_refresh(customer_id, family, now)
    return TokenPair(access_token=issue_access(customer_id, family, secret, now), refresh_token=refresh, customer_id=customer_id)


async def rotate_refresh(token: str, secret: str, now: dt.datetime) -> TokenPair:
    """Exchange a refresh token for a new pair; a reused token revokes its family (committed, then refused)."""
    reused = False
    async with DB.transaction():
        row = await (
            RefreshToken.select(RefreshToken.id, RefreshToken.customer, RefreshToken.family, RefreshToken.expires_at,
                                RefreshToken.used_at, RefreshToken.revoked_at)
            .where(RefreshToken.token_hash == _hash(token))
            .lock_rows()
            .first()
        )
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
            raise Unauthorized("The refresh token is not valid: log in again")
        if row["used_at"] is not None:
            await _revoke_where(RefreshToken.family == row["family"], now)
            reused = True
        else:
            await RefreshToken.update({RefreshToken.used_at: now}).where(RefreshToken.id == row["id"])
            customer = await Customer.select(Customer.status).where(Customer.id == row["customer"]).first()
            if customer is None or customer["status"] != "active":
                raise Unauthorized("The account no longer exists")
            refresh = await _new_refresh(row["customer"], row["family"], now)
    if reused:
        raise RefreshReused("This refresh token was already used; every session of this login is now closed")
    return TokenPair(
        access_token=issue_access(row["customer"], row["family"], secret, now), refresh_token=refresh, customer_id=row["customer"]
    )


async def _revoke_where(where: object, now: dt.datetime) -> set[uuid.UUID]:
    """The families that had a live token until now (the website tells their open pages the session ended)."""
    rows = await RefreshToken.update({RefreshToken.revoked_at: now}).where(
        where & RefreshToken.revoked_at.is_null()).returning(RefreshToken.family)  # type: ignore[operator]
    return {uuid.UUID(str(r["family"])) for r in rows}


async def log_out(customer_id: int, family: uuid.UUID, now: dt.datetime) -> set[uuid.UUID]:
    """Close this login (its whole refresh family); its access tokens stop working at once."""
    return await _revoke_where((RefreshToken.family == family) & (RefreshToken.customer == customer_id), now)


async def log_out_everywhere(customer_id: int, now: dt.datetime) -> set[uuid.UUID]:
    return await _revoke_where(RefreshToken.customer == customer_id, now)


async def ended_families(families: list[uuid.UUID]) -> set[uuid.UUID]:
    """Of these logins, the ones `session_alive` would refuse now: every token revoked, or the customer no longer
    active (deleted). One indexed query for all of them: the live dashboard's poller asks it every second."""
    if not families:
        return set()
    rows = await db.fetch(LIVE_FAMILIES, [str(f) for f in families])
    alive = {uuid.UUID(str(r["family"])) for r in rows}
    return {f for f in families if f not in alive}


async def session_alive(customer_id: int, family: uuid.UUID, now: dt.datetime) -> bool:
    """The customer exists and is active, and the login's family has a live (unrevoked) token."""
    rows = await db.fetch(SESSION_ALIVE, family, customer_id)
    return bool(rows)


# --- login by code ------------------------------------------------------------------------


class CodeLogin(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the app or the web sends with the code; a first login registers the shopper."""

    to: Contact
    code: Annotated[str, msgspec.Meta(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")]
    channel: Literal["app", "web"] = "app"
    name: Name = ""
    birth_date: dt.date | None = None
    card_number: CardNumber | None = None
    card_secret: CardSecret | None = None  # printed with the card: without it a card number proves nothing
    referral_code: Code | None = None
    consents: list[ConsentIn] = []


class LoggedIn(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    customer_id: int
    card_number: str
    new_customer: bool
    new_membership: bool


async def log_in_with_code(
    valkey: object, program: ProgramRef, login: CodeLogin, ip: str, secret: str, policy: object, now: dt.datetime
) -> LoggedIn:
    """Consume the code, register (or find) the member, confirm memberships started at the till, open a session."""
    who = parse_identifier(login.to)
    if len(login.code) != 6 or not login.code.isdigit():
        raise ValidationFailed("the code is 6 digits")
    await check_code(valkey, who, login.code, ip, secret, policy)  # type: ignore[arg-type]
    if login.card_number:
        await count_bind_attempt(valkey, who.value, ip, login.card_number.strip())
    reg = Registration(
        phone=who.value if who.kind == "phone" else None, email=who.value if who.kind == "email" else None,
        name=login.name, birth_date=login.birth_date, card_number=login.card_number, card_secret=login.card_secret,
        referral_code=login.referral_code, consents=login.consents,
    )
    registered = await register_member(program, reg, login.channel, now)
    async with DB.transaction():
        await confirm_memberships(registered.customer_id)
        pair = await start_session(registered.customer_id, secret, now)
    return LoggedIn(**msgspec.structs.asdict(pair), card_number=registered.card_number,
                    new_customer=registered.new_customer, new_membership=registered.new_membership)


async def log_in_with_verified_contact(program: ProgramRef, *, email: str | None, phone: str | None, name: str,
                                       channel: Channel, secret: str, now: dt.datetime) -> LoggedIn:
    """An identity provider vouched for this e-mail/phone (OIDC): register or find the member, open a session."""
    registered = await register_member(program, Registration(phone=phone, email=email, name=name), channel, now)
    async with DB.transaction():
        await confirm_memberships(registered.customer_id)
        pair = await start_session(registered.customer_id, secret, now)
    return LoggedIn(**msgspec.structs.asdict(pair), card_number=registered.card_number,
                    new_customer=registered.new_customer, new_membership=registered.new_membership)
