"""Every SQL statement of the marketing area, in one place, `$n` placeholders (asyncpg through loyalty_core.db).

A segment's recompute is set-based, never a statement per member: ONE statement over the whole program finds the
members the condition selects (`target`) and, against `membership.segments`, who must join and who must leave; the
writes then go in chunks of ids (one UPDATE per chunk, each its own short transaction), so a till's confirm that
writes one of those memberships waits for a chunk, not for the whole recompute. Members whose membership does not
change are not written. The condition compiles to a WHERE over `membership m` with only the joins its facts need.
"""

from __future__ import annotations

from typing import Any

from loyalty_core.marketing.conditions import All, AnyOf, Node, Not, Comparison, facts_used

# --- facts: their SQL value expressions over `membership m` ------------------------------------------------

# $1 program id, $2 now (timestamptz), $3 the program's time zone; conditions add their own parameters after
_DAYS_SINCE = "(($2::timestamptz AT TIME ZONE $3::text)::date - ({col} AT TIME ZONE $3::text)::date)"

_PLAIN: dict[str, str] = {
    "tier": "t.code",
    "status": "m.status",
    "rfm_recency": "rfm.r",
    "rfm_frequency": "rfm.f",
    "rfm_monetary": "rfm.mo",
    "days_since_last_purchase": _DAYS_SINCE.format(col="m.last_purchase_at"),
    "days_since_joined": _DAYS_SINCE.format(col="m.joined_at"),
    "purchases_count": "m.purchases_count",
    "spend_12m": "m.tier_spend",
    "birthday_month": "EXTRACT(MONTH FROM c.birth_date)::int",
    "home_store": "home.store_code",
    "home_region": "home.region",
    "channel": "m.registration_channel",
}

# RFM quintiles among the program's members who ever bought (5 = best); ties split by ntile, see docs/marketing.md.
# Only the quintiles a condition reads are computed (each is a sort of the program's buyers).
_RFM_COLUMNS = {
    "rfm_recency": "ntile(5) OVER (ORDER BY last_purchase_at, id) AS r",
    "rfm_frequency": "ntile(5) OVER (ORDER BY purchases_count, id) AS f",
    "rfm_monetary": "ntile(5) OVER (ORDER BY tier_spend, id) AS mo",
}


def _rfm(used: set[str]) -> str:
    columns = ", ".join(column for fact, column in _RFM_COLUMNS.items() if fact in used)
    return f"rfm AS (SELECT id, {columns} FROM membership WHERE program = $1 AND last_purchase_at IS NOT NULL)"

# the store of most purchases over 12 months (the latest wins a tie)
_HOME = """home AS (
  SELECT DISTINCT ON (s.membership) s.membership, st.code AS store_code, st.region
  FROM sale s JOIN membership hm ON hm.id = s.membership JOIN store st ON st.id = s.store
  WHERE hm.program = $1 AND s.status = 'confirmed' AND s.occurred_at > $2::timestamptz - interval '365 days'
  GROUP BY s.membership, st.code, st.region
  ORDER BY s.membership, count(*) DESC, max(s.occurred_at) DESC)"""

# what a line cost the shopper, less what came back
_LINE_SPEND = "(l.to_pay * (l.quantity_milli - l.returned_quantity_milli) / NULLIF(l.quantity_milli, 0))"

# ABC classes of top-level categories by each member's spend over 12 months: A makes the first 80 %, B the next 15 %
_ABC = f"""cat_spend AS (
  SELECT s.membership, cat.path[1] AS top, SUM({_LINE_SPEND}) AS spend
  FROM sale s JOIN membership am ON am.id = s.membership JOIN sale_line l ON l.sale = s.id
  JOIN product p ON p.sku = l.sku JOIN category cat ON cat.id = p.category
  WHERE am.program = $1 AND s.status = 'confirmed' AND s.occurred_at > $2::timestamptz - interval '365 days'
  GROUP BY s.membership, cat.path[1] HAVING SUM({_LINE_SPEND}) > 0),
abc AS (
  SELECT membership, top,
         CASE WHEN COALESCE(SUM(spend) OVER w_before, 0) < 0.80 * SUM(spend) OVER w_all THEN 'A'
              WHEN COALESCE(SUM(spend) OVER w_before, 0) < 0.95 * SUM(spend) OVER w_all THEN 'B' ELSE 'C' END AS class
  FROM cat_spend
  WINDOW w_all AS (PARTITION BY membership),
         w_before AS (PARTITION BY membership ORDER BY spend DESC, top ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))"""


