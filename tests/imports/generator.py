"""Realistic dirty legacy exports (1C / Loymax shapes): Russian headers, cp1251 or UTF-8, `;` separators, dates as
31.12.2026, numbers as `1 234,50`, phones as 8-9xx, +7 and spaced, duplicates (same person twice), blank and broken
rows, unknown members, negative points. Used by tests/imports and `make bench-import` (bench/legacy_export.py).

The expected outcome (what must be accepted) is returned with the files, so a test can check the reconciliation."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

MAPPING = """\
date_format = "%d.%m.%Y"

[files."clients.csv"]
kind = "members"
[files."clients.csv".columns]
legacy_id = "Код клиента"
phone = "Телефон"
email = "E-mail"
name = "ФИО"
birth_date = "Дата рождения"
gender = "Пол"
city = "Город"
consent_sms = "Согласие на СМС"
registered_at = "Дата регистрации"
channel = "Канал"

[files."cards.csv"]
kind = "cards"
[files."cards.csv".columns]
number = "Номер карты"
member = "Код клиента"
status = "Статус"
issued_at = "Дата выдачи"

[files."balances.csv"]
kind = "balances"
[files."balances.csv".columns]
member = "Код клиента"
points = "Остаток баллов"
activates_at = "Дата начисления"
expires_at = "Дата сгорания"
source = "Основание"

[files."tiers.csv"]
kind = "tiers"
[files."tiers.csv".columns]
member = "Код клиента"
tier = "Уровень"
spend = "Сумма покупок"

