"""A card's wallet passes from the database: the PassContent, the signed .pkpass, the Google save link.

`card_pass` is the one read: the card, its member, tier and balance as of `now`.
The pass's authentication token is made on first issue and then kept, so a
pass on a phone stays able to ask for its updates; the serial number is the
card number.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import anyio
import msgspec

from loyalty_core.ledger import ops
from loyalty_core.tables import Card
from wallet_passes.assets import load_assets
from wallet_passes.google import save_link
from wallet_passes.google_auth import load_service_account
from wallet_passes.pkpass import ExpiringPoints, PassContent, PassLocation, build_pkpass
from wallet_passes.settings import AppleWalletSettings, GoogleWalletSettings

VOIDED_STATUSES = ("blocked", "replaced")
MAX_EXPIRING_SHOWN = 5
EXPIRING_HORIZON_DAYS = 90  # the back of the card lists what expires within this many days


class CardPass(msgspec.Struct, frozen=True, kw_only=True):
    card_id: int
    customer_id: int | None
    auth_token: str
    updated_at: dt.datetime  # what Last-Modified and the PassKit update tag are made of
    content: PassContent


_CARD = (
    "SELECT c.id, c.number, c.status, c.pass_auth_token, c.pass_updated_at, p.name AS program_name, p.timezone, "
    "m.id AS membership_id, m.customer AS customer_id, cu.name AS member_name, cu.locale, t.name AS tier_name, "
    "a.id AS account_id "
    "FROM card c JOIN program p ON p.id = c.program "
    "LEFT JOIN membership m ON m.id = c.membership LEFT JOIN customer cu ON cu.id = m.customer "
    "LEFT JOIN tier t ON t.id = m.tier LEFT JOIN account a ON a.membership = m.id AND a.currency = 'points' "
    "WHERE c.number = {}"
)

# Stores with coordinates: Wallet shows the pass on the lock screen near them, and uses at most 10.
# Those 10 are the ones nearest the shopper's favourite store: where they bought most often over the
# last year (ties: most recently). Without purchases there, the first 10 by id. Distance is the
# equirectangular approximation: plenty to rank stores of one city or region.
_LOCATIONS = (
    "WITH fav AS (SELECT s.latitude AS lat, s.longitude AS lon FROM sale x JOIN store s ON s.id = x.store "
    " WHERE x.membership = {} AND x.status = 'confirmed' AND x.occurred_at > {}::timestamptz - interval '365 days' "
    " AND s.latitude IS NOT NULL AND s.longitude IS NOT NULL "
    " GROUP BY s.id, s.latitude, s.longitude ORDER BY count(*) DESC, max(x.occurred_at) DESC LIMIT 1) "
    "SELECT st.name, st.latitude, st.longitude FROM store st LEFT JOIN fav ON true "
    "WHERE st.latitude IS NOT NULL AND st.longitude IS NOT NULL "
    "ORDER BY CASE WHEN fav.lat IS NULL THEN 0 ELSE power(st.latitude - fav.lat, 2) "
    " + power((st.longitude - fav.lon) * cos(radians(fav.lat)), 2) END, st.id LIMIT 10"
)


def new_auth_token() -> str:
    return secrets.token_urlsafe(24)  # 32 characters; Apple asks for at least 16


async def _pass_identity(card_id: int, now: dt.datetime) -> tuple[str, dt.datetime]:
    """The card's pass token and update stamp, made on first issue (atomic: concurrent first downloads agree)."""
    rows = await Card.raw(
        "UPDATE card SET pass_auth_token = COALESCE(pass_auth_token, {}), "
        "pass_updated_at = COALESCE(pass_updated_at, date_trunc('second', {}::timestamptz)) "
        "WHERE id = {} RETURNING pass_auth_token, pass_updated_at",
        new_auth_token(), now, card_id,
    )
    return rows[0]["pass_auth_token"], rows[0]["pass_updated_at"]


async def card_pass(number: str, apple: AppleWalletSettings, now: dt.datetime, *, issue: bool = True) -> CardPass | None:
    """What the card's pass shows now; None if there is no such card.

    With `issue=False` a card that never had a pass is not given a token (the
    PassKit web service only serves passes it issued).
    """
    rows = await Card.raw(_CARD, number)
    if not rows:
        return None
    row = rows[0]
    token, updated_at = row["pass_auth_token"], row["pass_updated_at"]
    if token is None or updated_at is None:
        if not issue:
            return None
        token, updated_at = await _pass_identity(row["id"], now)
    balance = None
    if row["account_id"] is not None:
        balance = await ops.balance(row["account_id"], now, row["timezone"], horizon_days=EXPIRING_HORIZON_DAYS)
    locations = [PassLocation(r["latitude"], r["longitude"], r["name"])
                 for r in await Card.raw(_LOCATIONS, row["membership_id"], now)]
    content = PassContent(
        serial=row["number"],
        member_name=row["member_name"] or "",
        program_name=row["program_name"],
        organization_name=row["program_name"],
        pass_type_id=apple.pass_type_id,
        team_id=apple.team_id,
        card_number=row["number"],
        balance_active=balance.active if balance else 0,
        balance_pending=balance.pending if balance else 0,
        tier_name=row["tier_name"],
        expiring=[ExpiringPoints(e.points, e.on) for e in (balance.expiring if balance else [])][:MAX_EXPIRING_SHOWN],
        locations=locations,
        web_service_url=apple.web_service_url,
        authentication_token=token,
        voided=row["status"] in VOIDED_STATUSES,
        updated_at=updated_at,
        locale=row["locale"] or "ru",  # an anonymous card: the program's market language
    )
    return CardPass(card_id=row["id"], customer_id=row["customer_id"], auth_token=token, updated_at=updated_at,
                    content=content)


def _assets(directory: Path) -> dict[str, bytes]:
    return load_assets(directory)


async def pkpass_bytes(content: PassContent, apple: AppleWalletSettings) -> bytes:
    """The signed .pkpass. Signing is CPU work, so it runs in a worker thread, off the event loop."""
    return await anyio.to_thread.run_sync(lambda: build_pkpass(content, apple.signing, _assets(apple.assets_dir)))


def google_save_link(content: PassContent, google: GoogleWalletSettings, now: dt.datetime,
                     origins: list[str] | None = None) -> str:
    account = load_service_account(google.service_account_path)
    return save_link(account, content, issuer_id=google.issuer_id, class_id=google.class_id, now=now,
                     origins=origins)
