"""The member events' SQL, in one place (`$n` placeholders, asyncpg through loyalty_core.db)."""

from __future__ import annotations

PROGRAMS = "SELECT id, code, timezone, rules_version FROM program ORDER BY id"

# what the engine's event rules read about a member (targeting: tier, segments, birthday, ...)
_MEMBER = """
SELECT m.id AS membership, m.customer, m.referred_by, t.code AS tier_code,
       COALESCE(m.segments, ARRAY[]::varchar[]) AS segments, cu.birth_date, cu.birth_date_set_at, m.joined_at,
       m.last_purchase_at, m.purchases_count,
       (SELECT c.id FROM card c WHERE c.membership = m.id AND c.status = 'active' ORDER BY c.id DESC LIMIT 1) AS card,
       {occurrence} AS occurrence {extra}
FROM membership m LEFT JOIN tier t ON t.id = m.tier LEFT JOIN customer cu ON cu.id = m.customer
WHERE m.program = $1 AND m.status = 'active' AND m.customer IS NOT NULL AND cu.status = 'active' """

_NOT_CLAIMED = "AND NOT EXISTS (SELECT 1 FROM member_event e WHERE e.membership = m.id AND e.kind = '{kind}' AND e.occurrence = {occurrence})"

# $2 now, $3 the oldest first purchase still handled (the catch-up window); the purchase must still stand
FIRST_PURCHASE_CANDIDATES = _MEMBER.format(occurrence="'first'", extra="") + """
  AND m.first_purchase_at > $3 AND m.first_purchase_at <= $2
  AND EXISTS (SELECT 1 FROM sale s WHERE s.membership = m.id AND s.status = 'confirmed')
  """ + _NOT_CLAIMED.format(kind="first_purchase", occurrence="'first'") + " ORDER BY m.id"

# $2 today in the program's zone, $3 now, $4 days the birth date must have been known, $5 today is 28 February of
# a common year (members born on 29 February celebrate today)
_YEAR = "EXTRACT(YEAR FROM $2::date)::int::text"
BIRTHDAY_CANDIDATES = _MEMBER.format(occurrence=_YEAR, extra="") + """
  AND cu.birth_date IS NOT NULL
  AND ((EXTRACT(MONTH FROM cu.birth_date) = EXTRACT(MONTH FROM $2::date)
        AND EXTRACT(DAY FROM cu.birth_date) = EXTRACT(DAY FROM $2::date))
       OR ($5::boolean AND EXTRACT(MONTH FROM cu.birth_date) = 2 AND EXTRACT(DAY FROM cu.birth_date) = 29))
  AND (cu.birth_date_set_at IS NULL OR cu.birth_date_set_at <= $3::timestamptz - make_interval(days => $4::int))
  """ + _NOT_CLAIMED.format(kind="birthday", occurrence=_YEAR) + " ORDER BY m.id"

# $2 now, $3 quiet days, $4 catch-up days, $5 the program's zone; one occurrence per quiet spell (its last purchase)
_SPELL = "to_char(m.last_purchase_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
INACTIVE_CANDIDATES = _MEMBER.format(
    occurrence=_SPELL,
    extra=", (($2::timestamptz AT TIME ZONE $5::text)::date - (m.last_purchase_at AT TIME ZONE $5::text)::date) "
          "AS days_inactive") + """
  AND m.last_purchase_at <= $2::timestamptz - make_interval(days => $3::int)
  AND m.last_purchase_at > $2::timestamptz - make_interval(days => $3::int + $4::int)
  """ + _NOT_CLAIMED.format(kind="inactive", occurrence=_SPELL) + " ORDER BY m.id"

# $2 now, $3 the oldest tier change still handled: a tier above the program's lowest that the writer announced
# (`tier_changed`, up) lately; once per member and tier, ever (dropping and climbing back earns it once)
TIER_UP_CANDIDATES = _MEMBER.format(occurrence="t.code", extra="") + """
  AND t.rank > (SELECT min(x.rank) FROM tier x WHERE x.program = $1)
  AND EXISTS (SELECT 1 FROM notification n WHERE n.kind = 'tier_changed' AND n.customer = m.customer
              AND n.created_at > $3 AND n.created_at <= $2 AND n.payload->>'tier' = t.code
              AND (n.payload->>'up')::boolean)
  """ + _NOT_CLAIMED.format(kind="tier_up", occurrence="t.code") + " ORDER BY m.id"

