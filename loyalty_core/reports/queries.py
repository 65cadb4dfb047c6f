"""Every query of the finance reports, named, in one place (`$n` placeholders, sent with `db.fetch`).

The reports read only the aggregates (`report_*` tables, migrations 2026-11-29T17:41 and T18:03); the refresh is the only
reader of the ledger itself. Points that move the liability are the entries into the `active` and `pending`
buckets (the `debt` bucket is what members owe, shown apart); `activate` moves points between those two buckets
and nets to zero.
"""

from __future__ import annotations

# --- the refresh (the `reports` job) ------------------------------------------------------------------------

# taken first in the refresh's REPEATABLE READ transaction: a second refresh at the same moment skips its turn
TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1) AS locked"
REPEATABLE_READ = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"

WATERMARK = "SELECT watermark FROM scheduled_job WHERE name = $1"
SET_WATERMARK = (
    "INSERT INTO scheduled_job (name, last_result, watermark) VALUES ($1, '', now()) "
    "ON CONFLICT (name) DO UPDATE SET watermark = EXCLUDED.watermark"
)

# the ledger summed per program, local day, store, kind and bucket. An upsert, not delete + insert: the ledger only
# grows, so a day's group never disappears, and two refreshes can never leave a day counted twice (the key).
_SUM_DAYS = """
INSERT INTO report_ledger_day AS d (program, day, store, kind, bucket, points, entries)
SELECT m.program, (e.created_at AT TIME ZONE p.timezone)::date, COALESCE(s.store, 0), e.kind, e.bucket,
       SUM(e.amount), COUNT(*)
FROM ledger_entry e
JOIN account a ON a.id = e.account AND a.currency = 'points'
JOIN membership m ON m.id = a.membership
JOIN program p ON p.id = m.program
LEFT JOIN sale s ON s.id = e.sale
{where}
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (program, day, store, kind, bucket)
DO UPDATE SET points = EXCLUDED.points, entries = EXCLUDED.entries
"""
SUM_ALL_DAYS = _SUM_DAYS.format(where="")
# the whole local days from $1's day on (the created_at index finds them; a day starts less than 24 h before $1)
SUM_DAYS_SINCE = _SUM_DAYS.format(
    where="WHERE e.created_at >= $1::timestamptz - interval '1 day' "
          "AND (e.created_at AT TIME ZONE p.timezone)::date >= ($1::timestamptz AT TIME ZONE p.timezone)::date")

# the same days rolled up without the store: what the program-wide reports read (a few rows a day)
_ROLL_UP = """
INSERT INTO report_ledger_total AS t (program, day, kind, bucket, points, entries)
SELECT d.program, d.day, d.kind, d.bucket, SUM(d.points), SUM(d.entries)
FROM report_ledger_day d JOIN program p ON p.id = d.program
{where}
GROUP BY 1, 2, 3, 4
ON CONFLICT (program, day, kind, bucket) DO UPDATE SET points = EXCLUDED.points, entries = EXCLUDED.entries
"""
ROLL_UP_ALL = _ROLL_UP.format(where="")
ROLL_UP_SINCE = _ROLL_UP.format(where="WHERE d.day >= ($1::timestamptz AT TIME ZONE p.timezone)::date")
# and per store and month: the months of the days re-summed, whole
_ROLL_UP_MONTHS = """
INSERT INTO report_ledger_store_month AS m (program, month, store, kind, bucket, points)
SELECT d.program, date_trunc('month', d.day::timestamp)::date, d.store, d.kind, d.bucket, SUM(d.points)
FROM report_ledger_day d JOIN program p ON p.id = d.program
{where}
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (program, month, store, kind, bucket) DO UPDATE SET points = EXCLUDED.points
"""
ROLL_UP_MONTHS_ALL = _ROLL_UP_MONTHS.format(where="")
ROLL_UP_MONTHS_SINCE = _ROLL_UP_MONTHS.format(
    where="WHERE d.day >= date_trunc('month', ($1::timestamptz AT TIME ZONE p.timezone)::date::timestamp)::date")
