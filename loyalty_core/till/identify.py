"""Who is at the till: a scan (card number, wallet barcode, app QR token, phone) -> card, member, account."""

from __future__ import annotations

import datetime as dt

import msgspec
import phonenumbers

from loyalty_core import cache, db
from loyalty_core.errors import CardBlocked, CardNotFound, TokenExpired
from loyalty_core.ledger.ops import VIEW_COLUMN
from loyalty_core.tables import Customer

APP_TOKEN_PREFIX = "KQ1."


class CardContext(msgspec.Struct, kw_only=True):
    card_id: int
    number: str
    card_status: str
    program_id: int
    program_timezone: str
    rules_version: int
    membership_id: int | None
    membership_status: str | None
    customer_id: int | None
    customer_name: str
    birth_date: dt.date | None
    tier_id: int | None
    tier_code: str | None
    tier_name: str | None
    segments: list[str]
    purchases_count: int
    last_purchase_at: dt.datetime | None
    joined_at: dt.datetime | None
    referred_by: int | None
    account_id: int | None
    favourite_categories: list[str] = []
    # the account as the ledger's plans read it (JSON, `ops.decode_view`) when resolve_scan(..., ledger_view=True)
    # or lock_account=True (then read under the account's row lock); else None
    account_view: str | None = None
    birth_date_known_since: dt.datetime | None = None  # when the birth date was set or last corrected
    # linked by a till / the call centre / an import; the member has not confirmed it: it cannot pay with points
    confirm_needed: bool = False
    # the version of the workers' cached facts at the read's snapshot (`loyalty_core.cache`)
    facts_version: int | None = None
    # the engine's look-ups asked for with `lookups` (the period counters, the day's accrual), as JSON; else None
    looked_up: str | None = None

    @property
    def registered(self) -> bool:
        return self.customer_id is not None


_CARD_QUERY = """
SELECT c.id AS card_id, c.number, c.status AS card_status, c.blocked_reason, c.replaced_by, c.confirm_needed,
       c.program AS program_id, p.timezone AS program_timezone, p.rules_version,
       m.id AS membership_id, m.status AS membership_status, m.customer AS customer_id,
       COALESCE(cu.name, '') AS customer_name, cu.birth_date,
       COALESCE(cu.birth_date_set_at, cu.created_at) AS birth_date_known_since,
       t.id AS tier_id, t.code AS tier_code, t.name AS tier_name,
       COALESCE(m.segments, ARRAY[]::varchar[]) AS segments, COALESCE(m.purchases_count, 0) AS purchases_count,
       m.last_purchase_at, m.joined_at, m.referred_by, a.id AS account_id, {balance}{looked_up}
       {version} AS facts_version,
       ARRAY(SELECT fc.code FROM favourite_category f JOIN category fc ON fc.id = f.category
             WHERE f.membership = m.id AND f.active ORDER BY fc.code) AS favourite_categories
FROM card c
JOIN program p ON p.id = c.program
LEFT JOIN membership m ON m.id = c.membership
LEFT JOIN customer cu ON cu.id = m.customer
LEFT JOIN tier t ON t.id = m.tier
{account}
WHERE {where}
"""
_ACCOUNT = "LEFT JOIN account a ON a.membership = m.id AND a.currency = 'points'"
# The lock is taken inside the statement (a LATERAL subquery: FOR UPDATE cannot reach the nullable side of an
# outer join); after waiting for it the row's newest version is returned, so the balance read is current.
_LOCKED_ACCOUNT = (
    "LEFT JOIN LATERAL (SELECT id, active, pending, debt, version FROM account WHERE membership = m.id "
    "AND currency = 'points' FOR UPDATE) a ON true"
)
# "": the card only; "view": with the account as the ledger reads it (a confirm: one read for both); "lock": the same
# under the account's row lock
_MODES = ("", "view", "lock")

# A confirm's look-ups for the engine, in its one read statement: parameter $n is `pricing.Lookups` as JSON
# ({"windows": [{"name", "since"}], "day": start of the day or null}). The member's purchases since each counter's
# start (a purchase taken back whole is no purchase; cancelled sales never count) and the day's accrual for a
# per-day cap; NULL without a membership or a parameter. `pricing.look_up` runs the same expression on its own.
LOOKED_UP = """CASE WHEN m.id IS NULL OR ${n}::json IS NULL THEN NULL ELSE json_build_object(
         'counters', (SELECT COALESCE(json_object_agg(w.name, (
             SELECT count(*) FROM sale s WHERE s.membership = m.id AND s.status = 'confirmed' AND s.occurred_at >= w.since
             AND EXISTS (SELECT 1 FROM sale_line l WHERE l.sale = s.id AND l.returned_quantity_milli < l.quantity_milli))),
             '{{}}') FROM json_to_recordset(${n}::json -> 'windows') AS w(name text, since timestamptz)),
         'accrued_today', CASE WHEN ${n}::json ->> 'day' IS NULL THEN NULL ELSE (
             SELECT COALESCE(SUM(accrued_points), 0) FROM sale WHERE membership = m.id AND status = 'confirmed'
             AND occurred_at >= (${n}::json ->> 'day')::timestamptz) END)::text END"""


