"""The words the engine shows people, in Russian and English: money, rates, points, trace reasons.

English is what the engine has always printed ("1 250.00 RUB", "87 points") and stays byte for
byte the same, so stored sales and tests keep their meaning. Russian is what cashiers and
shoppers read by default: "1 250,00 ₽" (a no-break space inside the amount, so a narrow screen
never wraps it) and points with their plural forms (1 балл, 2 балла, 5 баллов, 21 балл).

A trace reason is a tuple (code, *arguments); it becomes a sentence only when it is written to
the trace, in the run's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache

from loyalty_core.engine import money

Reason = tuple  # (code, *arguments), e.g. ("outside_hours",) or ("displaced_by", "x", "first")

NBSP = "\u00a0"
CURRENCY_SIGNS = {"RUB": "₽"}


def ru_plural(n: int, one: str, few: str, many: str) -> str:
    """1 балл, 2 балла, 5 баллов, 11 баллов, 21 балл, 22 балла, 111 баллов."""
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


@lru_cache(maxsize=4096)
def points_word(n: int, lang: str) -> str:
    """The word after a number of points: '1 балл', '2 балла', '5 баллов' / '1 point', '5 points'."""
    if lang != "ru":
        return "point" if abs(n) == 1 else "points"
    return ru_plural(abs(n), "балл", "балла", "баллов")


def ru_money(minor: int, currency: str = "RUB") -> str:
    """1 250,00 ₽: no-break space between thousands and before the sign, comma before kopecks."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    grouped = f"{units:,}".replace(",", NBSP)
    return f"{sign}{grouped},{cents:02d}{NBSP}{CURRENCY_SIGNS.get(currency, currency)}"


def _ru_points(n: int) -> str:
    return f"{n} {ru_plural(n, 'балл', 'балла', 'баллов')}"


def _en_points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _ru_lines(n: int) -> str:
    return f"{n} {ru_plural(n, 'строка', 'строки', 'строк')}"


def _ru_date(day: dt.date) -> str:
    return day.strftime("%d.%m.%Y")


_RU_MODES = {"first": "первое по приоритету", "best": "выгоднее для покупателя", "stack": "все сразу"}
_RU_LIMITS = {
    "redeem_share": "ограничена доля оплаты баллами",
    "no_redeem": "оплата баллами запрещена",
    "no_accrual": "баллы не начисляются",
    "accrual_cap": "лимит начисления баллов",
}

# Each reason: a fixed text, or a function of the reason's arguments and the words of the language.
_EN_REASONS: dict[str, str | Callable[..., str]] = {
    "starts_on": lambda w, day: f"starts on {day.isoformat()}",
    "ended_on": lambda w, day: f"ended on {day.isoformat()}",
    "weekday": "not on this day of the week",
    "month_day": "not on this day of the month",
    "hours": "outside its hours",
    "no_card": "no loyalty card",
    "card_not_registered": "card not registered",
    "tier": "tier not targeted",
    "store": "store not targeted",
    "region": "region not targeted",
    "store_format": "store format not targeted",
    "channel": "channel not targeted",
    "segment": "segment not targeted",
    "segment_excluded": "segment excluded",
    "store_attributes": "store attributes do not match",
    "payment": "payment method not targeted",
    "no_coupon": "no valid coupon for it",
    "birthday": "not the member's birthday",
    "birth_date_too_recent": lambda w, days: f"the birth date has been known for less than {days} days",
    "condition": "condition not met",
    "group": lambda w, inner: f"group: {w.reason(inner)}",
    "issues_coupon": lambda w, series: f"issues a coupon of series {series}",
    "took": lambda w, minor, lines: f"took {minor} off {lines} line(s)",
    "nothing_to_discount": "nothing to discount",
    "displaced_gives_more": lambda w, code: f"displaced: {code} gives more",
    "displaced_by": lambda w, code, mode: f"displaced by {code} ({mode})",
    "limit": lambda w, kind, lines, share_bp: f"{kind} on {lines} line(s)",
    "no_points": "no points on these lines",
    "accrued": lambda w, points: f"{points} points",
    "no_card_no_points": "no loyalty card: no points",
    "cap_receipt": lambda w, points: f"capped at {points} points per receipt",
    "cap_day": lambda w, points: f"capped at {points} points left for today",
    "excluded_lines": lambda w, line_nos: (
        f"line(s) {', '.join(map(str, line_nos))}: excluded goods, no discount, no points, no payment with points"
    ),
    "no_promotion": "no promotion applies to this basket",
    "invalid_coupon": "invalid",
}

