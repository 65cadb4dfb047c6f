"""Find a member the way a caller describes themselves: a phone in any notation, a card number, an e-mail, or a
name with typos (pg_trgm word similarity over a GIN trigram index on lower(name)).

Phone, card and e-mail are exact, through their unique indexes; a name goes through the trigram index
(`q <% lower(name)`: the words typed are alike some words of the name). One query per kind, bounded by LIMIT.
Speed over 1 000 000 members: bench/office_search.py, docs/back-office.md.
"""

from __future__ import annotations

import re

import msgspec

from loyalty_core import db
from loyalty_core.errors import ValidationFailed
from loyalty_core.shopper_auth.otp import normalise_phone
from loyalty_core.replicas import reading

LIMIT = 20
_DIGITS = re.compile(r"\D")


class Found(msgspec.Struct, kw_only=True):
    membership_id: int
    program: str
    status: str
    customer_id: int | None
    name: str
    phone: str | None
    email: str | None
    cards: list[str]
    matched: str  # phone | card | email | name


_SELECT = (
    "SELECT m.id AS membership_id, p.code AS program, m.status, c.id AS customer_id, COALESCE(c.name, '') AS name, "
    "c.phone, c.email, ARRAY(SELECT k.number FROM card k WHERE k.membership = m.id AND k.status IN ('active', 'blocked') "
    "ORDER BY k.id) AS cards FROM membership m JOIN program p ON p.id = m.program LEFT JOIN customer c ON c.id = m.customer "
)
BY_PHONE = _SELECT + "WHERE c.phone = $1 ORDER BY m.id LIMIT $2"
BY_CARD = _SELECT + "WHERE m.id IN (SELECT membership FROM card WHERE number = $1) LIMIT $2"
BY_EMAIL = _SELECT + "WHERE c.email = $1 LIMIT $2"
# $1 and $2 the lowered words typed
BY_NAME = _SELECT + "WHERE $1 <% lower(c.name) ORDER BY word_similarity($2, lower(c.name)) DESC, m.id LIMIT $3"


@reading
async def find(query: str) -> list[Found]:
    q = " ".join(query.split())[:200]
    if len(q) < 2:
        return []
    found: dict[int, Found] = {}
    digits = _DIGITS.sub("", q)
    if digits and len(digits) >= 6 and not re.search(r"[^\d\s()+\-.]", q):
        try:
            phone = normalise_phone(q)
        except ValidationFailed:
            phone = None
        if phone:
            await _add(found, "phone", BY_PHONE, phone, LIMIT)
        await _add(found, "card", BY_CARD, digits, LIMIT)
        return list(found.values())
    lowered = q.lower()
    if "@" in lowered:  # e-mails are exact (case-insensitive): a trigram match over a million similar addresses is slow
        await _add(found, "email", BY_EMAIL, lowered, LIMIT)
        return list(found.values())
    # a misspelt name: the words typed alike some words of the name (word similarity, the GIN trigram index)
    await _add(found, "name", BY_NAME, lowered, lowered, LIMIT)
    return list(found.values())


async def _add(found: dict[int, Found], matched: str, sql: str, *args: object) -> None:
    for row in await db.fetch(sql, *args):
        if row["membership_id"] not in found:
            found[row["membership_id"]] = Found(matched=matched, **dict(row))
