"""The benchmark's shop: a program, stores, a ~2 000 product catalog in a category tree, and members with history.

Members, cards, accounts, past sales with lines, point lots and ledger entries are written with
INSERT ... SELECT generate_series in one transaction (100 000 members load in well under a minute),
consistent enough that `verify_all()` passes: every lot has its entries, every account equals its lots.
The program, stores and catalog go through the real set-up services.
"""

from __future__ import annotations

import datetime as dt
import random
import time

import asyncpg
from loyalty_core.piccolo_conf import DB
from loyalty_core.setup import entities as setup
from loyalty_core.tables import Program

PROGRAM_CODE = "bench"
STORES = 10
HISTORY_SALES_PER_MEMBER = 3

# the foundation program (tests/factories.basic_rules): Basic 3% / Silver 5% / Gold 7%, 30% payable with points
TIERS = [("basic", "Basic", 1, 0, 300), ("silver", "Silver", 2, 3_000_000, 500), ("gold", "Gold", 3, 10_000_000, 700)]

# (code, name, weighted goods, excluded from loyalty) — top of the category tree
DEPARTMENTS = [
    ("produce", "Фрукты и овощи", True, False),
    ("dairy", "Молочные продукты", False, False),
    ("bakery", "Хлеб и выпечка", False, False),
    ("meat", "Мясо и птица", True, False),
    ("fish", "Рыба", True, False),
    ("grocery", "Бакалея", False, False),
    ("frozen", "Заморозка", False, False),
    ("drinks", "Напитки", False, False),
    ("sweets", "Сладости", False, False),
    ("household", "Бытовая химия", False, False),
    ("cosmetics", "Косметика", False, False),
    ("alcohol", "Алкоголь", False, True),
]


def program_rules() -> object:
    from loyalty_core.engine.program import ProgramRules, ProgramSettings, TierDef

    return ProgramRules(
        settings=ProgramSettings(
            currency="RUB", point_value_minor=100, max_redeem_share_bp=3000, pending_days=14, expiry_days=365,
            tiers=[TierDef(code=c, name=n, rank=r, threshold_spend_minor=t, accrual_bp=bp) for c, n, r, t, bp in TIERS],
        )
    )


def catalog(products: int = 2_000, seed: int = 7) -> tuple[list, list, list]:
    """Departments -> 4 groups -> 3 shelves (204 categories), 60 brands, `products` products on the shelves."""
    rnd = random.Random(seed)
    categories, shelves = [], []
    for code, name, weighted, excluded in DEPARTMENTS:
        categories.append(setup.CategorySpec(code=f"b-{code}", name=name, selectable_as_favourite=not excluded))
        for g in range(1, 5):
            group = f"b-{code}-{g}"
            categories.append(setup.CategorySpec(code=group, name=f"{name} {g}", parent=f"b-{code}"))
            for s in range(1, 4):
                shelf = f"{group}-{s}"
                categories.append(setup.CategorySpec(code=shelf, name=f"{name} {g}.{s}", parent=group))
                shelves.append((shelf, weighted, excluded))
    brands = [setup.BrandSpec(code=f"b-brand-{i}", name=f"Brand {i}", own_brand=i < 6) for i in range(60)]
    items = []
    for i in range(products):
        shelf, weighted, excluded = shelves[i % len(shelves)]
        price = rnd.choice([4_990, 7_990, 9_990, 12_990, 19_990, 29_990, 49_990, 89_990, 149_990])
        items.append(
            setup.ProductSpec(
                sku=f"46{i:011d}", name=f"Product {i}", category=shelf,
                brand=None if i % 7 == 0 else f"b-brand-{i % 60}", excluded=excluded, price=price,
            )
        )
    return categories, brands, items


async def dataset_members() -> int | None:
    """Members of the bench program, or None when it was never loaded."""
    row = await Program.select(Program.id).where(Program.code == PROGRAM_CODE).first()
    if row is None:
        return None
    rows = await Program.raw("SELECT count(*) AS n FROM membership WHERE program = {}", row["id"])
    return rows[0]["n"]


