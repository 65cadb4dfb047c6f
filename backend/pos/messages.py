"""What the cashier reads: the use-cases' notes (`CashierNote` codes) written out in the program's language.

The core says what happened (a code and its numbers); the words are the API's business, in Russian or English
as the program's `settings.language` says (the language its explanations are in). A till that wants its own words
reads `cashier_notes` and ignores `cashier_messages`.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

import msgspec

from loyalty_core.engine.language import language_code, points_word
from loyalty_core.till.types import CalculationOut, CashierNote, IdentifyOut

_TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "points_expire": "{points} {points_word} сгорят {on}",
        "card_not_registered": "Карта не зарегистрирована: предложите покупателю зарегистрировать её, "
                               "чтобы сохранить и тратить баллы",
        "registration_pending": "Регистрация ждёт кода подтверждения от покупателя",
        "card_not_confirmed": "Покупатель ещё не подтвердил эту карту: баллы по ней списать нельзя",
        "birthday": "У покупателя сегодня день рождения!",
        "points_accrued": "Будет начислено {points} {points_word}",
        "kept_on_card": "Карта не зарегистрирована: баллы сохранятся на карте до регистрации покупателя",
    },
    "en": {
        "points_expire": "{points} {points_word} expire on {on}",
        "card_not_registered": "Card is not registered yet: offer the shopper to register it to keep and spend points",
        "registration_pending": "Registration is waiting for the shopper's confirmation code",
        "card_not_confirmed": "The shopper has not confirmed this card yet: its points cannot be spent with it",
        "birthday": "Happy birthday to the shopper!",
        "points_accrued": "{points} {points_word} will be accrued",
        "kept_on_card": "Card is not registered: points are kept on the card until the shopper registers",
    },
}


def _date(on: dt.date | None, lang: str) -> str:
    if on is None:
        return ""
    return on.strftime("%d.%m.%Y") if lang == "ru" else on.isoformat()


def message(note: CashierNote, language: str) -> str:
    lang = language_code(language)
    if note.code == "accrual_limited":  # the engine's own sentence, already in the program's language
        return note.text or ""
    template = _TEXTS.get(lang, _TEXTS["en"]).get(note.code)
    if template is None:  # a code this version does not word: the code itself rather than nothing
        return note.code
    points = note.points or 0
    return template.format(points=points, points_word=points_word(points, lang), on=_date(note.on, lang))


Out = TypeVar("Out", IdentifyOut, CalculationOut)


def worded(out: Out) -> Out:
    """The answer with its notes written out; an answer stored before notes existed keeps its messages."""
    if not out.cashier_notes:
        return out
    return msgspec.structs.replace(out, cashier_messages=[message(n, out.language) for n in out.cashier_notes])


__all__ = ["message", "worded"]