class _Sql:
    """Collects a condition's parameters ($4 on) while it compiles."""

    def __init__(self, first: int) -> None:
        self.args: list[Any] = []
        self.first = first

    def param(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${self.first + len(self.args) - 1}::{cast}"


_CASTS = {"int": "bigint", "str": "text", "bool": "boolean"}


def _value_expr(test: Comparison, sql: _Sql) -> str:
    fact = test.fact
    if fact in _PLAIN:
        return _PLAIN[fact]
    if fact == "consent":
        return ("COALESCE((SELECT cs.granted FROM consent cs WHERE cs.customer = m.customer AND cs.channel = "
                f"{sql.param(test.channel, 'text')} ORDER BY cs.changed_at DESC, cs.id DESC LIMIT 1), false)")
    if fact == "attribute":
        return (f"(SELECT a.value FROM member_attribute a WHERE a.membership = m.id AND a.key = "
                f"{sql.param(test.key, 'text')})")
    if fact == "category_abc":
        return f"(SELECT abc.class FROM abc WHERE abc.membership = m.id AND abc.top = {sql.param(test.category, 'text')})"
    if fact == "category_spend":
        days = test.days or 365
        return (f"(SELECT COALESCE(SUM({_LINE_SPEND}), 0) FROM sale s JOIN sale_line l ON l.sale = s.id "
                "JOIN product p ON p.sku = l.sku JOIN category cat ON cat.id = p.category "
                "WHERE s.membership = m.id AND s.status = 'confirmed' "
                f"AND s.occurred_at > $2::timestamptz - make_interval(days => {sql.param(days, 'int')}) "
                f"AND {sql.param(test.category, 'text')} = ANY(cat.path))")
    raise AssertionError(f"no SQL for fact {fact}")


def _test_sql(test: Comparison, sql: _Sql) -> str:
    from loyalty_core.marketing.conditions import FACTS

    if test.fact == "favourite_category":
        values = [test.value] if test.op in ("eq", "ne") else test.value
        exists = ("EXISTS (SELECT 1 FROM favourite_category fc JOIN category fcat ON fcat.id = fc.category "
                  f"WHERE fc.membership = m.id AND fc.active AND fcat.code = ANY({sql.param(values, 'text[]')}))")
        return exists if test.op in ("eq", "in") else f"NOT {exists}"
    cast = _CASTS[FACTS[test.fact].kind]
    expr = _value_expr(test, sql)
    op, value = test.op, test.value
    if op == "is_null":
        return f"({expr} IS {'' if value else 'NOT '}NULL)"
    if op == "eq":
        return f"({expr} = {sql.param(value, cast)})"
    if op == "ne":
        return f"({expr} IS DISTINCT FROM {sql.param(value, cast)})"
    if op == "in":
        return f"({expr} = ANY({sql.param(value, cast + '[]')}))"
    if op == "not_in":
        return f"({expr} IS NULL OR NOT {expr} = ANY({sql.param(value, cast + '[]')}))"
    if op == "between":
        return f"({expr} BETWEEN {sql.param(value[0], cast)} AND {sql.param(value[1], cast)})"
    comparison = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return f"({expr} {comparison} {sql.param(value, cast)})"


def _where(node: Node, sql: _Sql) -> str:
    if isinstance(node, Comparison):
        return _test_sql(node, sql)
    if isinstance(node, Not):
        return f"(NOT COALESCE({_where(node.item, sql)}, false))"
    word = " AND " if isinstance(node, All) else " OR "
    assert isinstance(node, All | AnyOf)
    return "(" + word.join(f"COALESCE({_where(item, sql)}, false)" for item in node.items) + ")"


def dynamic_target(node: Node, first_param: int) -> tuple[str, str, list[Any]]:
    """(the CTEs before `target`, the SELECT of the selected members' ids, its parameters from $first_param)."""
    sql = _Sql(first_param)
    where = _where(node, sql)
    used = facts_used(node)
    ctes, joins = [], []
    if used & set(_RFM_COLUMNS):
        ctes.append(_rfm(used))
        joins.append("LEFT JOIN rfm ON rfm.id = m.id")
    if used & {"home_store", "home_region"}:
        ctes.append(_HOME)
        joins.append("LEFT JOIN home ON home.membership = m.id")
    if "category_abc" in used:
        ctes.append(_ABC)
    if "tier" in used:
        joins.append("LEFT JOIN tier t ON t.id = m.tier")
    if "birthday_month" in used:
        joins.append("LEFT JOIN customer c ON c.id = m.customer")
    select = (f"SELECT m.id FROM membership m {' '.join(joins)} "
              f"WHERE m.program = $1 AND m.status <> 'closed' AND COALESCE({where}, false)")
    return ",\n".join(ctes), select, sql.args


# $1 program, $2 now, $3 time zone, $4 the segment's code, then the condition's parameters
def diff_statement(node: Node | None, static_segment: bool) -> tuple[str, list[Any]]:
    """The one statement that finds who must join and who must leave the segment (and how many are in it): the ids
    in order, read without a lock. `node` None and not static: an archived segment (nobody). Static: the uploaded
    list ($5 the segment's id). The writes are APPLY_* below, in chunks."""
    ctes, args = "", []
    if static_segment:
        target = ("SELECT sm.membership AS id FROM segment_static_member sm JOIN membership m ON m.id = sm.membership "
                  "WHERE sm.segment = $5 AND m.program = $1 AND m.status <> 'closed'")
    elif node is None:
        target = "SELECT m.id FROM membership m WHERE false"
    else:
        ctes, target, args = dynamic_target(node, 5)
    statement = f"""
WITH {ctes + ',' if ctes else ''}
target AS MATERIALIZED ({target})
SELECT ARRAY(SELECT target.id FROM target JOIN membership m ON m.id = target.id
             WHERE NOT COALESCE(m.segments @> ARRAY[$4::varchar], false) ORDER BY target.id) AS joining,
       ARRAY(SELECT m.id FROM membership m
             WHERE m.program = $1 AND m.segments @> ARRAY[$4::varchar]
               AND NOT EXISTS (SELECT 1 FROM target WHERE target.id = m.id)
               -- names $2 and $3 for the statements whose target does not (a static list, an archived segment)
               AND $3::text IS NOT NULL AND $2::timestamptz IS NOT NULL
             ORDER BY m.id) AS leaving,
       (SELECT count(*) FROM target)::int AS members"""
    return statement, args


def count_statement(node: Node) -> tuple[str, list[Any]]:
    """How many members a condition selects now, written nowhere ($1 program, $2 now, $3 time zone, then the
    condition's parameters)."""
    ctes, target, args = dynamic_target(node, 4)
    return (f"WITH {ctes + ',' if ctes else ''} target AS ({target}) SELECT count(*)::int AS members FROM target "
            "WHERE $2::timestamptz IS NOT NULL AND $3::text IS NOT NULL", args)


# the writes, a chunk of ids each ($1 ids, $2 the code), guarded so a repeat or a concurrent recompute changes nothing
APPLY_JOIN = """WITH w AS (UPDATE membership SET segments = array_append(COALESCE(segments, ARRAY[]::varchar[]), $2::varchar)
  WHERE id = ANY($1::int[]) AND NOT COALESCE(segments @> ARRAY[$2::varchar], false) RETURNING 1)
SELECT count(*)::int AS n FROM w"""
APPLY_LEAVE = """WITH w AS (UPDATE membership SET segments = array_remove(segments, $2::varchar)
  WHERE id = ANY($1::int[]) AND segments @> ARRAY[$2::varchar] RETURNING 1)
SELECT count(*)::int AS n FROM w"""

# a recompute takes this transaction-level lock: two recomputes never update the same memberships at once
RECOMPUTE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('kopilka:segments'), $1::int)"