_RU_REASONS: dict[str, str | Callable[..., str]] = {
    "starts_on": lambda w, day: f"действует с {_ru_date(day)}",
    "ended_on": lambda w, day: f"действовало до {_ru_date(day)}",
    "weekday": "не действует в этот день недели",
    "month_day": "не действует в этот день месяца",
    "hours": "не действует в эти часы",
    "no_card": "нет карты лояльности",
    "card_not_registered": "карта не зарегистрирована",
    "tier": "не для этого уровня",
    "store": "не для этого магазина",
    "region": "не для этого региона",
    "store_format": "не для этого формата магазина",
    "channel": "не для этого канала продаж",
    "segment": "не для этого сегмента покупателей",
    "segment_excluded": "сегмент покупателя исключён",
    "store_attributes": "магазин не подходит по признакам",
    "payment": "не для этого способа оплаты",
    "no_coupon": "нет действующего купона",
    "birthday": "не день рождения покупателя",
    "birth_date_too_recent": lambda w, days: f"дата рождения указана менее {days} дн. назад",
    "condition": "условие не выполнено",
    "group": lambda w, inner: f"группа: {w.reason(inner)}",
    "issues_coupon": lambda w, series: f"выдаёт купон серии {series}",
    "took": lambda w, minor, lines: f"скидка {w.money(minor)}, {_ru_lines(lines)}",
    "nothing_to_discount": "нет товаров для скидки",
    "displaced_gives_more": lambda w, code: f"вытеснено: {code} даёт больше",
    "displaced_by": lambda w, code, mode: f"вытеснено правилом {code} ({_RU_MODES.get(mode, mode)})",
    "limit": lambda w, kind, lines, share_bp: (
        f"оплата баллами до {w.percent(share_bp)}: {_ru_lines(lines)}"
        if kind == "redeem_share"
        else f"{_RU_LIMITS.get(kind, kind)}: {_ru_lines(lines)}"
    ),
    "no_points": "нет баллов за эти товары",
    "accrued": lambda w, points: w.points(points),
    "no_card_no_points": "нет карты лояльности: баллы не начисляются",
    "cap_receipt": lambda w, points: f"лимит: {w.points(points)} за чек",
    "cap_day": lambda w, points: f"лимит: на сегодня осталось {w.points(points)}",
    "excluded_lines": lambda w, line_nos: (
        f"{'строка' if len(line_nos) == 1 else 'строки'} {', '.join(map(str, line_nos))}: "
        "товары-исключения — без скидки, без баллов, без оплаты баллами"
    ),
    "no_promotion": "ни одна акция не подходит к этой покупке",
    "invalid_coupon": "купон недействителен",
}


class Words:
    """One language's way of writing money, rates, points and reasons (for one currency)."""

    def __init__(self, lang: str, currency: str) -> None:
        self.lang, self.currency = lang, currency
        self._reasons = _RU_REASONS if lang == "ru" else _EN_REASONS
        self._fixed = {code: text for code, text in self._reasons.items() if isinstance(text, str)}
        if lang == "ru":
            write_money, write_points, self.percent, self.factor = (
                ru_money,
                _ru_points,
                _ru_percent,
                _ru_factor,
            )
        else:
            write_money, write_points, self.percent, self.factor = (
                _en_money,
                _en_points,
                _en_percent,
                _en_factor,
            )
        self.points: Callable[[int], str] = lru_cache(maxsize=4096)(write_points)
        # A receipt writes the same line amounts for many rules: one cached call per amount.
        self.money: Callable[[int], str] = lru_cache(maxsize=4096)(lambda minor: write_money(minor, currency))

    def reason(self, reason: Reason) -> str:
        text = self._fixed.get(reason[0])
        return text if text is not None else self._reasons[reason[0]](self, *reason[1:])


_en_money = lru_cache(maxsize=4096)(money.format_money)
_en_percent = lru_cache(maxsize=1024)(money.format_bp)
_en_factor = lru_cache(maxsize=256)(money.format_factor)


@lru_cache(maxsize=1024)
def _ru_percent(bp: int) -> str:
    return money.format_bp(bp).replace(".", ",")


@lru_cache(maxsize=256)
def _ru_factor(factor_bp: int) -> str:
    return "×" + money.format_factor(factor_bp)[1:].replace(".", ",")


LANGUAGES = ("ru", "en")


def language_code(lang: str | None) -> str:
    """'ru', 'ru-RU', 'RU' -> 'ru'; anything the engine does not speak -> 'en' (never an error:
    a sale must not fail over the language of its explanations)."""
    code = (lang or "en").replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else "en"


@lru_cache(maxsize=64)
def words_for(lang: str | None, currency: str) -> Words:
    return Words(language_code(lang), currency)
