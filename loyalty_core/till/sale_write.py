"""A confirmed sale written in one statement: the till's hot path.

The sale's points are a Plan (`loyalty_core.ledger.posting`): due activations, the redemption, the accrual
with the debt paid from it, the tier over the window, the pass stamp and the shopper's messages. The sale
row with its final response and its lines are this module's own rows (`HEAD`), written by the ledger
writer's statement in front of the posting, so everything `confirm` writes after pricing is one round trip,
guarded by the account's version.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from loyalty_core import cache
from loyalty_core.engine import PricedBasket
from loyalty_core.ledger import writer
from loyalty_core.ledger.posting import THIS_SALE, MemberChange, Plan
from loyalty_core.till.identify import CardContext
from loyalty_core.till.types import CalculationOut, SaleIn, quantity_milli
from loyalty_core.members.tiers import TIER_WINDOW

# The sale id is drawn first (`sid`) so the stored response, the ledger rows and the messages carry it: the
# row is written once, never updated.
HEAD = writer.Head(
    ctes="""
sid AS (SELECT nextval(pg_get_serial_sequence('sale', 'id')) AS id),
s AS (
  INSERT INTO sale (id, store, till, receipt_id, business_date, occurred_at, card_number, membership, account,
                    channel, status, amount, discount, redeemed_points, redeemed_amount, to_pay, accrued_points,
                    rules_version, request_hash, response, trace, created_at, earning_spend, returned_earning_spend)
  SELECT sid.id, $2::integer, $3::integer, $4::varchar, $5::date, $6::timestamptz, $7::varchar, $8::integer,
         $9::integer, $10::varchar, 'confirmed', $11::bigint, $12::bigint, $13::bigint, $14::bigint, $15::bigint,
         $16::bigint, $17::integer, $18::varchar, jsonb_set($19::jsonb, '{sale_id}', to_jsonb(sid.id)), $20::jsonb,
         now(), $21::bigint, 0
  FROM sid RETURNING id),
lines AS (
  INSERT INTO sale_line (sale, line_no, sku, quantity_milli, price, amount, discount, redeemed_points,
                         redeemed_amount, to_pay, accrued_points, returned_quantity_milli)
  SELECT sid.id, l.line_no, l.sku, l.q, l.price, l.amount, l.discount, l.rp, l.ra, l.to_pay, l.ap, 0
  FROM sid, json_to_recordset($22::json) AS l(line_no int, sku varchar, q bigint, price bigint, amount bigint,
                                               discount bigint, rp bigint, ra bigint, to_pay bigint, ap bigint))""",
    sale="(SELECT id FROM sid)",
    # a sale without a card reads nothing else: its write tells whether the till's cached facts were current
    returning=((cache.VERSION_COLUMN, "facts_version"),),
)


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


def plan_sale(
    plan: Plan, sale: SaleIn, card: CardContext, priced: PricedBasket, earning: int,
    accrual: tuple[dt.datetime, dt.datetime | None] | None, now: dt.datetime,
) -> None:
    """The sale's points on a plan already settled as of `now`: the redemption (raises InsufficientPoints),
    the accrual (`accrual` is (activates_at, expires_at)), the membership's purchase and tier, the pass and
    the shopper's message. Pure."""
    t = priced.totals
    reason = f"receipt {sale.receipt_id}"
    plan.spend(t.redeemed_points, reason=reason, sale=THIS_SALE)
    if accrual is not None and t.accrued_points > 0:
        plan.accrue(t.accrued_points, now, kind="accrue", source="sale", activates_at=accrual[0],
                    expires_at=accrual[1], reason=reason, sale=THIS_SALE)
    window_start = now - TIER_WINDOW
    plan.member(MemberChange(
        membership=card.membership_id, program=card.program_id, window_start=window_start, as_of=now,  # type: ignore[arg-type]
        add_spend=earning if window_start < sale.occurred_at <= now else 0, purchase_at=sale.occurred_at,
        customer=card.customer_id, card=card.card_id,
    ))
    plan.pass_update(card.card_id)
    if card.customer_id is not None and t.accrued_points > 0:
        plan.message("points_accrued", {"points": t.accrued_points, "sale_id": THIS_SALE,
                                        "active": plan.view.active, "pending": plan.view.pending},
                     customer=card.customer_id, card=card.card_id)


async def write_confirmed_sale(
    sale: SaleIn, till_id: int, store_id: int, card: CardContext | None, plan: Plan | None, priced: PricedBasket,
    version: int, digest: str, earning: int, response: CalculationOut, now: dt.datetime,
    facts_version: int | None = None,
) -> int:
    """Write the sale, its lines and its plan's posting in one statement; returns the sale id. Raises
    writer.ConcurrentUpdate (nothing written) when the account changed since the plan read it, and
    cache.FactsChanged when the version of the cached facts moved past `facts_version` (the caller's transaction
    rolls the sale back)."""
    t = priced.totals
    posting = plan.posting() if plan is not None else writer.Posting(account=None, version=0, at=now)
    written = await writer.write(
        posting,
        store_id, till_id, sale.receipt_id, sale.business_date, sale.occurred_at,  # $2-$6
        card.number if card else None, card.membership_id if card else None, posting.account,  # $7-$9
        sale.channel, t.amount, t.discount, t.redeemed_points, t.redeemed_amount, t.to_pay, t.accrued_points,  # $10-$16
        version, digest, msgspec.json.encode(response).decode(),  # $17-$19
        msgspec.json.encode({"applied": priced.applied, "trace": priced.trace,
                             "issued_coupons": priced.issued_coupons}).decode(),  # $20
        earning, _lines_json(sale, priced.lines),  # $21-$22
        head=HEAD, view=plan.view if plan is not None else None,
    )
    cache.check(written.returned["facts_version"], facts_version)
    return written.sale_id  # type: ignore[return-value]
