"""What the segments' and campaigns' pages share: the program picked, a refused save's messages put next to the
fields they name, the campaign form to and from `CampaignIn`, and the pages' Russian words."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from back_office import i18n
from back_office.rules_forms import messages_of
from loyalty_core.campaigns.model import CHANNELS, CampaignIn, CampaignOut, EmailText, PushText, SmsText
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.tables import Program

LANGUAGES = ("ru", "en")
TEXT_FIELDS = {"push": ("title", "body"), "email": ("subject", "body"), "sms": ("body",)}
TEXT_TYPES = {"push": PushText, "email": EmailText, "sms": SmsText}
NUMBERS = ("bonus_points", "bonus_valid_days", "holdout_percent", "cap_messages", "cap_days", "uplift_days")
_NAMED = re.compile(r"^([a-z_]+(?:[.\[][^:\s]*)?): (.*)$", re.S)
_MSGSPEC_AT = re.compile(r"^(.*) - at `\$\.([^`]+)`$", re.S)


async def programs() -> list[dict[str, Any]]:
    return list(await Program.select(Program.code, Program.name, Program.timezone).order_by(Program.id))


async def program_code(code: str) -> str:
    query = Program.select(Program.code)
    row = await (query.where(Program.code == code) if code else query.order_by(Program.id)).first()
    if row is None:
        raise NotFound(f"program {code!r} does not exist" if code else "no loyalty program is configured")
    return row["code"]  # type: ignore[no-any-return]


async def timezone_of(code: str) -> str:
    row = await Program.select(Program.timezone).where(Program.code == code).first()
    return row["timezone"] if row else "UTC"


def _field(path: str) -> str:
    """`messages.push.ru.title` -> `push.ru.title`, `frequency_cap.days` -> `cap_days`, `condition.all[0]` ->
    `condition`: the form's own names."""
    path = path.removeprefix("messages.")
    if path.startswith("frequency_cap"):
        return "cap_" + path.split(".")[-1] if "." in path else "cap_messages"
    if path.split(".")[0] in TEXT_FIELDS:
        return path if path.count(".") == 2 else path.split(".")[0]
    return re.split(r"[.\[]", path)[0]


SEGMENT_FIELDS = frozenset({"code", "name", "condition", "file"})
CAMPAIGN_FIELDS = frozenset({"code", "name", "segment", "send_at", "coupon_series", "messages", *TEXT_FIELDS,
                             *NUMBERS} | {f"{c}.{lang}.{part}" for c, parts in TEXT_FIELDS.items()
                                          for lang in LANGUAGES for part in parts})


def field_errors(exc: Any, default: str, known: frozenset[str]) -> dict[str, str]:
    """Each message of a refused save next to the field it names; what names no field of the form goes to
    `default` (`_top`: above the form) whole."""
    out: dict[str, str] = {}
    for message in messages_of(exc):
        at = _MSGSPEC_AT.match(message)
        named = _NAMED.match(message)
        if at and _field(at[2]) in known:
            name, text = _field(at[2]), readable(at[1])
        elif named and _field(named[1]) in known:
            name, text = _field(named[1]), named[2]
            if name == "condition" and named[1] != "condition":
                text = message  # keep the place inside the condition: "condition.all[1].fact: ..."
        else:
            name, text = default, message
        out[name] = f"{out[name]}; {text}" if name in out else text
    return out


# --- the campaign form ---------------------------------------------------------------------------------------


def campaign_to_form(c: CampaignOut, timezone: str) -> dict[str, str]:
    values: dict[str, str] = {
        "code": c.code, "name": c.name, "segment": c.segment or "", "coupon_series": c.coupon_series or "",
        "send_at": c.send_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M"),
        "offer": "coupon" if c.coupon_series else "points" if c.bonus_points else "none",
        "bonus_points": str(c.bonus_points or ""), "bonus_valid_days": str(c.bonus_valid_days or ""),
        "holdout_percent": f"{c.holdout_percent:g}", "uplift_days": str(c.uplift_days),
        "cap_messages": str(c.frequency_cap.messages) if c.frequency_cap else "",
        "cap_days": str(c.frequency_cap.days) if c.frequency_cap else "",
    }
    for channel, parts in TEXT_FIELDS.items():
        for lang, text in (getattr(c.messages, channel) or {}).items():
            for part in parts:
                values[f"{channel}.{lang}.{part}"] = getattr(text, part)
    return values


