"""A confirmed sale written in one statement: the till's hot path.

Everything `confirm` writes after pricing goes to PostgreSQL as one statement (one round trip, one
plan): the sale row with its final response, its lines, the redemption from the lots chosen under
the account lock, the accrual lot, their ledger entries, the account balance (one UPDATE with the
net change, guarded in the WHERE), the purchase count and tier recompute, the pass stamp and the
shopper's messages in the outbox. It is the same arithmetic as `ops.spend` + `ops.accrue` +
`tiers.recompute_tier` + `outbox.after_sale`, which the other use-cases keep using; the till and
ledger tests hold both to the same numbers and `verify_all()`.

The caller holds the account's row lock (`ops.lock_account`) and runs this in its transaction.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import db
from loyalty_core.engine import PricedBasket
from loyalty_core.errors import InsufficientPoints
from loyalty_core.ledger.ops import AccountState, apply_due, pay_debt
from loyalty_core.services.identify import CardContext
from loyalty_core.services.sale_types import CalculationOut, SaleIn, quantity_milli
from loyalty_core.services.tiers import TIER_WINDOW

# The sale id is drawn first (`sid`) so the stored response and the messages carry it: the row is
# written once, never updated. A CTE's writes are invisible to its sibling reads (one snapshot), so
# the tier spend adds this sale's own earning spend ($26) to the sum over the earlier ones, when the sale
# is inside the window (now - 12 months, now] ($31, $27) like them: a late upload of an old sale
# counts only for as long as it is less than a year old.
_WRITE_SALE = """
WITH sid AS (SELECT nextval(pg_get_serial_sequence('sale', 'id')) AS id),
s AS (
  INSERT INTO sale (id, store, till, receipt_id, business_date, occurred_at, card_number, membership, account,
                    channel, status, amount, discount, redeemed_points, redeemed_amount, to_pay, accrued_points,
                    rules_version, request_hash, response, trace, created_at, earning_spend, returned_earning_spend)
  SELECT sid.id, $1::integer, $2::integer, $3::varchar, $4::date, $5::timestamptz, $6::varchar, $7::integer,
         $8::integer, $9::varchar, 'confirmed', $10::bigint, $11::bigint, $12::bigint, $13::bigint, $14::bigint,
         $15::bigint, $16::integer, $17::varchar, jsonb_set($18::jsonb, '{sale_id}', to_jsonb(sid.id)), $19::jsonb,
         now(), $26::bigint, 0
  FROM sid RETURNING id),
lines AS (
  INSERT INTO sale_line (sale, line_no, sku, quantity_milli, price, amount, discount, redeemed_points,
                         redeemed_amount, to_pay, accrued_points, returned_quantity_milli)
  SELECT sid.id, l.line_no, l.sku, l.q, l.price, l.amount, l.discount, l.rp, l.ra, l.to_pay, l.ap, 0
  FROM sid, json_to_recordset($20::json) AS l(line_no int, sku varchar, q bigint, price bigint, amount bigint,
                                               discount bigint, rp bigint, ra bigint, to_pay bigint, ap bigint)),
taken AS (SELECT * FROM unnest($21::integer[], $22::bigint[]) AS t(id, take)),
spent AS (
  UPDATE point_lot p SET remaining = p.remaining - t.take,
         state = CASE WHEN p.remaining - t.take = 0 AND p.state = 'active' THEN 'spent' ELSE p.state END
  FROM taken t WHERE p.id = t.id),
lot AS (
  INSERT INTO point_lot (account, amount, remaining, state, activates_at, expires_at, source, sale, created_at)
  SELECT $8, $15, $15, $23::varchar, $24::timestamptz, $25::timestamptz, 'sale', sid.id, $27::timestamptz FROM sid
  WHERE $15 > 0 AND $8 IS NOT NULL
  RETURNING id),
