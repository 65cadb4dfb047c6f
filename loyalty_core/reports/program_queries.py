"""The queries of the program reports (cost per rule, loyalty share, members, tiers, coupons), named, `$n`
placeholders. The refresh's part keeps the aggregates (migration 2026-11-29T19:20) in the same REPEATABLE READ
transaction as the ledger's; the pages read only the aggregates.

A sale belongs to its card's program, else to its store's, else to the first program (as the till prices it).
Imported sales (channel 'import', a legacy system's history) are not receipts rung up here and are left out.
"""

from __future__ import annotations

# --- the refresh --------------------------------------------------------------------------------------------

_SALES = """
FROM sale s
JOIN store st ON st.id = s.store
LEFT JOIN membership m ON m.id = s.membership
JOIN program p ON p.id = COALESCE(m.program, st.program, (SELECT MIN(id) FROM program))
WHERE s.channel <> 'import' {since}
"""
# the whole local days from $1's day on, as the ledger's refresh re-sums them
_SINCE = ("AND s.created_at >= $1::timestamptz - interval '1 day' "
          "AND (s.created_at AT TIME ZONE p.timezone)::date >= ($1::timestamptz AT TIME ZONE p.timezone)::date")


def _both(template: str) -> tuple[str, str]:
    return template.format(since=""), template.format(since=_SINCE)


# what each rule gave: the sale's stored `applied` rules (loyalty_core/till/sale_write.py); points only where the
# sale had an account (what the ledger accrued), discounts on every receipt
SUM_RULES_ALL, SUM_RULES_SINCE = _both("""
INSERT INTO report_rule_day AS r (program, day, store, rule, name, points, discount, sales)
SELECT p.id, (s.created_at AT TIME ZONE p.timezone)::date, s.store, a.v->>'rule', MAX(a.v->>'name'),
       COALESCE(SUM((a.v->>'points')::bigint) FILTER (WHERE s.account IS NOT NULL), 0),
       COALESCE(SUM((a.v->>'discount')::bigint), 0), COUNT(DISTINCT s.id)
FROM sale s
JOIN store st ON st.id = s.store
LEFT JOIN membership m ON m.id = s.membership
JOIN program p ON p.id = COALESCE(m.program, st.program, (SELECT MIN(id) FROM program))
CROSS JOIN jsonb_array_elements(CASE WHEN jsonb_typeof(s.trace->'applied') = 'array' THEN s.trace->'applied'
                                     ELSE '[]'::jsonb END) AS a(v)
WHERE s.channel <> 'import' {since}
GROUP BY 1, 2, 3, 4
ON CONFLICT (program, day, store, rule)
DO UPDATE SET name = EXCLUDED.name, points = EXCLUDED.points, discount = EXCLUDED.discount, sales = EXCLUDED.sales
""")

# the same days without the store: what the cost-per-rule page reads (a few rows a day)
_RULES_ROLL_UP = """
INSERT INTO report_rule_total AS t (program, day, rule, name, points, discount, sales)
SELECT d.program, d.day, d.rule, MAX(d.name), SUM(d.points), SUM(d.discount), SUM(d.sales)
FROM report_rule_day d JOIN program p ON p.id = d.program
{where}
GROUP BY 1, 2, 3
ON CONFLICT (program, day, rule)
DO UPDATE SET name = EXCLUDED.name, points = EXCLUDED.points, discount = EXCLUDED.discount, sales = EXCLUDED.sales
"""
ROLL_UP_RULES_ALL = _RULES_ROLL_UP.format(where="")
ROLL_UP_RULES_SINCE = _RULES_ROLL_UP.format(
    where="WHERE d.day >= ($1::timestamptz AT TIME ZONE p.timezone)::date")

SUM_SALES_ALL, SUM_SALES_SINCE = _both("""
INSERT INTO report_sale_day AS r (program, day, store, carded, receipts, amount)
SELECT p.id, (s.created_at AT TIME ZONE p.timezone)::date, s.store, s.membership IS NOT NULL, COUNT(*),
       SUM(s.amount)
""" + _SALES + """
GROUP BY 1, 2, 3, 4
ON CONFLICT (program, day, store, carded) DO UPDATE SET receipts = EXCLUDED.receipts, amount = EXCLUDED.amount
""")

