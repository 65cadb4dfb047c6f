"""The one ledger writer: any Posting, in one statement, guarded by the account's version.

Lots, entries, balances, the membership's tier and the outbox rows of an operation go to PostgreSQL as one
statement of data-modifying CTEs with the posting as one JSON parameter (one round trip, one plan; asyncpg
checks array parameters element by element in Python, which costs more than PostgreSQL's JSON parser).
Every write bumps `account.version` and holds only if the version is still the one the plan was read at
(`UPDATE account ... WHERE id = $ AND version = $`); every other row (lots, entries, the membership, the
pass, the messages) joins that update, so a conflict writes none of them and raises `ConcurrentUpdate`; the
caller lets it leave its transaction (rolling back its own rows, a head's included) and may read again. No other code writes `point_lot`, `ledger_entry` or an account's sums.

A use-case may write its own rows in the same statement (`Head`: a confirm's sale and lines); it names the
id of the sale it writes, which entries, lots and messages refer to as `posting.THIS_SALE`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from loyalty_core import db
from loyalty_core.errors import DomainError
from loyalty_core.ledger.posting import Posting, View
from loyalty_core.piccolo_conf import DB


class ConcurrentUpdate(DomainError):
    slug, status, title = "concurrent-update", 409, "The card changed meanwhile"


class Head(msgspec.Struct, frozen=True):
    """CTEs of the use-case's own rows written by the same statement, with parameters from $2; `sale` is the
    SQL of the sale id they write (e.g. `(SELECT id FROM sid)`)."""

    ctes: str
    sale: str
    # more columns of the statement's one row, SQL -> name (e.g. the version of the till's cached facts)
    returning: tuple[tuple[str, str], ...] = ()


class Written(msgspec.Struct):
    written: bool  # the version held (always, for a posting without an account)
    active: int | None = None  # the account after the write
    pending: int | None = None
    debt: int | None = None
    version: int | None = None
    sale_id: int | None = None
    new_lots: dict[int, int] = {}  # posting lot id (negative) -> the lot's id
    tier_id: int | None = None
    tier_code: str | None = None
    tier_name: str | None = None
    tier_old_code: str | None = None
    tier_up: bool = False
    tier_changed: bool = False
    returned: dict[str, Any] = {}  # the head's `returning` columns


_TEMPLATE = """
WITH {head}p AS (SELECT $1::jsonb AS j),
acct AS (
  UPDATE account a SET active = a.active + (p.j->>'active')::bigint, pending = a.pending + (p.j->>'pending')::bigint,
         debt = a.debt + (p.j->>'debt')::bigint, version = a.version + 1, updated_at = (p.j->>'at')::timestamptz
  FROM p WHERE a.id = (p.j->>'account')::integer AND a.version = (p.j->>'version')::bigint
  RETURNING a.id, a.active, a.pending, a.debt, a.version),
held AS (SELECT 1 FROM p WHERE p.j->>'account' IS NULL UNION ALL SELECT 1 FROM acct),
nl AS (
  SELECT nextval(pg_get_serial_sequence('point_lot', 'id'))::integer AS id, n.*
  FROM p CROSS JOIN acct CROSS JOIN jsonb_to_recordset(p.j->'new_lots') AS n(ref integer, amount bigint, remaining bigint,
       state varchar, activates_at timestamptz, expires_at timestamptz, source varchar, sale bigint)),
new_lots AS (
  INSERT INTO point_lot (id, account, amount, remaining, state, activates_at, expires_at, source, sale, created_at)
  SELECT nl.id, acct.id, nl.amount, nl.remaining, nl.state, nl.activates_at, nl.expires_at, nl.source,
         CASE WHEN nl.sale = -1 THEN {sale} ELSE nl.sale END, (p.j->>'at')::timestamptz
  FROM p CROSS JOIN acct CROSS JOIN nl ORDER BY nl.ref),