# fresh statistics for the pages' plans (a new year of rows would otherwise be planned as empty)
ANALYZE = "ANALYZE report_ledger_day, report_ledger_total, report_ledger_store_month"

# live lots by expiry month; `spent` counts with `active`, as `kopilka ledger verify` sums them
SUM_AGING = """
INSERT INTO report_liability_aging (program, expires_month, state, points, lots, as_of)
SELECT m.program, date_trunc('month', l.expires_at AT TIME ZONE p.timezone)::date,
       CASE WHEN l.state = 'pending' THEN 'pending' ELSE 'active' END, SUM(l.remaining), COUNT(*), now()
FROM point_lot l
JOIN account a ON a.id = l.account AND a.currency = 'points'
JOIN membership m ON m.id = a.membership
JOIN program p ON p.id = m.program
WHERE l.state IN ('pending', 'active', 'spent') AND l.remaining > 0
GROUP BY 1, 2, 3
"""
DROP_OLD_AGING = "DELETE FROM report_liability_aging WHERE as_of < now()"

SUM_ACCOUNTS = """
INSERT INTO report_liability_snapshot AS r (program, active, pending, debt, accounts, as_of)
SELECT m.program, SUM(a.active), SUM(a.pending), SUM(a.debt), COUNT(*), now()
FROM account a JOIN membership m ON m.id = a.membership
WHERE a.currency = 'points'
GROUP BY m.program
ON CONFLICT (program) DO UPDATE SET active = EXCLUDED.active, pending = EXCLUDED.pending, debt = EXCLUDED.debt,
    accounts = EXCLUDED.accounts, as_of = EXCLUDED.as_of
"""

# --- what the pages read ----------------------------------------------------------------------------------------

PROGRAMS = "SELECT id, code, name, timezone, rules_version FROM program ORDER BY id"
PROGRAM = "SELECT id, code, name, timezone, rules_version FROM program WHERE code = $1"
STORES = "SELECT id, code, name FROM store WHERE program = $1 OR program IS NULL ORDER BY name, id LIMIT 1000"

# signed points per kind, per period ($2: 'day' | 'week' | 'month'); {table}: the program's totals, or one store's
_MOVEMENTS = """
SELECT date_trunc($2::text, day::timestamp)::date AS period,
       COALESCE(SUM(points) FILTER (WHERE kind = 'accrue'), 0)::bigint AS accrued,
       COALESCE(SUM(points) FILTER (WHERE kind = 'redeem'), 0)::bigint AS redeemed,
       COALESCE(SUM(points) FILTER (WHERE kind = 'expire'), 0)::bigint AS expired,
       COALESCE(SUM(points) FILTER (WHERE kind = 'adjust'), 0)::bigint AS adjusted,
       COALESCE(SUM(points) FILTER (WHERE kind = 'return_clawback'), 0)::bigint AS clawed_back,
       COALESCE(SUM(points) FILTER (WHERE kind = 'return_refund'), 0)::bigint AS refunded,
       COALESCE(SUM(points) FILTER (WHERE kind = 'import'), 0)::bigint AS imported,
       COALESCE(SUM(points) FILTER (WHERE kind = 'debt_paid'), 0)::bigint AS debt_repaid,
       COALESCE(SUM(points) FILTER (WHERE kind NOT IN ('accrue', 'redeem', 'expire', 'adjust', 'return_clawback',
                                                        'return_refund', 'import', 'debt_paid')), 0)::bigint AS other,
       COALESCE(SUM(points), 0)::bigint AS net
FROM {table}
WHERE program = $1 AND day BETWEEN $3 AND $4 AND bucket IN ('active', 'pending'){store}
GROUP BY 1 ORDER BY 1
"""
MOVEMENTS = _MOVEMENTS.format(table="report_ledger_total", store="")
MOVEMENTS_AT_STORE = _MOVEMENTS.format(table="report_ledger_day", store=" AND store = $5")

