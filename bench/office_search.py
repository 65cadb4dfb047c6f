"""Back-office member search speed (loyalty_core/members/search.py) over a large customer base.

Fills KOPILKA_DATABASE_URL (a scratch database with the schema: `kopilka migrate`) with --members customers,
memberships and cards when it has fewer (names from 20 first names x 20 surnames + a 6-letter tag, so a surname
matches ~50 000 people, as in a real chain), then runs --queries searches of each kind: a phone in national
notation, a card number, an e-mail, a misspelt full name. Reports p50/p95/max per kind, in the service (no HTTP).

    KOPILKA_DATABASE_URL=postgresql://postgres@127.0.0.1/bench python bench/office_search.py [--members 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_MS = 50.0
FIRST = ["Анна", "Мария", "Елена", "Ольга", "Наталья", "Ирина", "Светлана", "Татьяна", "Юлия", "Марина", "Иван", "Пётр",
         "Сергей", "Андрей", "Алексей", "Дмитрий", "Михаил", "Николай", "Павел", "Роман"]
LAST = ["Иванова", "Петрова", "Сидорова", "Смирнова", "Кузнецова", "Попова", "Васильева", "Соколова", "Михайлова",
        "Новикова", "Фёдорова", "Морозова", "Волкова", "Алексеева", "Лебедева", "Семёнова", "Егорова", "Павлова",
        "Козлова", "Степанова"]

FILL = """
INSERT INTO program (code, name, currency, timezone, rules_version, created_at)
VALUES ('bench-search', 'Bench', 'RUB', 'Europe/Moscow', 0, now()) ON CONFLICT (code) DO NOTHING;
INSERT INTO customer (phone, email, name, locale, status, created_at)
SELECT '+7999' || lpad(g::text, 7, '0'), 'user' || g || '@example.org',
       ({first})[1 + g % 20] || ' ' || ({last})[1 + (g / 20) % 20] || ' ' || md5(g::text)::varchar(6), 'ru', 'active', now()
FROM generate_series({start}, {end}) g;
INSERT INTO membership (program, customer, tier_spend, segments, registration_channel, status, purchases_count, joined_at)
SELECT p.id, c.id, 0, '{{}}', 'bench', 'active', 0, now() FROM customer c, program p
WHERE p.code = 'bench-search' AND c.phone LIKE '+7999%' AND NOT EXISTS (SELECT 1 FROM membership m WHERE m.customer = c.id);
INSERT INTO card (number, program, membership, series, kind, status, created_at, confirm_needed, linked_via)
SELECT (3000000000000 + m.id)::text, m.program, m.id, '', 'virtual', 'active', now(), false, ''
FROM membership m WHERE m.registration_channel = 'bench' AND NOT EXISTS (SELECT 1 FROM card k WHERE k.membership = m.id);
ANALYZE customer; ANALYZE membership; ANALYZE card;
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def misspelt(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name) - 1)
    return name[:i] + name[i + 1:]  # one letter lost


async def main(members: int, queries: int) -> int:
    import asyncpg

    from loyalty_core import db
    from loyalty_core.members import search as member_search

    url = os.environ["KOPILKA_DATABASE_URL"]
    conn = await asyncpg.connect(url)
    have = await conn.fetchval("SELECT count(*) FROM membership WHERE registration_channel = 'bench'")
    if have < members:
        started = time.perf_counter()
        arrays = ("ARRAY[" + ",".join(f"'{n}'" for n in FIRST) + "]", "ARRAY[" + ",".join(f"'{n}'" for n in LAST) + "]")
        await conn.execute(FILL.format(first=arrays[0], last=arrays[1], start=have + 1, end=members))
        print(f"filled {members - have} members in {time.perf_counter() - started:.0f} s")
    rows = await conn.fetch("SELECT c.phone, c.email, c.name, k.number FROM customer c JOIN membership m ON m.customer = c.id "
                            "JOIN card k ON k.membership = m.id WHERE m.registration_channel = 'bench' "
                            "ORDER BY random() LIMIT $1", queries)
    await conn.close()
    rng = random.Random(14)
    db.configure(url, 1, 2)
    worst = 0.0
    async with db.pool():
        kinds = {
            "phone": lambda r: "8 (" + r["phone"][2:5] + ") " + r["phone"][5:8] + "-" + r["phone"][8:10] + "-" + r["phone"][10:],
            "card": lambda r: r["number"],
            "email": lambda r: r["email"],
            "name": lambda r: misspelt(r["name"], rng),
        }
        for kind, query_of in kinds.items():
            times, hits = [], 0
            for row in rows:
                query = query_of(row)
                started = time.perf_counter()
                found = await member_search.find(query)
                times.append((time.perf_counter() - started) * 1000)
                hits += any(f.phone == row["phone"] for f in found)
            p95 = percentile(times, 0.95)
            worst = max(worst, p95)
            print(f"{kind:6} p50 {percentile(times, 0.5):7.1f} ms  p95 {p95:7.1f} ms  max {max(times):7.1f} ms  "
                  f"found the member in {hits}/{len(rows)}")
    print(f"target p95 < {TARGET_MS:.0f} ms: {'met' if worst < TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.members, args.queries)))