# registered members who bought (as registrations count them: a membership with a shopper; an emitted card nobody
# registered is in the loyalty share, not here), per grain and period, by their tier now: the periods from $1's on
# are summed again whole
# (deleted first: a member whose tier changed moves to their new tier's row)
_GRAINS = "CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS g(grain)"
DROP_ACTIVE_SINCE = f"""
DELETE FROM report_active r USING program p {_GRAINS}
WHERE p.id = r.program AND r.grain = g.grain
  AND r.period >= date_trunc(g.grain, ($1::timestamptz AT TIME ZONE p.timezone)::date::timestamp)::date
"""
_ACTIVE = f"""
INSERT INTO report_active (program, grain, period, tier, members)
SELECT m.program, g.grain, date_trunc(g.grain, (s.created_at AT TIME ZONE p.timezone)::date::timestamp)::date,
       COALESCE(m.tier, 0), COUNT(DISTINCT s.membership)
FROM sale s JOIN membership m ON m.id = s.membership JOIN program p ON p.id = m.program {_GRAINS}
WHERE s.channel <> 'import' AND m.customer IS NOT NULL {{since}}
GROUP BY 1, 2, 3, 4
"""
SUM_ACTIVE_ALL = _ACTIVE.format(since="")
# a month starts at most 31 days (and a time zone) before $1's day
SUM_ACTIVE_SINCE = _ACTIVE.format(
    since="AND s.created_at >= $1::timestamptz - interval '33 days' "
          "AND (s.created_at AT TIME ZONE p.timezone)::date >= "
          "date_trunc(g.grain, ($1::timestamptz AT TIME ZONE p.timezone)::date::timestamp)::date")
DROP_ACTIVE_ALL = "DELETE FROM report_active"

# registrations (memberships with a shopper, not closed), by the day they joined, channel and tier now: summed
# whole every run, a group by over the memberships (their tier and state change without a trace to follow)
DROP_MEMBERS = "DELETE FROM report_member_day"
SUM_MEMBERS = """
INSERT INTO report_member_day (program, day, channel, tier, registered)
SELECT m.program, (m.joined_at AT TIME ZONE p.timezone)::date, m.registration_channel, COALESCE(m.tier, 0), COUNT(*)
FROM membership m JOIN program p ON p.id = m.program
WHERE m.customer IS NOT NULL AND m.status <> 'closed'
GROUP BY 1, 2, 3, 4
"""
# the registered members per tier as this run counts them (they add up to the registrations), kept per local day:
# the history grows from the first refresh on
SUM_TIERS = """
INSERT INTO report_tier_day AS r (program, day, tier, members)
SELECT m.program, (now() AT TIME ZONE p.timezone)::date, COALESCE(m.tier, 0), COUNT(*)
FROM membership m JOIN program p ON p.id = m.program
WHERE m.customer IS NOT NULL AND m.status <> 'closed'
GROUP BY 1, 2, 3
ON CONFLICT (program, day, tier) DO UPDATE SET members = EXCLUDED.members
"""
# a tier that has no member left today still gets its zero
ZERO_EMPTY_TIERS = """
UPDATE report_tier_day r SET members = 0
FROM program p
WHERE p.id = r.program AND r.day = (now() AT TIME ZONE p.timezone)::date
  AND NOT EXISTS (SELECT 1 FROM membership m WHERE m.program = r.program AND COALESCE(m.tier, 0) = r.tier
                  AND m.customer IS NOT NULL AND m.status <> 'closed')
"""