# the liability before the first day, then its change per period
OPENING = """
SELECT COALESCE(SUM(points) FILTER (WHERE bucket = 'active'), 0)::bigint AS active,
       COALESCE(SUM(points) FILTER (WHERE bucket = 'pending'), 0)::bigint AS pending
FROM report_ledger_total WHERE program = $1 AND day < $2 AND bucket IN ('active', 'pending')
"""
CHANGES = """
SELECT date_trunc($2::text, day::timestamp)::date AS period,
       COALESCE(SUM(points) FILTER (WHERE bucket = 'active'), 0)::bigint AS active,
       COALESCE(SUM(points) FILTER (WHERE bucket = 'pending'), 0)::bigint AS pending
FROM report_ledger_total WHERE program = $1 AND day BETWEEN $3 AND $4 AND bucket IN ('active', 'pending')
GROUP BY 1 ORDER BY 1
"""
AS_OF = "SELECT as_of FROM report_liability_snapshot WHERE program = $1"
# everything the aggregate holds, against the account balances read in the same refresh
RECONCILE = """
SELECT s.active AS accounts_active, s.pending AS accounts_pending, s.debt AS accounts_debt, s.accounts, s.as_of,
       COALESCE((SELECT SUM(points) FROM report_ledger_total d WHERE d.program = s.program AND d.bucket = 'active'), 0)::bigint
           AS days_active,
       COALESCE((SELECT SUM(points) FROM report_ledger_total d WHERE d.program = s.program AND d.bucket = 'pending'), 0)::bigint
           AS days_pending
FROM report_liability_snapshot s WHERE s.program = $1
"""

AGING = """
SELECT expires_month,
       COALESCE(SUM(points) FILTER (WHERE state = 'active'), 0)::bigint AS active,
       COALESCE(SUM(points) FILTER (WHERE state = 'pending'), 0)::bigint AS pending,
       SUM(lots)::int AS lots, MAX(as_of) AS as_of
FROM report_liability_aging
WHERE program = $1 AND as_of = (SELECT MAX(as_of) FROM report_liability_aging WHERE program = $1)
GROUP BY expires_month ORDER BY expires_month NULLS LAST
"""

# whole months ($4 <= month < $5) from the monthly sums, the days of the range outside them from the daily ones
# (two day ranges, not NOT (...): PostgreSQL's generic plan for that, from the 6th run of the statement, took 10x)
BY_STORE = """
SELECT t.store AS store_id, COALESCE(s.code, '') AS code, COALESCE(s.name, '') AS name, t.accrued, t.redeemed,
       t.clawed_back, t.refunded, t.net
FROM (SELECT store,
             COALESCE(SUM(points) FILTER (WHERE kind = 'accrue'), 0)::bigint AS accrued,
             COALESCE(SUM(points) FILTER (WHERE kind = 'redeem'), 0)::bigint AS redeemed,
             COALESCE(SUM(points) FILTER (WHERE kind = 'return_clawback'), 0)::bigint AS clawed_back,
             COALESCE(SUM(points) FILTER (WHERE kind = 'return_refund'), 0)::bigint AS refunded,
             COALESCE(SUM(points), 0)::bigint AS net
      FROM (SELECT store, kind, points FROM report_ledger_store_month
            WHERE program = $1 AND month >= $4 AND month < $5 AND bucket IN ('active', 'pending')
            UNION ALL
            SELECT store, kind, points FROM report_ledger_day
            WHERE program = $1 AND ((day >= $2 AND day < $4) OR (day >= $5 AND day <= $3))
              AND bucket IN ('active', 'pending')) r
      GROUP BY store) t
LEFT JOIN store s ON s.id = t.store
ORDER BY t.accrued DESC, t.store
"""
