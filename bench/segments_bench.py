"""Segment recompute speed (loyalty_core/marketing/segments.py) over a large member base.

Fills KOPILKA_DATABASE_URL (a scratch database with the schema: `kopilka migrate`) with --members customers and
memberships of one program (three tiers, last purchases over two years, purchase counts and spends, birth dates,
sms consents for a third, a custom attribute for a tenth, one sale each at one of 20 stores for a fifth), then
creates five dynamic segments of different shapes and times, for each: the first recompute (everybody who
qualifies joins), a recompute with nothing changed, and one after 1 % of the members' facts changed.
Target: every segment of 1 000 000 members recomputed in < 2 minutes (issue 15). Progress on stderr.

    KOPILKA_DATABASE_URL=postgresql://postgres@127.0.0.1/bench python bench/segments_bench.py [--members 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 120.0
PROGRAM = "bench-segments"

FILL = [
    ("program and tiers", """
INSERT INTO program (code, name, currency, timezone, rules_version, created_at)
VALUES ('{program}', 'Bench', 'RUB', 'Europe/Moscow', 0, now()) ON CONFLICT (code) DO NOTHING;
INSERT INTO tier (program, code, name, rank, threshold_spend, accrual_bp)
SELECT p.id, t.code, t.code, t.rank, t.threshold, 300 FROM program p,
  (VALUES ('basic', 1, 0), ('silver', 2, 3000000), ('gold', 3, 10000000)) AS t(code, rank, threshold)
WHERE p.code = '{program}' AND NOT EXISTS (SELECT 1 FROM tier x WHERE x.program = p.id);
INSERT INTO store (code, name, timezone, region, format, address, attributes)
SELECT 'bench-store-' || g, 'Store ' || g, 'Europe/Moscow', CASE WHEN g % 4 = 0 THEN 'Kazan' ELSE 'Moscow' END,
       'hyper', '', '{{}}' FROM generate_series(1, 20) g ON CONFLICT (code) DO NOTHING;
INSERT INTO till (store, code) SELECT s.id, 'bench-till' FROM store s
WHERE s.code LIKE 'bench-store-%' AND NOT EXISTS (SELECT 1 FROM till t WHERE t.store = s.id);"""),
    ("customers", """
INSERT INTO customer (phone, email, name, birth_date, locale, status, created_at)
SELECT '+7998' || lpad(g::text, 7, '0'), NULL, 'Member ' || g, DATE '1960-01-01' + (g::bigint * 7919 % 15000)::int, 'ru', 'active',
       now()
FROM generate_series({start}, {end}) g"""),
    ("memberships", """
INSERT INTO membership (program, customer, tier, tier_spend, segments, registration_channel, status, purchases_count,
                        first_purchase_at, last_purchase_at, joined_at)
SELECT p.id, c.id, (SELECT id FROM tier t WHERE t.program = p.id AND t.rank = 1 + (c.id % 10) / 6 + (c.id % 10) / 9),
       (c.id::bigint * 104729) % 15000000, '{{}}', (ARRAY['app', 'web', 'till'])[1 + c.id % 3], 'active', (c.id * 31) % 60,
       now() - make_interval(days => 700), now() - make_interval(days => (c.id * 7) % 730), now() - interval '800 days'
FROM customer c, program p
WHERE p.code = '{program}' AND c.phone LIKE '+7998%'
  AND NOT EXISTS (SELECT 1 FROM membership m WHERE m.customer = c.id AND m.program = p.id)"""),
    ("consents and attributes", """
INSERT INTO consent (customer, channel, granted, source, changed_at)
SELECT m.customer, 'sms', m.id % 2 = 0, 'bench', now() FROM membership m JOIN program p ON p.id = m.program
WHERE p.code = '{program}' AND m.id % 3 = 0 AND NOT EXISTS (SELECT 1 FROM consent c WHERE c.customer = m.customer);
INSERT INTO member_attribute (membership, key, value, updated_at)
SELECT m.id, 'pet', (ARRAY['dog', 'cat'])[1 + m.id % 2], now() FROM membership m JOIN program p ON p.id = m.program
WHERE p.code = '{program}' AND m.id % 10 = 0 ON CONFLICT DO NOTHING"""),
    ("sales (a fifth of the members)", """