# tier changes: the ledger writer queues a `tier_changed` message with every change of a shopper's tier (up: a
# higher rank, or a first tier); through the card to its membership's program
_TIER_MOVES = """
INSERT INTO report_tier_move_day AS r (program, day, tier, up, down)
SELECT m.program, (n.created_at AT TIME ZONE p.timezone)::date, n.payload->>'tier',
       COUNT(*) FILTER (WHERE (n.payload->>'up')::boolean), COUNT(*) FILTER (WHERE NOT (n.payload->>'up')::boolean)
FROM notification n JOIN card c ON c.id = n.card JOIN membership m ON m.id = c.membership
JOIN program p ON p.id = m.program
WHERE n.kind = 'tier_changed' {since}
GROUP BY 1, 2, 3
ON CONFLICT (program, day, tier) DO UPDATE SET up = EXCLUDED.up, down = EXCLUDED.down
"""
SUM_TIER_MOVES_ALL = _TIER_MOVES.format(since="")
SUM_TIER_MOVES_SINCE = _TIER_MOVES.format(
    since="AND n.created_at >= $1::timestamptz - interval '1 day' "
          "AND (n.created_at AT TIME ZONE p.timezone)::date >= ($1::timestamptz AT TIME ZONE p.timezone)::date")

_COUPONS = """
INSERT INTO report_coupon_day AS r (program, day, series, issued, redemptions)
SELECT program, day, series, SUM(issued), SUM(used) FROM (
  SELECT cs.program, (c.issued_at AT TIME ZONE p.timezone)::date AS day, c.series, 1 AS issued, 0 AS used
  FROM coupon c JOIN coupon_series cs ON cs.id = c.series JOIN program p ON p.id = cs.program
  {issued}
  UNION ALL
  SELECT cs.program, (u.used_at AT TIME ZONE p.timezone)::date, c.series, 0, 1
  FROM coupon_use u JOIN coupon c ON c.id = u.coupon JOIN coupon_series cs ON cs.id = c.series
  JOIN program p ON p.id = cs.program
  {used}) x
GROUP BY 1, 2, 3
ON CONFLICT (program, day, series) DO UPDATE SET issued = EXCLUDED.issued, redemptions = EXCLUDED.redemptions
"""


def _coupon_since(column: str) -> str:
    return (f"WHERE {column} >= $1::timestamptz - interval '1 day' "
            f"AND ({column} AT TIME ZONE p.timezone)::date >= ($1::timestamptz AT TIME ZONE p.timezone)::date")


# a cancelled sale deletes its coupon_use (the code can be used again): the days re-summed are deleted first, so a
# day whose only redemption went away does not keep it
DROP_COUPONS_ALL = "DELETE FROM report_coupon_day"
DROP_COUPONS_SINCE = """
DELETE FROM report_coupon_day r USING program p
WHERE p.id = r.program AND r.day >= ($1::timestamptz AT TIME ZONE p.timezone)::date
"""
SUM_COUPONS_ALL = _COUPONS.format(issued="", used="")
SUM_COUPONS_SINCE = _COUPONS.format(issued=_coupon_since("c.issued_at"), used=_coupon_since("u.used_at"))

ANALYZE = ("ANALYZE report_rule_day, report_rule_total, report_sale_day, report_member_day, report_active, report_tier_day, "
           "report_tier_move_day, report_coupon_day")

# --- what the pages read ------------------------------------------------------------------------------------

TIERS = "SELECT id, code, name, rank FROM tier WHERE program = $1 ORDER BY rank, id"