async def load(members: int, log: callable = print) -> float:
    """Create the shop and `members` members with history. Returns seconds taken."""
    started = time.monotonic()
    program_id = await setup.create_program(PROGRAM_CODE, "Kopilka bench", program_rules())
    stores = [await setup.create_store(f"bench-{i:02d}", f"Магазин {i}", region="Moscow", format="super") for i in range(STORES)]
    categories, brands, products = catalog()
    await setup.import_catalog(categories=categories, brands=brands, products=products)
    log(f"  program, {STORES} stores, {len(categories)} categories, {len(products)} products: {time.monotonic() - started:.1f} s")
    conn = await asyncpg.connect(DB.config["dsn"])
    try:
        async with conn.transaction():
            for statement in _history_sql(program_id, stores, members):
                t0 = time.monotonic()
                await conn.execute(statement)
                log(f"  {statement.split('--', 2)[1].strip():<44} {time.monotonic() - t0:6.1f} s")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.monotonic() - started


def _history_sql(program_id: int, stores: list[int], n: int) -> list[str]:
    """Statements in order; each starts with `-- what it does --` for the progress log."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    store_array = "ARRAY[" + ",".join(map(str, stores)) + "]::int[]"
    ns = len(stores)
    # explicit ids above whatever is there, sequences moved past them afterwards
    base = "(SELECT COALESCE(max(id), 0) FROM {t})"
    return [
        "-- history tills --\n"
        f"INSERT INTO till (store, code) SELECT s, 'history' FROM unnest({store_array}) s",
        "-- offsets --\n"
        "CREATE TEMP TABLE bench_base ON COMMIT DROP AS SELECT "
        + ", ".join(f"{base.format(t=t)} AS {t}" for t in ("customer", "membership", "card", "account", "sale", "point_lot"))
        + f", nextval('card_number_seq') AS card_seq, timestamptz '{now}' AS now",
        "-- customers --\n"
        "INSERT INTO customer (id, phone, email, name, birth_date, locale, status, created_at, deleted_at) "
        "SELECT b.customer + g, '+7900' || lpad(g::text, 7, '0'), NULL, 'Покупатель ' || g, "
        "date '1950-01-01' + (g * 37 % 20000), 'ru', 'active', b.now - (400 + g % 400) * interval '1 day', NULL "
        f"FROM bench_base b, generate_series(1, {n}) g",
        "-- memberships --\n"
        "INSERT INTO membership (id, program, customer, tier, tier_spend, segments, referral_code, referred_by, "
        "registration_channel, status, purchases_count, first_purchase_at, last_purchase_at, joined_at) "
        f"SELECT b.membership + g, {program_id}, b.customer + g, NULL, 0, ARRAY[]::varchar[], NULL, NULL, 'import', "
        "'active', 0, NULL, NULL, b.now - (400 + g % 400) * interval '1 day' "
        f"FROM bench_base b, generate_series(1, {n}) g",
        "-- cards (EAN-13 numbers, check digit) --\n"
        "INSERT INTO card (id, number, program, membership, series, kind, status, blocked_reason, replaced_by, "
        "pass_auth_token, pass_updated_at, created_at) "
        f"SELECT b.card + g, body || ((10 - (SELECT sum(substr(body, p, 1)::int * (CASE WHEN p % 2 = 0 THEN 3 ELSE 1 END)) "
        f"FROM generate_series(1, 12) p) % 10) % 10), {program_id}, b.membership + g, 'bench', 'virtual', 'active', "
        "NULL, NULL, NULL, NULL, b.now - (400 + g % 400) * interval '1 day' "
        f"FROM bench_base b, generate_series(1, {n}) g, LATERAL (SELECT '2' || lpad((b.card_seq + g)::text, 11, '0') AS body) x",
        "-- accounts --\n"
        "INSERT INTO account (id, membership, currency, active, pending, updated_at) "
        f"SELECT b.account + g, b.membership + g, 'points', 0, 0, b.now FROM bench_base b, generate_series(1, {n}) g",
        # member class: every 10th spends like gold, two in ten like silver (quantity multiplier 12 / 4 / 1)
        "-- past sales: lines --\n"
        "CREATE TEMP TABLE bench_product ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY p.id) AS rn, p.sku, p.price, "
        "p.excluded, c.path[1] IN ('b-produce', 'b-meat', 'b-fish') AS weighted FROM product p JOIN category c ON c.id = p.category "
        "WHERE p.sku LIKE '46%';\n"
        "CREATE INDEX ON bench_product (rn);\n"
        "CREATE TEMP TABLE bench_line ON COMMIT DROP AS "
        "SELECT x.sale, x.g, x.line_no, p.sku, p.price, p.excluded, q.milli, (q.milli * p.price + 500) / 1000 AS amount, "
        "CASE WHEN x.g % 10 = 0 THEN 700 WHEN x.g % 10 IN (1, 2) THEN 500 ELSE 300 END AS bp "
        "FROM (SELECT s.sale, s.g, l AS line_no, "
        "1 + (hashint8(s.sale * 100 + l) & 2147483647) % (SELECT count(*) FROM bench_product) AS pick "
        f"FROM (SELECT b.sale + (g - 1) * {HISTORY_SALES_PER_MEMBER} + j AS sale, g FROM bench_base b, generate_series(1, {n}) g, "
        f"generate_series(1, {HISTORY_SALES_PER_MEMBER}) j) s, "
        "LATERAL generate_series(1, 1 + (hashint8(s.sale) & 1023) % 12) l) x "
        "JOIN bench_product p ON p.rn = x.pick, "
        "LATERAL (SELECT CASE WHEN p.weighted THEN 150 + (hashint8(x.sale * 31 + x.line_no) & 2147483647) % 2400 "
        "ELSE (1 + (hashint8(x.sale * 17 + x.line_no) & 3) % 3) * 1000 "
        "* (CASE WHEN x.g % 10 = 0 THEN 12 WHEN x.g % 10 IN (1, 2) THEN 4 ELSE 1 END) END AS milli) q",
        "-- past sales --\n"
        "INSERT INTO sale (id, store, till, receipt_id, business_date, occurred_at, card_number, membership, account, channel, "
        "status, amount, discount, redeemed_points, redeemed_amount, to_pay, accrued_points, rules_version, earning_spend, "
        "returned_earning_spend, request_hash, response, trace, created_at, cancelled_at) "
        f"SELECT x.sale, ({store_array})[1 + (x.sale % {ns})], t.id, 'H' || x.sale, (x.occurred AT TIME ZONE 'Europe/Moscow')::date, x.occurred, "
        "c.number, b.membership + x.g, b.account + x.g, 'store', 'confirmed', x.amount, 0, 0, 0, x.amount, x.accrued, 1, "
        "x.earning, 0, 'history', '{}'::jsonb, '[]'::jsonb, x.occurred, NULL "
        "FROM bench_base b, (SELECT l.sale, l.g, sum(l.amount) AS amount, "
        "sum(CASE WHEN l.excluded THEN 0 ELSE l.amount * l.bp / 1000000 END) AS accrued, "
        "sum(CASE WHEN l.excluded THEN 0 ELSE l.amount END) AS earning, "
        f"(SELECT now FROM bench_base) - ((l.sale - (SELECT sale FROM bench_base) - 1) % {HISTORY_SALES_PER_MEMBER} * 35 "
        "+ l.g % 30) * interval '1 day' - (l.g % 600) * interval '1 minute' AS occurred FROM bench_line l GROUP BY l.sale, l.g) x "
        f"JOIN card c ON c.id = (SELECT card FROM bench_base) + x.g "
        f"JOIN till t ON t.store = ({store_array})[1 + (x.sale % {ns})] AND t.code = 'history'",
        "-- past sale lines --\n"
        "INSERT INTO sale_line (sale, line_no, sku, quantity_milli, price, amount, discount, redeemed_points, redeemed_amount, "
        "to_pay, accrued_points, returned_quantity_milli) "
        "SELECT sale, line_no, sku, milli, price, amount, 0, 0, 0, amount, "
        "CASE WHEN excluded THEN 0 ELSE amount * bp / 1000000 END, 0 FROM bench_line",
        "-- point lots of past sales --\n"
        "INSERT INTO point_lot (id, account, amount, remaining, state, activates_at, expires_at, source, sale, created_at) "
        "SELECT b.point_lot + (s.id - b.sale), s.account, s.accrued_points, s.accrued_points, "
        "CASE WHEN s.occurred_at + interval '14 days' <= b.now THEN 'active' ELSE 'pending' END, "
        "s.occurred_at + interval '14 days', s.occurred_at + interval '379 days', 'sale', s.id, s.occurred_at "
        "FROM bench_base b JOIN sale s ON s.id > b.sale WHERE s.accrued_points > 0",
        "-- imported starting balances --\n"
        "INSERT INTO point_lot (id, account, amount, remaining, state, activates_at, expires_at, source, sale, created_at) "
        f"SELECT b.point_lot + {n * HISTORY_SALES_PER_MEMBER} + g, b.account + g, x.pts, x.pts, 'active', "
        "b.now - interval '120 days', b.now + (200 + g % 160) * interval '1 day', 'import', NULL, b.now - interval '120 days' "
        f"FROM bench_base b, generate_series(1, {n}) g, LATERAL (SELECT 100 + (hashint8(g) & 2147483647) % 3000 AS pts) x",
        "-- ledger entries --\n"
        "INSERT INTO ledger_entry (account, lot, kind, bucket, amount, sale, sale_return, reason, created_at) "
        "SELECT p.account, p.id, e.kind, e.bucket, e.amount, p.sale, NULL, e.reason, e.at FROM bench_base b "
        "JOIN point_lot p ON p.id > b.point_lot, LATERAL (VALUES "
        "(CASE WHEN p.source = 'import' THEN 'import' ELSE 'accrue' END, CASE WHEN p.source = 'import' THEN 'active' ELSE 'pending' END, "
        "p.amount, CASE WHEN p.source = 'import' THEN 'legacy balance' ELSE 'receipt H' || p.sale END, p.created_at), "
        "('activate', 'pending', -p.amount, 'due', p.activates_at), ('activate', 'active', p.amount, 'due', p.activates_at)"
        ") AS e(kind, bucket, amount, reason, at) "
        "WHERE e.kind <> 'activate' OR (p.source = 'sale' AND p.state = 'active')",
        "-- balances --\n"
        "UPDATE account a SET active = l.active, pending = l.pending FROM (SELECT p.account, "
        "sum(p.remaining) FILTER (WHERE p.state = 'active') AS active, "
        "COALESCE(sum(p.remaining) FILTER (WHERE p.state = 'pending'), 0) AS pending "
        "FROM point_lot p, bench_base b WHERE p.id > b.point_lot GROUP BY p.account) l WHERE l.account = a.id",
        "-- member counters and tiers --\n"
        "UPDATE membership m SET purchases_count = s.n, first_purchase_at = s.first, last_purchase_at = s.last, tier_spend = s.spend, "
        f"tier = (SELECT id FROM tier WHERE program = {program_id} AND threshold_spend <= s.spend ORDER BY threshold_spend DESC LIMIT 1) "
        "FROM (SELECT x.membership, count(*) AS n, min(x.occurred_at) AS first, max(x.occurred_at) AS last, "
        "sum(x.earning_spend) AS spend FROM sale x, bench_base b WHERE x.id > b.sale GROUP BY x.membership) s WHERE s.membership = m.id",
        "-- sequences --\n"
        + ";\n".join(
            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"
            for t in ("customer", "membership", "card", "account", "sale", "point_lot", "till")
        )
        + f";\nSELECT setval('card_number_seq', (SELECT card_seq FROM bench_base) + {n})",
    ]