def campaign_from_form(form: dict[str, str], program: str, timezone: str) -> CampaignIn:
    """The posted form as the operator API's CampaignIn: the same checks; a wrong value names its field."""
    numbers: dict[str, float | int] = {}
    for name in NUMBERS:
        raw = form.get(name, "").replace(" ", "").replace(",", ".")
        if not raw:
            continue
        try:
            numbers[name] = float(raw) if name == "holdout_percent" else int(raw)
        except ValueError:
            raise ValidationFailed(f"{name}: a number" if name == "holdout_percent" else f"{name}: a whole number"
                                   ) from None
    try:
        local = dt.datetime.fromisoformat(form.get("send_at", ""))
    except ValueError:
        raise ValidationFailed("send_at: a date and time, e.g. 2026-12-05T10:00") from None
    send_at = (local if local.tzinfo else local.replace(tzinfo=ZoneInfo(timezone))).astimezone(dt.UTC)
    messages: dict[str, dict[str, dict[str, str]]] = {}
    for channel, parts in TEXT_FIELDS.items():
        for lang in LANGUAGES:
            text = {part: form.get(f"{channel}.{lang}.{part}", "").replace("\r\n", "\n") for part in parts}
            if any(text.values()):
                try:  # one text at a time: msgspec's path hides a dict's keys, and the form names the language
                    msgspec.convert(text, TEXT_TYPES[channel])
                except msgspec.ValidationError as exc:
                    at = _MSGSPEC_AT.match(str(exc))
                    part = at[2] if at else parts[0]
                    raise ValidationFailed(f"{channel}.{lang}.{part}: {readable(at[1] if at else str(exc))}") from None
                messages.setdefault(channel, {})[lang] = text
    offer = form.get("offer", "none")
    body: dict[str, Any] = {
        "code": form.get("code", ""), "name": form.get("name", ""), "program": program, "messages": messages,
        "send_at": send_at.isoformat(), "segment": form.get("segment") or None,
        "channels": [c for c in CHANNELS if c in messages] or None,
        "coupon_series": (form.get("coupon_series") or None) if offer == "coupon" else None,
        "bonus_points": int(numbers.get("bonus_points", 0)) if offer == "points" else 0,
        "bonus_valid_days": int(numbers.get("bonus_valid_days", 0)) if offer == "points" else 0,
        "holdout_percent": numbers.get("holdout_percent", 0), "uplift_days": int(numbers.get("uplift_days", 14)),
    }
    if offer == "coupon" and not body["coupon_series"]:
        raise ValidationFailed("coupon_series: choose a coupon series")
    if offer == "points" and not body["bonus_points"]:
        raise ValidationFailed("bonus_points: how many points each shopper gets (1..100 000)")
    if "cap_messages" in numbers or "cap_days" in numbers:
        body["frequency_cap"] = {"messages": int(numbers.get("cap_messages", 0)), "days": int(numbers.get("cap_days", 0))}
    try:
        return msgspec.convert(body, CampaignIn)
    except msgspec.ValidationError as exc:
        at = _MSGSPEC_AT.match(str(exc))
        raise ValidationFailed(f"{_field(at[2])}: {readable(at[1])}" if at else str(exc)) from None


_LIMITS = ((re.compile(r"^Expected `str` matching regex '\^\[\^\\\\x00"), lambda m: "one line: no line breaks"),
           (re.compile(r"^Expected `str` matching regex"), lambda m: "letters, digits, '.', '-' and '_' only"),
           (re.compile(r"^Expected `str` of length >= 1$"), lambda m: "required"),
           (re.compile(r"^Expected `str` of length <= (\d+)$"), lambda m: f"at most {m[1]} characters"),
           (re.compile(r"^Expected `(?:int|float)` >= (\S+)$"), lambda m: f"at least {m[1]}"),
           (re.compile(r"^Expected `(?:int|float)` <= (\S+)$"), lambda m: f"at most {m[1]}"))


def readable(message: str) -> str:
    """msgspec's words for a marketer."""
    for pattern, say in _LIMITS:
        found = pattern.match(message)
        if found:
            return say(found)
    return message


# --- words -------------------------------------------------------------------------------------------------