lots AS (
  UPDATE point_lot l SET remaining = l.remaining + (c.v->>1)::bigint, state = COALESCE(c.v->>2, l.state)
  FROM p CROSS JOIN acct CROSS JOIN jsonb_array_elements(p.j->'lots') AS c(v)
  WHERE l.id = (c.v->>0)::integer AND l.account = acct.id),
entries AS (
  INSERT INTO ledger_entry (account, lot, kind, bucket, amount, sale, sale_return, reason, created_at)
  SELECT acct.id, COALESCE(nl.id, (e.v->>0)::integer), e.v->>1, e.v->>2, (e.v->>3)::bigint,
         CASE WHEN (e.v->>4)::bigint = -1 THEN {sale} ELSE (e.v->>4)::bigint END, (e.v->>5)::bigint, e.v->>6,
         (p.j->>'at')::timestamptz
  FROM p CROSS JOIN acct CROSS JOIN jsonb_array_elements(p.j->'entries') WITH ORDINALITY AS e(v, n)
  LEFT JOIN nl ON nl.ref = -(e.v->>0)::integer
  ORDER BY e.n),
mc AS (
  SELECT m.* FROM p CROSS JOIN held CROSS JOIN jsonb_to_record(COALESCE(NULLIF(p.j->'member', 'null'::jsonb), '{{}}'::jsonb))
       AS m(membership integer, program integer, window_start timestamptz, as_of timestamptz, add_spend bigint,
            purchase_at timestamptz, customer integer, card integer)
  WHERE m.membership IS NOT NULL),
spend AS (
  SELECT mc.add_spend + (SELECT COALESCE(SUM(s.earning_spend - s.returned_earning_spend), 0) FROM sale s
                         WHERE s.membership = mc.membership AND s.status = 'confirmed'
                         AND s.occurred_at > mc.window_start AND s.occurred_at <= mc.as_of)
         -- a legacy tier's spend (an import) counts while its carry lasts (docs/import.md)
         + COALESCE((SELECT m.carried_spend FROM membership m WHERE m.id = mc.membership
                     AND m.carried_until > mc.as_of), 0) AS s
  FROM mc),
best AS (
  SELECT t.id, t.code, t.name, t.rank FROM tier t CROSS JOIN mc CROSS JOIN spend
  WHERE t.program = mc.program AND t.threshold_spend <= spend.s
  ORDER BY t.threshold_spend DESC, t.rank DESC LIMIT 1),
old AS (SELECT t.code, t.rank FROM mc JOIN membership m ON m.id = mc.membership JOIN tier t ON t.id = m.tier),
member AS (
  UPDATE membership m SET tier_spend = spend.s, tier = COALESCE(best.id, m.tier),
         purchases_count = m.purchases_count + CASE WHEN mc.purchase_at IS NULL THEN 0 ELSE 1 END,
         first_purchase_at = COALESCE(m.first_purchase_at, mc.purchase_at),
         last_purchase_at = GREATEST(m.last_purchase_at, mc.purchase_at)
  FROM mc CROSS JOIN spend LEFT JOIN best ON true WHERE m.id = mc.membership
  RETURNING best.id AS tier_id, best.code, best.name, best.rank, (SELECT code FROM old) AS old_code,
            (SELECT rank FROM old) AS old_rank, mc.customer, mc.card),
pass AS (
  -- whole seconds, strictly increasing per card: HTTP Last-Modified has one-second resolution
  UPDATE card SET pass_updated_at = GREATEST(date_trunc('second', statement_timestamp()),
                                             date_trunc('second', pass_updated_at) + interval '1 second')
  FROM p CROSS JOIN held WHERE card.id = (p.j->>'pass_card')::integer),