[files."history.csv"]
kind = "history"
date_format = "%d.%m.%Y %H:%M"
[files."history.csv".columns]
receipt = "Номер чека"
member = "Код клиента"
occurred_at = "Дата чека"
store = "Магазин"
amount = "Сумма чека"
discount = "Скидка"
"""


@dataclass
class Expected:
    members: int = 0  # member rows accepted (customers + merged)
    merged: int = 0
    cards: int = 0
    points: int = 0  # active + pending accepted
    rejected_members: int = 0
    rejected_lots: int = 0
    receipts: int = 0  # history receipts accepted
    phones: dict[str, int] = field(default_factory=dict)  # a member's E.164 phone -> its accepted points (survivors)
    legacy_cards: dict[str, int] = field(default_factory=dict)  # legacy card number -> points of its member


def _phone_forms(digits: str, rnd: random.Random) -> str:
    """digits: 10 digits after +7."""
    form = rnd.randrange(5)
    if form == 0:
        return "8" + digits
    if form == 1:
        return "+7" + digits
    if form == 2:
        return f"+7 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}"
    if form == 3:
        return f"8 {digits[:3]} {digits[3:6]} {digits[6:8]} {digits[8:]}"
    return "7" + digits


def _money(kopecks: int) -> str:
    rub, kop = divmod(kopecks, 100)
    return f"{rub:,}".replace(",", " ") + f",{kop:02d}"


def generate(out: Path, members: int, *, seed: int = 1, encoding: str = "cp1251", tag: str = "",
             dirt: bool = True, now: dt.datetime | None = None, history: float = 0) -> Expected:
    """Write clients.csv, cards.csv, balances.csv, tiers.csv (and mapping.toml) under `out`; with `history` (receipts
    per member on average), history.csv too (two years of receipts at a dozen legacy stores).

    `tag` makes legacy card numbers and phones unique to one test (the test database is shared)."""
    rnd = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    exp = Expected()
    prefix = rnd.randrange(900, 990) if not tag else 900 + int(tag[:4], 16) % 90
    base = rnd.randrange(10**6)
    phones: list[str] = []
    card_no = 0
    survivor_points: dict[str, int] = {}
    survivor_phone: dict[str, str] = {}
    survivor_of: dict[str, str] = {}
    by_phone: dict[str, str] = {}
    cards_of: dict[str, list[str]] = {}
    first = ["Анна", "Иван", "Мария", "Пётр", "Ольга", "Сергей", "Наталья", "Дмитрий"]
    last = ["Иванова", "Петров", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов"]
    with (out / "clients.csv").open("w", encoding=encoding, newline="") as c, \
         (out / "cards.csv").open("w", encoding=encoding, newline="") as k, \
         (out / "balances.csv").open("w", encoding=encoding, newline="") as b, \
         (out / "tiers.csv").open("w", encoding=encoding, newline="") as t, \
         (out / "history.csv" if history else Path("/dev/null")).open("w", encoding=encoding, newline="") as h:
        c.write("Код клиента;Телефон;E-mail;ФИО;Дата рождения;Пол;Город;Согласие на СМС;Дата регистрации;Канал\r\n")
        k.write("Номер карты;Код клиента;Статус;Дата выдачи\r\n")
        b.write("Код клиента;Остаток баллов;Дата начисления;Дата сгорания;Основание\r\n")
        t.write("Код клиента;Уровень;Сумма покупок\r\n")
        h.write("Номер чека;Код клиента;Дата чека;Магазин;Сумма чека;Скидка\r\n")
        receipt_no = 0
        for i in range(members):
            legacy = f"{tag}C{i:07d}"
            dup = dirt and phones and rnd.random() < 0.02  # the same person registered twice
            if dup:
                digits = rnd.choice(phones)
            else:
                digits = f"{prefix}{(base + i) % 10**7:07d}"
                phones.append(digits)
            broken = dirt and rnd.random() < 0.005
            if broken:  # a row the export mangled: too few columns
                c.write(f"{legacy};{_phone_forms(digits, rnd)}\r\n")
                exp.rejected_members += 1
                continue
            if dirt and rnd.random() < 0.005:
                c.write(";;;;;;;;;\r\n")  # blank row (not a row)
            born = dt.date(1950, 1, 1) + dt.timedelta(days=rnd.randrange(20000))
            reg = now.date() - dt.timedelta(days=rnd.randrange(1, 3000))
            email = f"{legacy.lower()}@example.ru" if rnd.random() < 0.5 else ""
            name = f"{rnd.choice(first)} {rnd.choice(last)}"
            c.write(f"{legacy};{_phone_forms(digits, rnd)};{email};{name};{born:%d.%m.%Y};{rnd.choice('МЖ')};Москва;"
                    f"{rnd.choice(['да', 'нет', ''])};{reg:%d.%m.%Y};магазин\r\n")
            exp.members += 1
            e164 = "+7" + digits
            survivor = by_phone.get(e164) if dup else None
            if survivor is not None:
                exp.merged += 1
                survivor_of[legacy] = survivor
            else:
                survivor_of[legacy] = legacy
                survivor_phone[legacy] = e164
                by_phone[e164] = legacy
                survivor_points[legacy] = 0
            target = survivor_of[legacy]
            for _ in range(1 + (rnd.random() < 0.2)):
                card_no += 1
                number = rnd.choice([f"{tag}77{card_no:09d}", f"{tag}K-{card_no:06d}", f"{tag}0{card_no:012d}"])[:32]
                status = "Активна" if rnd.random() < 0.95 else "Заблокирована"
                k.write(f"{number};{legacy};{status};{reg:%d.%m.%Y}\r\n")
                exp.cards += 1
                cards_of.setdefault(target, []).append(number)
            for _ in range(rnd.randrange(0, 3)):
                points = rnd.randrange(1, 5000)
                kind = rnd.random()
                if kind < 0.3:
                    b.write(f"{legacy};{points:,}".replace(",", " ") + ";;;остаток\r\n")  # no dates: the program's rule
                elif kind < 0.9:
                    act = now.date() - dt.timedelta(days=rnd.randrange(1, 300))
                    exp_d = now.date() + dt.timedelta(days=rnd.randrange(1, 400))
                    b.write(f"{legacy};{points};{act:%d.%m.%Y};{exp_d:%d.%m.%Y};покупка\r\n")
                else:
                    act = now.date() + dt.timedelta(days=rnd.randrange(2, 14))
                    b.write(f"{legacy};{points};{act:%d.%m.%Y};;покупка\r\n")
                exp.points += points
                survivor_points[target] += points
            if dirt and rnd.random() < 0.01:
                b.write(f"{legacy};-{rnd.randrange(1, 100)};;;коррекция\r\n")  # negative: rejected
                exp.rejected_lots += 1
            if dirt and rnd.random() < 0.005:
                b.write(f"{tag}NOBODY{i};100;;;остаток\r\n")  # unknown member: rejected
                exp.rejected_lots += 1
            for _ in range(rnd.randrange(int(2 * history) + 1) if history else 0):
                receipt_no += 1
                at = now - dt.timedelta(minutes=rnd.randrange(1, 2 * 365 * 24 * 60))
                amount = rnd.randrange(5_000, 1_500_000)
                h.write(f"{tag}R{receipt_no:09d};{legacy};{at:%d.%m.%Y %H:%M};{tag}S{rnd.randrange(12):02d};"
                        f"{_money(amount)};{_money(amount // 20)}\r\n")
                exp.receipts += 1
            if rnd.random() < 0.3:
                t.write(f"{legacy};{rnd.choice(['silver', 'gold', 'basic'])};{_money(rnd.randrange(0, 20_000_000))}\r\n")
    exp.phones = {survivor_phone[lid]: pts for lid, pts in survivor_points.items()}
    exp.legacy_cards = {n: survivor_points[lid] for lid, ns in cards_of.items() for n in ns}
    return exp
