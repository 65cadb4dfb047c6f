"""Demo data: a program, three stores in three time zones, a catalog, a card series and two shoppers.

`kopilka serve` seeds it into an empty database so a fresh checkout has something to scan;
`kopilka demo --force` adds another copy beside existing programs. Everything is written in
one transaction under an advisory lock, so two processes starting at once seed it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from loyalty_core import db
from loyalty_core.cards import ean13_check_digit
from loyalty_core.engine.demo import demo_program_rules
from loyalty_core.piccolo_conf import DB
from loyalty_core.setup.entities import (
    BrandSpec,
    CategorySpec,
    IssuedTillKey,
    ProductSpec,
    create_program,
    create_store,
    create_till_key,
    emit_cards,
    import_catalog,
    next_card_number,
)
from loyalty_core.tables import Account, Card, Program, Store

DEMO_PROGRAM = "demo"
DEMO_SERIES = "demo"
DEMO_CARDS = 20
STARTING_BALANCE = 1500  # points on top of the welcome bonus, active at once: the till demo can pay with points
_SEED_LOCK = 7_324_001  # pg advisory lock id: one seeding at a time

# code, name, city, time zone, address, latitude, longitude, format
STORES = [
    ("MSK-TVERSKAYA", "Копилка на Тверской", "Москва", "Europe/Moscow", "Москва, ул. Тверская, 12", 55.7649, 37.6055, "supermarket"),
    ("EKB-VAINERA", "Копилка на Вайнера", "Екатеринбург", "Asia/Yekaterinburg", "Екатеринбург, ул. Вайнера, 9", 56.8364, 60.5998, "convenience"),
    ("NSK-LENINA", "Копилка на Ленина", "Новосибирск", "Asia/Novosibirsk", "Новосибирск, ул. Ленина, 21", 55.0302, 82.9204, "hypermarket"),
]
TILLS = ["1", "2"]

CATEGORIES = [  # Russian names, English ones for the website in English (issue 16)
    CategorySpec("dairy", "Молочные продукты", names={"en": "Dairy"}),
    CategorySpec("milk", "Молоко и кисломолочные", "dairy", selectable_as_favourite=True, names={"en": "Milk and kefir"}),
    CategorySpec("cheese", "Сыры", "dairy", selectable_as_favourite=True, names={"en": "Cheese"}),
    CategorySpec("yogurt", "Йогурты и творог", "dairy", selectable_as_favourite=True, names={"en": "Yoghurt and cottage cheese"}),
    CategorySpec("produce", "Овощи и фрукты", names={"en": "Fruit and vegetables"}),
    CategorySpec("vegetables", "Овощи", "produce", selectable_as_favourite=True, names={"en": "Vegetables"}),
    CategorySpec("fruits", "Фрукты", "produce", selectable_as_favourite=True, names={"en": "Fruit"}),
    CategorySpec("grocery", "Бакалея", names={"en": "Grocery"}),
    CategorySpec("pasta-cereals", "Макароны и крупы", "grocery", names={"en": "Pasta and cereals"}),
    CategorySpec("coffee-tea", "Чай и кофе", "grocery", selectable_as_favourite=True, names={"en": "Tea and coffee"}),
    CategorySpec("oil-sugar", "Масло и сахар", "grocery", names={"en": "Oil and sugar"}),
    CategorySpec("drinks", "Напитки", names={"en": "Drinks"}),
    CategorySpec("water", "Вода", "drinks", names={"en": "Water"}),
    CategorySpec("juice", "Соки и морсы", "drinks", selectable_as_favourite=True, names={"en": "Juice and fruit drinks"}),
    CategorySpec("alcohol", "Алкоголь", names={"en": "Alcohol"}),  # excluded from points by law: its products carry excluded=True
    CategorySpec("wine", "Вино", "alcohol", names={"en": "Wine"}),
    CategorySpec("beer", "Пиво", "alcohol", names={"en": "Beer"}),
]

OWN_BRAND = "kopilka-selection"
BRANDS = [
    BrandSpec(OWN_BRAND, "Копилка Selection", own_brand=True),
    BrandSpec("vkusnaya-ferma", "Вкусная ферма"),
    BrandSpec("alpiyskiy-lug", "Альпийский луг"),
    BrandSpec("volzhskie-prostory", "Волжские просторы"),
    BrandSpec("kofeynya-1", "Кофейня №1"),
    BrandSpec("zelyony-sad", "Зелёный сад"),
    BrandSpec("severny-istochnik", "Северный источник"),
    BrandSpec("yuzhny-sklon", "Южный склон"),
    BrandSpec("pivovarnya-severnaya", "Пивоварня Северная"),
]

# name, category, brand, price in kopecks (per piece, or per kg for produce)
PRODUCTS: list[tuple[str, str, str | None, int]] = [
    ("Молоко 3,2% 1 л", "milk", "vkusnaya-ferma", 8990),
    ("Молоко 2,5% 930 мл", "milk", OWN_BRAND, 6990),
    ("Кефир 1% 900 г", "milk", "vkusnaya-ferma", 7490),
    ("Сыр Российский 200 г", "cheese", "vkusnaya-ferma", 24990),
    ("Сыр Гауда 250 г", "cheese", OWN_BRAND, 27990),
    ("Моцарелла 125 г", "cheese", "alpiyskiy-lug", 15990),
    ("Пармезан 150 г", "cheese", "alpiyskiy-lug", 45990),
    ("Йогурт греческий 140 г", "yogurt", "vkusnaya-ferma", 8990),
    ("Йогурт питьевой клубника 270 г", "yogurt", OWN_BRAND, 6490),
    ("Творог 5% 350 г", "yogurt", "vkusnaya-ferma", 14990),
    ("Огурцы, кг", "vegetables", None, 19990),
    ("Томаты, кг", "vegetables", None, 24990),
    ("Картофель, кг", "vegetables", None, 4990),
    ("Морковь, кг", "vegetables", None, 3990),
    ("Лук репчатый, кг", "vegetables", None, 3490),
    ("Бананы, кг", "fruits", None, 12990),
    ("Яблоки Гала, кг", "fruits", None, 16990),
    ("Апельсины, кг", "fruits", None, 14990),
    ("Лимоны, кг", "fruits", None, 22990),
    ("Спагетти 450 г", "pasta-cereals", OWN_BRAND, 7990),
    ("Макароны перья 450 г", "pasta-cereals", "volzhskie-prostory", 8990),
    ("Гречка 900 г", "pasta-cereals", "volzhskie-prostory", 11990),
    ("Рис круглозёрный 900 г", "pasta-cereals", OWN_BRAND, 9990),
    ("Овсяные хлопья 500 г", "pasta-cereals", "volzhskie-prostory", 6990),
    ("Кофе молотый 250 г", "coffee-tea", "kofeynya-1", 44990),
    ("Кофе в зёрнах 1 кг", "coffee-tea", "kofeynya-1", 149990),
    ("Чай чёрный 100 пакетиков", "coffee-tea", OWN_BRAND, 29990),
    ("Чай зелёный 25 пакетиков", "coffee-tea", "kofeynya-1", 15990),
    ("Масло подсолнечное 1 л", "oil-sugar", "volzhskie-prostory", 14990),
    ("Сахар 1 кг", "oil-sugar", OWN_BRAND, 8990),
    ("Вода минеральная 1,5 л", "water", "severny-istochnik", 5990),
    ("Вода питьевая 5 л", "water", OWN_BRAND, 11990),
    ("Сок апельсиновый 1 л", "juice", "zelyony-sad", 15990),
    ("Сок яблочный 1 л", "juice", OWN_BRAND, 10990),
    ("Морс клюквенный 1 л", "juice", "zelyony-sad", 13990),
    ("Вино красное сухое 0,75 л", "wine", "yuzhny-sklon", 79990),
    ("Вино белое полусладкое 0,75 л", "wine", "yuzhny-sklon", 64990),
    ("Игристое брют 0,75 л", "wine", "yuzhny-sklon", 89990),
    ("Пиво светлое 0,45 л", "beer", "pivovarnya-severnaya", 11990),
    ("Пиво нефильтрованное 0,5 л", "beer", "pivovarnya-severnaya", 14990),
]
EXCLUDED_CATEGORIES = {"wine", "beer"}

# phone, name, birth date (None: the shopper's birthday is the seeding day, so birthday x10 shows)
SHOPPERS: list[tuple[str, str, date | None]] = [
    ("+79990000001", "Анна Смирнова", date(1990, 5, 14)),
    ("+79990000002", "Иван Петров", None),
]


def product_sku(n: int) -> str:
    body = f"46070000{n:04d}"
    return body + ean13_check_digit(body)


@dataclass(frozen=True)
class DemoShopper:
    phone: str
    name: str
    card: str
    active_points: int


@dataclass
class DemoInfo:
    created: bool
    program_id: int | None = None
    program_code: str = ""
    stores: list[str] = field(default_factory=list)
    till: tuple[str, str] | None = None  # (store code, till code) of the demo till
    till_key: IssuedTillKey | None = None  # only right after seeding: keys are stored hashed
    cards: list[str] = field(default_factory=list)
    # number -> the secret printed with it, for the cards shown (only hashes are stored: known right after
    # emitting them, or when the caller kept them; see card_secrets_for)
    card_secrets: dict[str, str] = field(default_factory=dict)
    shoppers: list[DemoShopper] = field(default_factory=list)
    products: int = 0
    sample_skus: list[str] = field(default_factory=list)

    def describe(self, till_key: str | None = None) -> list[str]:
        key = till_key or (self.till_key.key if self.till_key else None)
        lines = [f"Demo program {self.program_code!r}: stores {', '.join(self.stores)}; {self.products} products"]
        if self.till is not None:
            lines.append(f"  demo till         store {self.till[0]}, till {self.till[1]}")
        if key:
            lines.append(f"  demo till key     {key}")
        for shopper in self.shoppers:
            lines.append(
                f"  shopper           {shopper.name}, {shopper.phone}, card {shopper.card}, {shopper.active_points} points"
            )
        if self.cards:
            more = f" (+{len(self.cards) - 5} more)" if len(self.cards) > 5 else ""
            lines.append(f"  plastic cards     {', '.join(self.cards[:5])}{more}, not registered yet")
            shown = [self.card_secrets.get(number) for number in self.cards[:5]]
            if all(shown):
                lines.append(f"  card secrets      {', '.join(shown)}  (same order; bind a card in the app with both)")  # type: ignore[arg-type]
        if self.sample_skus:
            lines.append(f"  sample skus       {', '.join(self.sample_skus)}")
        return lines


async def seed_demo(now: datetime, force: bool = False) -> DemoInfo:
    """Seed the demo unless a program exists (or `force`); returns what was made, the till key included."""
    async with DB.transaction():
        await db.fetch("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK)
        programs = await Program.count()
        if programs and not force:
            return DemoInfo(created=False)
        suffix = "" if not programs else f"-{programs + 1}"
        program_code = DEMO_PROGRAM + suffix
        rules = demo_program_rules()
        program_id = await create_program(program_code, "Копилка (демо)" + suffix, rules, timezone="Europe/Moscow")
        stores = []
        for code, name, city, tz, address, lat, lon, fmt in STORES:
            await create_store(code + suffix, name, tz, region=city, format=fmt, address=address, latitude=lat, longitude=lon)
            stores.append(code + suffix)
        till_key = None
        for store in stores:
            for till in TILLS:
                issued = await create_till_key(store, till)
                till_key = till_key or issued
        await import_catalog(CATEGORIES, BRANDS, _products())
        emitted = await emit_cards(program_id, DEMO_SERIES + suffix, DEMO_CARDS)
        expiry_days = rules.settings.expiry_days
        for phone, name, birth in SHOPPERS:
            await _register_shopper(program_code, phone, name, birth or now.astimezone(ZoneInfo("Europe/Moscow")).date().replace(year=1988), now, expiry_days)
    info = await load_demo(program_code)
    assert info is not None
    info.created, info.till_key = True, till_key
    info.card_secrets = {c.number: c.secret for c in emitted}
    return info


async def card_secrets_for(info: DemoInfo, remembered: dict[str, str]) -> dict[str, str]:
    """Secrets of the demo cards shown: the remembered ones that still match, new ones for the rest
    (a card nobody registered yet loses nothing by a new secret)."""
    from loyalty_core.members.card_proof import secret_hash
    from loyalty_core.setup.entities import reissue_card_secrets

    shown = info.cards[:5]
    stored = {r["number"]: r["secret_hash"] for r in await Card.select(Card.number, Card.secret_hash).where(
        Card.number.is_in([*shown, *remembered] or [""]))}
    kept = {n: s for n, s in remembered.items() if n in stored and stored[n] == secret_hash(n, s)}
    missing = [n for n in shown if n not in kept]
    if missing:
        async with DB.transaction():
            kept.update({c.number: c.secret for c in await reissue_card_secrets(missing)})
    return kept


def _products() -> list[ProductSpec]:
    return [
        ProductSpec(sku=product_sku(n), name=name, category=category, brand=brand, price=price,
                    excluded=category in EXCLUDED_CATEGORIES)
        for n, (name, category, brand, price) in enumerate(PRODUCTS, start=1)
    ]


async def _register_shopper(program_code: str, phone: str, name: str, birth: date, now: datetime, expiry_days: int) -> None:
    """Registered as a shopper registers (virtual card, consents, welcome bonus), plus a starting balance."""
    from loyalty_core.ledger.ops import accrue, ensure_account, lock_account
    from loyalty_core.members.identity import ConsentIn, Registration, register_member, resolve_program
    from loyalty_core.members.tiers import assign_initial_tier

    from loyalty_core.tables import Customer

    program = await resolve_program(program_code)
    registered = await register_member(
        program,
        Registration(phone=phone, name=name, birth_date=birth,
                     consents=[ConsentIn(channel="sms", granted=True), ConsentIn(channel="push", granted=True)]),
        "import",
        now,
    )
    await assign_initial_tier(registered.membership_id, program.id)
    # the demo shoppers are regulars: their birth dates have been known a year, so birthday x10 can show
    await Customer.update({Customer.birth_date_set_at: now - timedelta(days=365)}).where(
        Customer.id == registered.customer_id)
    state = await lock_account(await ensure_account(registered.membership_id), now)
    await accrue(state, STARTING_BALANCE, now, kind="adjust", source="adjust", activates_at=now,
                 expires_at=now + timedelta(days=expiry_days), reason="demo starting balance")


async def load_demo(program_code: str | None = None) -> DemoInfo | None:
    """Describe the demo already in the database (the first demo program unless a code is given)."""
    query = Program.select(Program.id, Program.code).where(Program.code.like(DEMO_PROGRAM + "%")).order_by(Program.id)
    if program_code is not None:
        query = query.where(Program.code == program_code)
    program = await query.first()
    if program is None:
        return None
    suffix = program["code"][len(DEMO_PROGRAM):]
    store_codes = [code + suffix for code, *_ in STORES]
    stores = [r["code"] for r in await Store.select(Store.code).where(Store.code.is_in(store_codes)).order_by(Store.id)]
    cards = [
        r["number"]
        for r in await Card.select(Card.number)
        .where((Card.program == program["id"]) & (Card.series == DEMO_SERIES + suffix) & (Card.status == "emitted"))
        .order_by(Card.number)
    ]
    shoppers = [
        DemoShopper(phone=r["membership.customer.phone"], name=r["membership.customer.name"], card=r["number"],
                    active_points=await _active_points(r["membership"]))
        for r in await Card.select(
            Card.number, Card.membership, Card.membership.customer.phone, Card.membership.customer.name
        )
        .where(
            (Card.program == program["id"]) & (Card.status == "active")
            & Card.membership.customer.phone.is_in([phone for phone, *_ in SHOPPERS])
        )
        .order_by(Card.membership.customer.phone)
    ]
    return DemoInfo(
        created=False,
        program_id=program["id"],
        program_code=program["code"],
        stores=stores,
        till=(stores[0], TILLS[0]) if stores else None,
        cards=cards,
        shoppers=shoppers,
        products=len(PRODUCTS),
        sample_skus=[product_sku(n) for n in (1, 5, 25)],
    )


async def _active_points(membership_id: int) -> int:
    row = await Account.select(Account.active).where(Account.membership == membership_id).first()
    return row["active"] if row else 0