messages AS (
  INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error, created_at)
  SELECT NULL::integer, (p.j->>'pass_card')::integer, 'pass_update',
         jsonb_build_object('card_id', (p.j->>'pass_card')::integer), 'pending', 0, now(), '', now()
  FROM p CROSS JOIN held WHERE p.j->>'pass_card' IS NOT NULL
  UNION ALL
  SELECT (m.v->>'customer')::integer, (m.v->>'card')::integer, m.v->>'kind',
         CASE WHEN m.v->'payload'->>'sale_id' = '-1' THEN jsonb_set(m.v->'payload', '{{sale_id}}', to_jsonb({sale}))
              ELSE m.v->'payload' END, 'pending', 0, now(), '', now()
  FROM p CROSS JOIN held CROSS JOIN jsonb_array_elements(p.j->'messages') AS m(v)
  UNION ALL
  SELECT member.customer, member.card, 'tier_changed',
         jsonb_build_object('tier', member.code, 'name', member.name,
                            'up', member.old_rank IS NULL OR member.rank > member.old_rank), 'pending', 0, now(), '', now()
  FROM member WHERE member.customer IS NOT NULL AND member.tier_id IS NOT NULL
  AND member.code IS DISTINCT FROM member.old_code)
SELECT acct.id IS NOT NULL AS written, acct.active, acct.pending, acct.debt, acct.version, {sale} AS sale_id,
       (SELECT json_object_agg(nl.ref, nl.id) FROM nl)::text AS new_lots,
       member.tier_id, member.code AS tier_code, member.name AS tier_name, member.old_code AS tier_old_code,
       (member.old_rank IS NULL OR member.rank > member.old_rank) AS tier_up,
       (member.tier_id IS NOT NULL AND member.code IS DISTINCT FROM member.old_code) AS tier_changed{returning}
FROM (SELECT 1) one LEFT JOIN acct ON true LEFT JOIN member ON true
"""

_STATEMENTS: dict[Head | None, str] = {}


def _statement(head: Head | None) -> str:
    sql = _STATEMENTS.get(head)
    if sql is None:
        sql = _STATEMENTS[head] = _TEMPLATE.format(
            head=f"{head.ctes.strip()},\n" if head else "", sale=head.sale if head else "NULL::bigint",
            returning="".join(f", {sql} AS {name}" for sql, name in head.returning) if head else "",
        )
    return sql


_encode = msgspec.json.Encoder().encode


async def write(posting: Posting, *args: object, head: Head | None = None, view: View | None = None) -> Written:
    """Write `posting` (and the head's rows, with `args` as its $2...) in one statement, in the caller's
    transaction. Raises ConcurrentUpdate, with nothing written by the ledger, when the account's version
    moved since the plan read it. With `view`, the view is brought to what was written (version, lot ids)."""
    if DB.current_transaction.get() is None:  # one statement is atomic anyway; db.connection() needs one open
        async with DB.transaction():
            return await write(posting, *args, head=head, view=view)
    row = await db.connection().fetchrow(_statement(head), _encode(posting).decode(), *args)
    if posting.account is not None and not row["written"]:
        raise ConcurrentUpdate("The card's points changed while this operation was priced; send it again")
    out = Written(
        written=row["written"] or posting.account is None, active=row["active"], pending=row["pending"],
        debt=row["debt"], version=row["version"], sale_id=row["sale_id"], tier_id=row["tier_id"],
        tier_code=row["tier_code"], tier_name=row["tier_name"], tier_old_code=row["tier_old_code"],
        tier_up=bool(row["tier_up"]),
        tier_changed=bool(row["tier_changed"]),
    )
    if head is not None and head.returning:
        out.returned = {name: row[name] for _, name in head.returning}
    if row["new_lots"]:
        out.new_lots = {-int(ref): lot for ref, lot in msgspec.json.decode(row["new_lots"]).items()}
    if view is not None and posting.account is not None:
        view.version = out.version  # type: ignore[assignment]
        view.active, view.pending, view.debt = out.active, out.pending, out.debt  # type: ignore[assignment]
        for ref, lot_id in out.new_lots.items():
            lot = view.lots.pop(ref, None)
            if lot is not None:
                lot.id = lot_id
                view.lots[lot_id] = lot
        for debt in view.debts:
            if debt.lot is not None and debt.lot < 0:
                debt.lot = out.new_lots.get(debt.lot, debt.lot)
    return out