entries AS (
  INSERT INTO ledger_entry (account, lot, kind, bucket, amount, sale, sale_return, reason, created_at)
  SELECT $8, t.id, 'redeem', 'active', -t.take, sid.id, NULL::bigint, $28::varchar, $27 FROM sid, taken t
  UNION ALL
  SELECT $8, lot.id, 'accrue', $23, $15, sid.id, NULL, $28, $27 FROM sid, lot),
balance AS (
  UPDATE account SET active = active + $29::bigint, pending = pending + $30::bigint, updated_at = $27
  WHERE id = $8 AND active >= $12 AND ($29 <> 0 OR $30 <> 0) RETURNING active, pending),
spend AS (
  SELECT COALESCE(SUM(earning_spend - returned_earning_spend), 0)
         + CASE WHEN $5 > $31 AND $5 <= $27 THEN $26 ELSE 0 END AS s FROM sale
  WHERE membership = $7 AND status = 'confirmed' AND occurred_at > $31::timestamptz AND occurred_at <= $27),
best AS (
  SELECT t.id, t.code, t.name, t.rank FROM tier t, spend WHERE t.program = $32::integer AND t.threshold_spend <= spend.s
  ORDER BY t.threshold_spend DESC, t.rank DESC LIMIT 1),
old AS (SELECT t.code, t.rank FROM membership m JOIN tier t ON t.id = m.tier WHERE m.id = $7),
member AS (
  UPDATE membership m SET tier_spend = spend.s, tier = COALESCE(best.id, m.tier),
         purchases_count = m.purchases_count + 1,
         first_purchase_at = COALESCE(m.first_purchase_at, $5), last_purchase_at = GREATEST(m.last_purchase_at, $5)
  FROM spend LEFT JOIN best ON true WHERE m.id = $7
  RETURNING best.id AS tier_id, best.code, best.name, best.rank,
            (SELECT code FROM old) AS old_code, (SELECT rank FROM old) AS old_rank),
pass AS (
  UPDATE card SET pass_updated_at = GREATEST(date_trunc('second', $33::timestamptz),
                                             date_trunc('second', pass_updated_at) + interval '1 second')
  WHERE id = $34::integer),
messages AS (
  INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error, created_at)
  SELECT NULL::integer, $34, 'pass_update', jsonb_build_object('card_id', $34), 'pending', 0, now(), '', now()
  WHERE $34 IS NOT NULL
  UNION ALL
  SELECT $35::integer, $34, 'points_accrued', jsonb_set($36::jsonb, '{sale_id}', to_jsonb(sid.id)), 'pending', 0, now(), '', now()
  FROM sid WHERE $35 IS NOT NULL AND $15 > 0
  UNION ALL
  SELECT $35, $34, 'tier_changed', jsonb_build_object('tier', member.code, 'name', member.name,
                                                       'up', member.old_rank IS NULL OR member.rank > member.old_rank),
         'pending', 0, now(), '', now()
  FROM member WHERE $35 IS NOT NULL AND member.tier_id IS NOT NULL AND member.code IS DISTINCT FROM member.old_code)
SELECT sid.id, (SELECT active FROM balance) AS active, (SELECT pending FROM balance) AS pending FROM sid
"""


def _lines_json(sale: SaleIn, lines: list) -> str:
    """The priced lines as one JSON parameter: asyncpg type-checks every element of an array
    parameter in Python, which for ten arrays cost more than PostgreSQL's JSON parser."""
    by_no = {ln.line_no: ln for ln in sale.lines}
    rows = []
    for ln in lines:
        src = by_no[ln.line_no]
        rows.append({"line_no": ln.line_no, "sku": src.sku, "q": quantity_milli(src.quantity), "price": src.price,
                     "amount": ln.amount, "discount": ln.discount, "rp": ln.redeemed_points,
                     "ra": ln.redeemed_amount, "to_pay": ln.to_pay, "ap": ln.accrued_points})
    return msgspec.json.encode(rows).decode()


def born_expired(accrual: tuple[bool, dt.datetime, dt.datetime | None] | None, now: dt.datetime) -> bool:
    """A sale dated so long ago that its points' life already ended: they are written and burn at once."""
    return accrual is not None and accrual[2] is not None and accrual[2] <= now