def _card_query(where: str, mode: str, params: int = 1) -> str:
    return _CARD_QUERY.format(
        where=where,
        balance=f"{VIEW_COLUMN}," if mode else "",
        looked_up=LOOKED_UP.format(n=params + 1) + " AS looked_up," if mode else "",
        version=cache.VERSION_COLUMN,
        account=_LOCKED_ACCOUNT if mode == "lock" else _ACCOUNT,
    )


# the two shapes of look-up, built once: by card number, by the member's current card
_BY_NUMBER = {mode: _card_query("c.number = $1", mode) for mode in _MODES}
_BY_CUSTOMER = {
    mode: _card_query("m.customer = $1 AND c.status = 'active' ORDER BY c.id DESC LIMIT 1", mode) for mode in _MODES
}
# the same within one program (a till of a store bound to a program looks a phone up there only)
_BY_CUSTOMER_IN = {
    mode: _card_query("m.customer = $1 AND c.program = $2 AND c.status = 'active' ORDER BY c.id DESC LIMIT 1", mode, 2)
    for mode in _MODES
}


async def _load(query: str, *args: object) -> dict | None:
    row = await db.fetchrow(query, *args)
    return dict(row) if row is not None else None


_qr_secret: list[str] = []


def configure_qr_secret(secret: str) -> None:
    """The key app QR tokens are signed with; set once by the app factory."""
    _qr_secret[:] = [secret]


def _secret() -> str:
    if not _qr_secret:
        raise RuntimeError("configure_qr_secret() was not called")
    return _qr_secret[0]


def _card_from_app_token(scan: str, now: dt.datetime) -> str:
    from loyalty_core.shopper_auth.qr_token import QrTokenExpired, QrTokenInvalid, verify_app_qr_token

    try:
        return verify_app_qr_token(scan, _secret(), now)
    except QrTokenExpired as exc:
        raise TokenExpired("The app QR code has expired: ask the shopper to refresh the screen") from exc
    except QrTokenInvalid as exc:
        raise CardNotFound("The QR code is not a valid Kopilka code") from exc


def shows_possession_only(scan: str) -> bool:
    """The scan is the card's number (plastic, printed QR, wallet barcode): it proves someone holds the card, not
    that the member does. An app QR token comes from the signed-in member; a phone spends only with their code."""
    scan = scan.strip()
    return not scan.startswith(APP_TOKEN_PREFIX) and _as_phone(scan) is None


def _as_phone(scan: str) -> str | None:
    if not scan.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(scan, "RU")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def resolve_scan(scan: str, now: dt.datetime, lock_account: bool = False, program_id: int | None = None,
                       ledger_view: bool = False, lookups: str | None = None,
                       facts_version: int | None = None) -> CardContext:
    """Find the card a scan names. Blocked/replaced cards and stale app tokens are refused with their own errors.

    With `ledger_view` the member's account comes back as the ledger's plans read it (`account_view`), in the same
    statement, and the engine's `lookups` (JSON from `pricing.lookups`) as `looked_up`; with `lock_account` (inside a
    transaction) also under the account's row lock. With `program_id` (the program a till's store is bound to) a card
    of any other program does not exist for the caller: `card-not-found`. `facts_version`: the version of the cached
    facts the caller holds (the till's key); a newer one read here raises `cache.FactsChanged`.
    """
    scan = scan.strip()
    mode = "lock" if lock_account else "view" if ledger_view else ""
    extra = (lookups,) if mode else ()
    row: dict | None
    if scan.startswith(APP_TOKEN_PREFIX):
        row = await _load(_BY_NUMBER[mode], _card_from_app_token(scan, now), *extra)
    elif (phone := _as_phone(scan)) is not None:
        customer = await Customer.select(Customer.id).where(Customer.phone == phone).first()
        row = None
        if customer is not None:
            # the member's current active card, newest first
            row = await (_load(_BY_CUSTOMER[mode], customer["id"], *extra) if program_id is None
                         else _load(_BY_CUSTOMER_IN[mode], customer["id"], program_id, *extra))
    else:
        row = await _load(_BY_NUMBER[mode], scan, *extra)
    if row is not None:
        cache.check(row["facts_version"], facts_version)
    if row is not None and program_id is not None and row["program_id"] != program_id:
        row = None  # another program's card: a partner's till neither reads nor spends it
    if row is None:
        raise CardNotFound("No card or member matches this scan")
    if row["card_status"] == "blocked":
        raise CardBlocked(f"Card {row['number']} is blocked: {row['blocked_reason'] or 'no reason given'}")
    if row["card_status"] == "replaced":
        raise CardBlocked(f"Card {row['number']} was replaced by a new card; ask the shopper for the new one")
    row.pop("blocked_reason")
    row.pop("replaced_by")
    return CardContext(**row)