i18n.RU.update({k: v for k, v in {
    "Segments": "Сегменты", "Campaigns": "Кампании", "New segment": "Новый сегмент",
    "New static segment": "Новый статический сегмент", "Segment saved": "Сегмент сохранён",
    "Segment archived": "Сегмент в архиве", "Members now": "Участников сейчас", "Last recompute": "Пересчитан",
    "never": "никогда", "dynamic": "динамический", "static": "статический", "active": "активен",
    "archived": "в архиве", "Kind": "Вид", "Code": "Код", "Condition (JSON)": "Условие (JSON)",
    "Preview count": "Посчитать, сколько попадёт", "Save": "Сохранить", "Recompute now": "Пересчитать сейчас",
    "Archive": "В архив", "Members the condition selects now": "Условие выбирает сейчас участников",
    "Upload a list (CSV)": "Загрузить список (CSV)", "CSV file": "Файл CSV",
    "Replace the list": "Заменить список", "Add to the list": "Добавить к списку", "Upload": "Загрузить",
    "Rows": "Строк", "Matched": "Найдено", "Not matched": "Не найдено", "Line": "Строка", "Value": "Значение",
    "Reason": "Причина", "No segments yet": "Сегментов пока нет",
    "Example": "Пример", "Facts and operators: docs/marketing.md": "Факты и операторы: docs/marketing.md",
    "One column under a header card, phone or member, or two columns kind,value.":
        "Один столбец под заголовком card, phone или member, или два столбца kind,value.",
    "Lower-case letters, digits, - and _": "Строчные латинские буквы, цифры, - и _",
    "New campaign": "Новая кампания", "Campaign saved": "Кампания сохранена", "No campaigns yet": "Кампаний пока нет",
    "Segment": "Сегмент", "Send at": "Время отправки", "Texts": "Тексты", "Offer": "Предложение",
    "Nothing": "Ничего", "A personal coupon": "Персональный купон", "Bonus points": "Бонусные баллы",
    "Coupon series": "Серия купонов", "Points valid for (days, empty: the program's period)":
        "Баллы действуют (дней, пусто: срок программы)",
    "Control group, %": "Контрольная группа, %", "At most messages per shopper": "Не больше сообщений покупателю",
    "within days": "за дней", "Measure spend over (days)": "Считать покупки за (дней)",
    "Frequency cap": "Частота", "Push": "Пуш", "SMS": "SMS", "Heading": "Заголовок", "Segment name": "Название сегмента", "Campaign name": "Название кампании", "When to send": "Когда отправить", "Text": "Текст",
    "Subject": "Тема", "Russian": "Русский", "English": "Английский",
    "{name}, {coupon} and {points} are filled in for each shopper.":
        "{name}, {coupon} и {points} подставляются для каждого покупателя.",
    "draft": "черновик", "scheduled": "запланирована", "queued": "отправляется", "cancelled": "отменена",
    "Edit": "Изменить", "Launch": "Запустить", "Cancel the campaign": "Отменить кампанию",
    "Launch this campaign?": "Запустить эту кампанию?", "Cancel this campaign?": "Отменить эту кампанию?",
    "Yes, launch": "Да, запустить", "Yes, cancel it": "Да, отменить", "Back": "Назад",
    "Launched": "Запущена", "Campaign cancelled": "Кампания отменена",
    "Waits for approval to launch": "Ждёт согласования запуска", "proposed by": "предложил(а)",
    "Approve and launch": "Согласовать и запустить", "Reject": "Отклонить", "Withdraw": "Отозвать",
    "Sent back to a draft": "Возвращена в черновик",
    "It gives bonus points: a second person (another marketer or an admin) approves the launch.":
        "Кампания дарит баллы: запуск согласует второй человек (другой маркетолог или администратор).",
    "Report": "Отчёт", "Channel": "Канал", "Sent": "Отправлено", "Delivered": "Доставлено",
    "Opened": "Открыто", "Failed": "Ошибка", "Targeted": "Целевая группа", "Control": "Контрольная группа",
    "Buyers": "Покупали", "Spend": "Покупки", "Spend per member": "Покупки на участника",
    "Uplift per member": "Прирост на участника", "Messages per channel": "Сообщения по каналам",
    "Targeted vs control": "Целевая и контрольная группы", "Coupons issued": "Выдано купонов",
    "Coupons redeemed": "Погашено купонов", "Bonus points granted": "Начислено баллов",
    "Waiting": "Ждут отправки", "Skipped": "Пропущено", "Capped": "Сверх частоты", "Unknown": "Неизвестно",
    "Members": "Участники", "Not queued yet: the report fills in once it is sent.":
        "Ещё не отправлялась: отчёт заполнится после отправки.",
    "Reason (for the approver)": "Причина (для согласующего)", "Members in the segment": "Участников в сегменте",
    "Program": "Программа",
    "Who is in them, previewed and recomputed; static lists from CSV":
        "Кто в них входит: предпросмотр и пересчёт; статические списки из CSV",
    "Texts per channel, a coupon or points, launch, the report": "Тексты по каналам, купон или баллы, запуск, отчёт",
}.items() if k not in i18n.RU})