SEGMENT_COLUMNS = ("s.id, s.program, p.code AS program_code, s.code, s.name, s.kind, s.condition::text AS condition, "
                   "s.status, s.member_count, s.recomputed_at, s.created_by, s.created_at, s.updated_at")
SEGMENT_BY_CODE = (f"SELECT {SEGMENT_COLUMNS} FROM segment s JOIN program p ON p.id = s.program "
                   "WHERE p.code = $1 AND s.code = $2")
SEGMENTS_OF_PROGRAM = (f"SELECT {SEGMENT_COLUMNS} FROM segment s JOIN program p ON p.id = s.program "
                       "WHERE p.code = $1 ORDER BY s.code")
SEGMENTS_TO_RECOMPUTE = (f"SELECT {SEGMENT_COLUMNS}, p.timezone FROM segment s JOIN program p ON p.id = s.program "
                         "WHERE s.kind = 'dynamic' AND s.status = 'active' ORDER BY s.program, s.code")
PROGRAM_BY_CODE = "SELECT id, code, timezone FROM program WHERE code = $1"
INSERT_SEGMENT = (
    "INSERT INTO segment (program, code, name, kind, condition, status, member_count, created_by, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5::jsonb, 'active', 0, $6, $7, $7) ON CONFLICT (program, code) DO NOTHING RETURNING id"
)
UPDATE_SEGMENT = ("UPDATE segment SET name = $2, condition = COALESCE($3::jsonb, condition), status = $4, updated_at = $5 "
                  "WHERE id = $1")