INSERT INTO sale (store, till, receipt_id, business_date, occurred_at, card_number, membership, account, channel, status,
                  amount, discount, redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version,
                  earning_spend, returned_earning_spend, request_hash, response, trace, created_at)
SELECT s.id, t.id, 'bench-' || m.id, current_date, m.last_purchase_at, NULL, m.id, NULL, 'store', 'confirmed',
       100000, 0, 0, 0, 100000, 0, 0, 100000, 0, '', '{{}}', '[]', now()
FROM membership m JOIN program p ON p.id = m.program
JOIN store s ON s.code = 'bench-store-' || (1 + m.id % 20) JOIN till t ON t.store = s.id
WHERE p.code = '{program}' AND m.id % 5 = 0 AND m.last_purchase_at > now() - interval '365 days'
ON CONFLICT DO NOTHING"""),
    ("analyze", "ANALYZE customer; ANALYZE membership; ANALYZE consent; ANALYZE member_attribute; ANALYZE sale"),
]

SEGMENTS = {
    "lapsing-gold": {"all": [{"fact": "tier", "eq": "gold"}, {"fact": "days_since_last_purchase", "gte": 60}]},
    "champions": {"all": [{"fact": "rfm_recency", "gte": 4}, {"fact": "rfm_frequency", "gte": 4},
                          {"fact": "rfm_monetary", "eq": 5}]},
    "december-sms": {"all": [{"fact": "birthday_month", "eq": 12}, {"fact": "consent", "channel": "sms", "eq": True}]},
    "dog-owners-app": {"all": [{"fact": "attribute", "key": "pet", "eq": "dog"}, {"fact": "channel", "eq": "app"}]},
    "kazan-home": {"fact": "home_region", "eq": "Kazan"},
}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def fill(members: int) -> None:
    from loyalty_core import db

    existing = await db.fetchrow("SELECT count(*) AS n FROM membership m JOIN program p ON p.id = m.program "
                                 "WHERE p.code = $1", PROGRAM)
    have = existing["n"] if existing else 0
    start, end = 1 + have, members
    for name, sql in FILL:
        if name in ("customers", "memberships") and start > end:
            continue
        began = time.monotonic()
        connection = await db.DB.get_new_connection()
        try:
            if name == "customers":  # in slices, with progress
                for low in range(start, end + 1, 100_000):
                    await connection.execute(sql.format(program=PROGRAM, start=low, end=min(end, low + 99_999)))
                    say(f"  customers {min(end, low + 99_999):,} / {end:,}")
            else:
                await connection.execute(sql.format(program=PROGRAM, start=start, end=end))
        finally:
            await connection.close()
        say(f"fill: {name} in {time.monotonic() - began:.1f} s")


async def main(members: int, events: bool) -> int:
    from loyalty_core import db
    from loyalty_core.marketing import segments
    from loyalty_core.marketing.segments import SegmentCreate

    db.configure(os.environ["KOPILKA_DATABASE_URL"], 1, 4)
    async with db.pool():
        await fill(members)
        now = dt.datetime.now(dt.UTC)
        total = await db.fetchrow("SELECT count(*) AS n FROM membership m JOIN program p ON p.id = m.program "
                                  "WHERE p.code = $1", PROGRAM)
        say(f"{total['n']:,} members in {PROGRAM}")
        rows = []
        worst = 0.0
        for code, condition in SEGMENTS.items():
            await db.fetch("UPDATE membership SET segments = array_remove(segments, $1::varchar) "
                           "WHERE segments @> ARRAY[$1::varchar]", code)
            await db.fetch("DELETE FROM segment WHERE code = $1", code)
            say(f"segment {code}: first recompute ...")
            began = time.monotonic()
            await segments.create_segment(PROGRAM, SegmentCreate(code=code, condition=condition), "bench", now)
            first = time.monotonic() - began
            seg = await segments.get_segment(PROGRAM, code)
            again = await segments.recompute_segment(PROGRAM, code, now)
            await db.fetch("UPDATE membership SET purchases_count = purchases_count + 1, last_purchase_at = now() "
                           "- make_interval(days => abs(hashtext(id::text || $2::text)) % 400) "
                           "WHERE id % 100 = $3 AND program = (SELECT id FROM program WHERE code = $1)",
                           PROGRAM, f"{time.time()}-{len(rows)}", 9 - len(rows))
            changed = await segments.recompute_segment(PROGRAM, code, now)
            worst = max(worst, first, again.seconds, changed.seconds)
            rows.append((code, seg.member_count, first, again.seconds, changed.seconds, changed.added + changed.removed))
            say(f"segment {code}: {seg.member_count:,} members; first {first:.1f} s, unchanged {again.seconds:.1f} s, "
                f"after 1 % changed {changed.seconds:.1f} s ({changed.added + changed.removed:,} moved)")
    print(f"\n{total['n']:,} members, one diff statement and chunked writes per segment (target < {TARGET_S:.0f} s each)")
    print(f"{'segment':<16}{'members':>10}{'first s':>10}{'unchanged s':>13}{'1% changed s':>14}{'moved':>9}")
    for code, count, first, again_s, changed_s, moved in rows:
        print(f"{code:<16}{count:>10,}{first:>10.1f}{again_s:>13.1f}{changed_s:>14.1f}{moved:>9,}")
    print(f"all five segments, first recompute: {sum(r[2] for r in rows):.1f} s; slowest single: {worst:.1f} s")
    if events:
        await member_events(now)
    return 0 if worst < TARGET_S else 1


async def member_events(now: dt.datetime) -> None:
    """The member_events job over the same members: birthday, welcome-back and first-purchase rules published, then
    the job twice (the second run finds everything claimed)."""
    import msgspec

    from loyalty_core import db
    from loyalty_core.engine.effects import EventBonus
    from loyalty_core.engine.program import ProgramRules, ProgramSettings, Rule, RuleGroup, TierDef
    from loyalty_core.marketing.events import run_member_events

    rules = ProgramRules(settings=ProgramSettings(tiers=[
        TierDef(code="basic", name="basic", rank=1, threshold_spend_minor=0, accrual_bp=300),
        TierDef(code="silver", name="silver", rank=2, threshold_spend_minor=3_000_000, accrual_bp=500),
        TierDef(code="gold", name="gold", rank=3, threshold_spend_minor=10_000_000, accrual_bp=700)]),
        groups=[RuleGroup(code="events", name="Events", stage="event", rules=[
            Rule(code="bday", name="Birthday", effect=EventBonus(event="birthday", points=300, valid_days=14)),
            Rule(code="back", name="Welcome back", effect=EventBonus(event="inactive", points=200)),
            Rule(code="first", name="First purchase", effect=EventBonus(event="first_purchase", points=100))])])
    await db.fetch("INSERT INTO rules_version (program, version, document, comment, created_by, created_at) "
                   "SELECT id, 1, $2::jsonb, 'bench', 'bench', now() FROM program WHERE code = $1 "
                   "AND NOT EXISTS (SELECT 1 FROM rules_version r WHERE r.program = program.id AND r.version = 1)",
                   PROGRAM, msgspec.json.encode(rules).decode())
    await db.fetch("UPDATE program SET rules_version = 1 WHERE code = $1", PROGRAM)
    for run in ("first run", "second run"):
        say(f"member events: {run} ...")
        began = time.monotonic()
        report = await run_member_events(now)
        print(f"member events, {run}: {time.monotonic() - began:.1f} s: {report.summary()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--events", action="store_true", help="then time the member_events job over them")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.members, args.events)))