# per period and rule ($2: grain); {table}: the program's days, or one store's ($5)
_RULES = """
SELECT date_trunc($2::text, day::timestamp)::date AS period, rule, MAX(name) AS name,
       SUM(points)::bigint AS points, SUM(discount)::bigint AS discount, SUM(sales)::bigint AS sales
FROM {table} WHERE program = $1 AND day BETWEEN $3 AND $4{store}
GROUP BY 1, 2 ORDER BY 1, 2
"""
RULES = _RULES.format(table="report_rule_total", store="")
RULES_AT_STORE = _RULES.format(table="report_rule_day", store=" AND store = $5")
# what the ledger accrued on sales in the range (store 0 is movements without a sale): whole months ($4 <= month <
# $5) from the monthly sums, the other days from the daily ones, as the per-store report reads them
LEDGER_SALE_ACCRUALS = """
SELECT COALESCE(SUM(points), 0)::bigint AS points FROM (
  SELECT points FROM report_ledger_store_month
  WHERE program = $1 AND month >= $4 AND month < $5 AND kind = 'accrue' AND store <> 0
    AND bucket IN ('active', 'pending')
  UNION ALL
  SELECT points FROM report_ledger_day
  WHERE program = $1 AND ((day >= $2 AND day < $4) OR (day >= $5 AND day <= $3)) AND kind = 'accrue' AND store <> 0
    AND bucket IN ('active', 'pending')) r
"""
LEDGER_SALE_ACCRUALS_AT_STORE = """
SELECT COALESCE(SUM(points), 0)::bigint AS points FROM report_ledger_day
WHERE program = $1 AND day BETWEEN $2 AND $3 AND kind = 'accrue' AND store = $4 AND bucket IN ('active', 'pending')
"""

SHARE = """
SELECT t.store AS store_id, COALESCE(s.code, '') AS code, COALESCE(s.name, '') AS name, t.receipts, t.carded_receipts,
       t.amount, t.carded_amount
FROM (SELECT store, SUM(receipts)::bigint AS receipts,
             COALESCE(SUM(receipts) FILTER (WHERE carded), 0)::bigint AS carded_receipts,
             SUM(amount)::bigint AS amount, COALESCE(SUM(amount) FILTER (WHERE carded), 0)::bigint AS carded_amount
      FROM report_sale_day WHERE program = $1 AND day BETWEEN $2 AND $3 GROUP BY store) t
LEFT JOIN store s ON s.id = t.store
"""

# registrations per period and channel ($5: a tier id, or NULL for all)
REGISTRATIONS = """
SELECT date_trunc($2::text, day::timestamp)::date AS period, channel, SUM(registered)::bigint AS registered
FROM report_member_day WHERE program = $1 AND day BETWEEN $3 AND $4 AND ($5::integer IS NULL OR tier = $5)
GROUP BY 1, 2 ORDER BY 1, 2
"""
REGISTERED_BEFORE = """
SELECT COALESCE(SUM(registered), 0)::bigint AS registered FROM report_member_day
WHERE program = $1 AND day < $2 AND ($3::integer IS NULL OR tier = $3)
"""
ACTIVE = """
SELECT period, SUM(members)::bigint AS members FROM report_active
WHERE program = $1 AND grain = $2 AND period BETWEEN date_trunc($2::text, $3::date::timestamp)::date AND $4
  AND ($5::integer IS NULL OR tier = $5)
GROUP BY 1 ORDER BY 1
"""

# the last count of each period with one ($5: a tier id or NULL)
TIER_COUNTS = """
SELECT DISTINCT ON (date_trunc($2::text, day::timestamp)::date, tier)
       date_trunc($2::text, day::timestamp)::date AS period, tier, day, members
FROM report_tier_day WHERE program = $1 AND day BETWEEN $3 AND $4 AND ($5::integer IS NULL OR tier = $5)
ORDER BY date_trunc($2::text, day::timestamp)::date, tier, day DESC
"""
TIER_MOVES = """
SELECT date_trunc($2::text, day::timestamp)::date AS period, tier, SUM(up)::bigint AS up, SUM(down)::bigint AS down
FROM report_tier_move_day WHERE program = $1 AND day BETWEEN $3 AND $4 AND ($5::text IS NULL OR tier = $5)
GROUP BY 1, 2 ORDER BY 1, 2
"""

COUPONS = """
SELECT cs.id AS series_id, cs.code, cs.name, cs.personal, t.issued, t.redemptions
FROM (SELECT series, SUM(issued)::bigint AS issued, SUM(redemptions)::bigint AS redemptions
      FROM report_coupon_day WHERE program = $1 AND day BETWEEN $2 AND $3 GROUP BY series) t
JOIN coupon_series cs ON cs.id = t.series
ORDER BY t.redemptions DESC, cs.code
"""