def balance_after(
    state: AccountState, redeemed: int, accrued: int, accrual: tuple[bool, dt.datetime, dt.datetime | None] | None,
    now: dt.datetime,
) -> tuple[int, int]:
    """The account after this sale and what `write_confirmed_sale` does next: the debt paid from the accrual
    first, points born expired burnt."""
    if accrual is None or born_expired(accrual, now):
        return state.active - redeemed, state.pending
    kept = accrued - min(state.debt, accrued)
    if accrual[0]:
        return state.active - redeemed + kept, state.pending
    return state.active - redeemed, state.pending + kept


async def write_confirmed_sale(
    sale: SaleIn,
    till_id: int,
    store_id: int,
    card: CardContext | None,
    state: AccountState | None,
    priced: PricedBasket,
    version: int,
    digest: str,
    earning: int,
    taken: list[tuple[int, int]],
    accrual: tuple[bool, dt.datetime, dt.datetime | None] | None,
    response: CalculationOut,
    now: dt.datetime,
) -> int:
    """Write the sale and its ledger effects; returns the sale id. `taken` are (lot, points) to redeem,
    `accrual` is (active at once, activates_at, expires_at) when points are accrued."""
    t = priced.totals
    lines = priced.lines
    active_now, activates_at, expires_at = accrual if accrual else (False, None, None)
    accrued = t.accrued_points if state is not None and accrual else 0
    redeemed = t.redeemed_points if state is not None else 0
    active_delta = -redeemed + (accrued if active_now else 0)
    pending_delta = 0 if active_now else accrued
    customer_id = card.customer_id if card is not None else None
    after = balance_after(state, redeemed, accrued, accrual, now) if state else (0, 0)
    accrued_message = msgspec.json.encode({"points": accrued, "sale_id": None, "active": after[0],
                                           "pending": after[1]}).decode() if state else "{}"
    row = await db.connection().fetchrow(
        _WRITE_SALE,
        store_id, till_id, sale.receipt_id, sale.business_date, sale.occurred_at,  # $1-$5
        card.number if card else None, card.membership_id if card else None, state.id if state else None,  # $6-$8
        sale.channel, t.amount, t.discount, t.redeemed_points, t.redeemed_amount, t.to_pay, t.accrued_points,  # $9-$15
        version, digest, msgspec.json.encode(response).decode(),  # $16-$18
        msgspec.json.encode({"applied": priced.applied, "trace": priced.trace,
                             "issued_coupons": priced.issued_coupons}).decode(),  # $19
        _lines_json(sale, lines),  # $20
        [lot for lot, _ in taken], [take for _, take in taken],  # $21-$22
        "active" if active_now else "pending", activates_at, expires_at,  # $23-$25
        earning, now, f"receipt {sale.receipt_id}", active_delta, pending_delta,  # $26-$30
        now - TIER_WINDOW, card.program_id if card else None,  # $31-$32: the window is (now - 12 months, now]
        dt.datetime.now(dt.UTC), card.card_id if card and state else None,  # $33-$34
        customer_id if state else None, accrued_message,  # $35-$36
    )
    if state is not None and (active_delta or pending_delta):
        if row["active"] is None:
            # the row lock makes this unreachable; the guard in the WHERE is the second line of defence
            raise InsufficientPoints("The card's balance changed; not enough points", available=state.active)
        state.active, state.pending = row["active"], row["pending"]
    if state is not None and accrued and born_expired(accrual, now):
        await apply_due(state, now)  # the lot was written active past its expiry: burn it now
    elif state is not None and accrued and state.debt:
        # a debt is paid first from the next accrual (rare: a second statement only then)
        lot = await db.fetchrow("SELECT id FROM point_lot WHERE sale = $1 AND source = 'sale'", row["id"])
        await pay_debt(state, [(lot["id"], accrued, "active" if active_now else "pending")], now,  # type: ignore[index]
                       reason=f"receipt {sale.receipt_id}", sale_id=row["id"])
    return row["id"]
