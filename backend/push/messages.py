"""What the shopper's phone says for each outbox message kind, in Russian and English (pure).

`render(kind, payload, locale)` returns a PushMessage, or None for kinds that
are not app pushes (pass_update) or that we do not announce.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from backend.push.transports import PushMessage
from loyalty_core.engine.language import points_word

APP_KINDS = frozenset({"welcome", "points_accrued", "points_activated", "points_expiring", "points_returned",
                       "points_adjusted", "tier_changed", "coupon_issued", "event_bonus", "tier_at_risk"})
_MONTHS = {
    "ru": ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября",
           "декабря"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}

_TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "ru": {
        "welcome": ("Добро пожаловать!", "Вы в программе лояльности. Копите баллы с каждой покупкой."),
        "points_accrued": ("Начислены баллы", "+{points} {points_word}. Они станут доступны после периода ожидания."),
        "points_activated": ("Баллы доступны", "{points} {points_word} можно тратить. Баланс: {active}."),
        "points_expiring": ("Баллы скоро сгорят", "{points} {points_word} сгорят {expires_on}. Успейте потратить!"),
        "points_returned": ("Возврат покупки", "Баллы пересчитаны после возврата. Баланс: {active}."),
        "points_adjusted": ("Баланс изменён", "{signed_points} {points_word}. Баланс: {active}."),
        "tier_up": ("Новый уровень!", "Теперь ваш уровень — {name}."),
        "tier_down": ("Уровень изменился", "Ваш уровень теперь — {name}."),
        "coupon_issued": ("Вам купон", "Купон {code} уже в приложении."),
        "event_bonus:birthday": ("С днём рождения!", "Дарим {points} {points_word}. Они сгорят {expires_on}."),
        "event_bonus:inactive": ("Мы скучали", "Дарим {points} {points_word} — ждём вас снова. Они сгорят {expires_on}."),
        "event_bonus:first_purchase": ("Спасибо за покупку", "+{points} {points_word} за первую покупку."),
        "event_bonus:referral": ("Друг сделал покупку", "+{points} {points_word} за приглашённого друга."),
        "event_bonus:tier_up": ("Подарок к новому уровню", "+{points} {points_word} за новый уровень."),
        "tier_at_risk": ("Уровень под угрозой", "Чтобы сохранить уровень {name}, купите ещё на {amount} до {by}."),
    },
    "en": {
        "welcome": ("Welcome!", "You are in the loyalty program. Earn points with every purchase."),
        "points_accrued": ("Points earned", "+{points} {points_word}. They become available after the waiting period."),
        "points_activated": ("Points available", "{points} {points_word} ready to spend. Balance: {active}."),
        "points_expiring": ("Points expiring soon", "{points} {points_word} expire on {expires_on}. Use them in time!"),
        "points_returned": ("Purchase returned", "Points recalculated after the return. Balance: {active}."),
        "points_adjusted": ("Balance changed", "{signed_points} {points_word}. Balance: {active}."),
        "tier_up": ("New tier!", "Your tier is now {name}."),
        "tier_down": ("Tier changed", "Your tier is now {name}."),
        "coupon_issued": ("A coupon for you", "Coupon {code} is in the app."),
        "event_bonus:birthday": ("Happy birthday!", "{points} {points_word} for you. They expire on {expires_on}."),
        "event_bonus:inactive": ("We missed you", "{points} {points_word} for your next visit. They expire on {expires_on}."),
        "event_bonus:first_purchase": ("Thank you", "+{points} {points_word} for your first purchase."),
        "event_bonus:referral": ("Your friend shopped", "+{points} {points_word} for the friend you invited."),
        "event_bonus:tier_up": ("A gift for your new tier", "+{points} {points_word} for reaching a new tier."),
        "tier_at_risk": ("Your tier is at risk", "Spend {amount} more by {by} to keep {name}."),
    },
}


def render(kind: str, payload: dict[str, Any], locale: str, *, notification_id: int) -> PushMessage | None:
    if kind not in APP_KINDS:
        return None
    texts = _TEXTS.get(locale, _TEXTS["ru"])
    key = kind
    if kind == "tier_changed":
        key = "tier_up" if payload.get("up", True) else "tier_down"
    if kind == "event_bonus":
        key = f"event_bonus:{payload.get('event', '')}"
        if key not in texts:
            return None
    points = int(payload.get("points", 0) or 0)
    values = {
        "points": points,
        "signed_points": f"{points:+d}",
        "points_word": points_word(points, locale),
        "active": payload.get("active", ""),
        "expires_on": _day(payload.get("expires_on", ""), locale),
        "by": _day(payload.get("by", ""), locale),
        "amount": f"{int(payload.get('spend_needed', 0) or 0) // 100:,} ₽".replace(",", " "),
        "name": payload.get("name") or payload.get("tier", ""),
        "code": payload.get("code", ""),
    }
    title, body = texts[key]
    return PushMessage(
        title=title,
        body=body.format(**values),
        data={"kind": kind, "notification": str(notification_id)},
        # A resend after a crash carries the same key, so the phone replaces instead of showing it twice.
        collapse_key=f"kopilka-{notification_id}",
    )


def _day(iso: str, locale: str) -> str:
    """2026-12-12 -> "12 декабря" ("12 December"): what a shopper reads; anything else as it came."""
    try:
        day = dt.date.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso or "")
    return f"{day.day} {_MONTHS.get(locale, _MONTHS['ru'])[day.month - 1]}"