SEGMENT_RECOMPUTED = "UPDATE segment SET member_count = $2, recomputed_at = $3 WHERE id = $1"

# a static list: the uploaded keys resolved to the program's members in one statement
RESOLVE_UPLOAD = """
WITH keys AS (SELECT k.n, k.kind, k.value FROM unnest($2::int[], $3::text[], $4::text[]) AS k(n, kind, value))
SELECT keys.n, keys.kind, keys.value,
       COALESCE(by_card.membership, by_phone.id, by_member.id) AS membership
FROM keys
LEFT JOIN card by_card ON keys.kind = 'card' AND by_card.number = keys.value AND by_card.program = $1
  AND by_card.membership IS NOT NULL
LEFT JOIN customer cu ON keys.kind = 'phone' AND cu.phone = keys.value AND cu.status = 'active'
LEFT JOIN membership by_phone ON by_phone.customer = cu.id AND by_phone.program = $1
-- the cast inside CASE: a join's conditions may be evaluated in any order (a hash join casts every key), and
-- 'unknown-card'::bigint would fail the whole upload
LEFT JOIN membership by_member ON by_member.program = $1
  AND by_member.id = CASE WHEN keys.kind = 'member' AND keys.value ~ '^[0-9]{1,18}$' THEN keys.value::bigint END
ORDER BY keys.n"""
CLEAR_STATIC = "DELETE FROM segment_static_member WHERE segment = $1"
ADD_STATIC = ("INSERT INTO segment_static_member (segment, membership, added_at) "
              "SELECT $1, unnest($2::int[]), $3 ON CONFLICT (segment, membership) DO NOTHING")

# custom attributes ($1 memberships, $2 the key, $3 their values, $4 now)
SET_ATTRIBUTE = """INSERT INTO member_attribute (membership, key, value, updated_at)
SELECT unnest($1::int[]), $2, unnest($3::text[]), $4
ON CONFLICT (membership, key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"""
CLEAR_ATTRIBUTE = "DELETE FROM member_attribute WHERE membership = ANY($1::int[]) AND key = $2"