# the referrer under another name: the same customer, phone or e-mail; a card both held or used; a phone (a push
# token either ever registered, push_device_seen) or a wallet (pass registration) both signed in on
SAME_PERSON = """
WITH f AS (SELECT m.id, m.customer, c.phone, c.email FROM membership m LEFT JOIN customer c ON c.id = m.customer
           WHERE m.id = $1),
     r AS (SELECT m.id, m.customer, c.phone, c.email FROM membership m LEFT JOIN customer c ON c.id = m.customer
           WHERE m.id = $2)
SELECT (
  EXISTS (SELECT 1 FROM f, r WHERE f.customer = r.customer OR f.phone = r.phone OR f.email = r.email)
  OR EXISTS (
    SELECT 1 FROM (SELECT number FROM card WHERE membership = $1
                   UNION SELECT card_number FROM sale WHERE membership = $1 AND card_number IS NOT NULL) a
    JOIN (SELECT number FROM card WHERE membership = $2
          UNION SELECT card_number FROM sale WHERE membership = $2 AND card_number IS NOT NULL) b
      ON a.number = b.number)
  OR EXISTS (SELECT 1 FROM push_device_seen a JOIN push_device_seen b ON a.token_hash = b.token_hash, f, r
             WHERE a.customer = f.customer AND b.customer = r.customer)
  OR EXISTS (SELECT 1 FROM pass_registration a JOIN card ca ON ca.id = a.card
             JOIN pass_registration b ON b.device_library_id = a.device_library_id JOIN card cb ON cb.id = b.card
             WHERE ca.membership = $1 AND cb.membership = $2)
) AS same,
  EXISTS (SELECT 1 FROM membership m JOIN customer c ON c.id = m.customer
          WHERE m.id = $2 AND m.status = 'active' AND c.status = 'active') AS referrer_active"""

# the exactly-once key, with what it gives: $1 program, $2 membership, $3 kind, $4 occurrence, $5 now, $6 detail,
# $7 points (written in the same transaction as the points themselves)
CLAIM = ("INSERT INTO member_event (program, membership, kind, occurrence, points, detail, created_at) "
         "VALUES ($1, $2, $3, $4, $7, $6::jsonb, $5) ON CONFLICT (membership, kind, occurrence) DO NOTHING RETURNING id")

# tier at risk, set-based: $1 program, $2 now, $3 days ahead, $4 the program's zone. The spend that stays in the
# window at now + $3 days is below the tier's threshold: one message per member, tier and month (the claim)
TIER_AT_RISK = """
WITH at_risk AS (
  SELECT m.id AS membership, m.customer, t.code, t.name, t.threshold_spend,
         t.threshold_spend - COALESCE(kept.spend, 0) AS spend_needed,
         (SELECT c.id FROM card c WHERE c.membership = m.id AND c.status = 'active' ORDER BY c.id DESC LIMIT 1) AS card,
         t.code || ':' || to_char($2::timestamptz AT TIME ZONE $4::text, 'YYYY-MM') AS occurrence,
         (($2::timestamptz + make_interval(days => $3::int)) AT TIME ZONE $4::text)::date AS by_date
  FROM membership m JOIN tier t ON t.id = m.tier
  LEFT JOIN LATERAL (
    -- an imported legacy spend still carried then keeps the tier too (docs/import.md)
    SELECT COALESCE(SUM(s.earning_spend - s.returned_earning_spend), 0)
           + CASE WHEN m.carried_until > $2::timestamptz + make_interval(days => $3::int) THEN m.carried_spend ELSE 0 END
           AS spend FROM sale s
    WHERE s.membership = m.id AND s.status = 'confirmed'
      AND s.occurred_at > $2::timestamptz + make_interval(days => $3::int) - interval '365 days'
      AND s.occurred_at <= $2::timestamptz) kept ON true
  WHERE m.program = $1 AND m.status = 'active' AND m.customer IS NOT NULL AND t.threshold_spend > 0
    AND m.tier_spend >= t.threshold_spend AND COALESCE(kept.spend, 0) < t.threshold_spend),
claimed AS (
  INSERT INTO member_event (program, membership, kind, occurrence, points, detail, created_at)
  SELECT $1, membership, 'tier_at_risk', occurrence, 0,
         jsonb_build_object('tier', code, 'spend_needed', spend_needed, 'by', by_date::text), $2
  FROM at_risk ON CONFLICT (membership, kind, occurrence) DO NOTHING RETURNING membership)
INSERT INTO notification (customer, card, kind, payload, status, attempts, next_attempt_at, last_error, created_at,
                          dedupe_key)
SELECT a.customer, a.card, 'tier_at_risk',
       jsonb_build_object('tier', a.code, 'name', a.name, 'spend_needed', a.spend_needed, 'by', a.by_date::text),
       'pending', 0, $2, '', $2, 'tier_at_risk:' || a.membership || ':' || a.occurrence
FROM claimed JOIN at_risk a ON a.membership = claimed.membership
RETURNING id"""  # a key claimed before is skipped by the dedupe trigger on notification (migration 2026-11-29T18:40)
