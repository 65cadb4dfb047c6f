"""What the rule editor's pages need besides the services: labels per field and unit, the posted form as lists,
the engine's messages put next to the fields they name, and the pages' Russian words."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException

from back_office import i18n
from loyalty_core.rules_office.mechanics import KIND_NAMES, MECHANICS, Field

MAX_FIELDS = 200
MAX_VALUE = 200_000  # the raw view posts a whole rules document
UNIT_HINTS = {"percent": "%", "money": "₽", "factor": "×", "points": "points", "ints_percent": "% / % / %",
              "words": "separated by commas"}
FIELD_NAMES = {
    "bp": "Rate", "max_discount": "Discount cap per receipt", "amount": "Amount off", "steps": "Steps",
    "steps_bp": "Discount of the 1st / 2nd / ... item", "n": "n", "m": "m", "buy": "Buy (goods)", "get": "Get (goods)",
    "buy_quantity": "Buy quantity", "get_quantity": "Get quantity", "get_bp": "Discount on what you get",
    "components": "Components", "price": "Set price", "max_share_bp": "Share payable with points",
    "per_receipt": "At most per receipt", "per_day": "At most per member a day", "max_points": "Points cap",
    "points": "Points", "per_amount": "For every", "factor_bp": "Multiplier", "series": "Coupon series",
    "event": "Event", "referrer_points": "Points to the referrer", "issue_coupon": "Coupon series to issue",
    "valid_days": "Valid for (days)",
    "currency": "Currency", "point_value_minor": "One point pays", "max_redeem_share_bp": "Share of a receipt payable with points",
    "anonymous_can_redeem": "An unregistered card may pay with points", "tiers": "Tiers", "default_tier": "Default tier",
    "excluded_skus": "Excluded SKUs", "excluded_categories": "Excluded categories",
    "max_accrual_per_receipt": "At most per receipt (empty: no cap)", "max_accrual_per_day": "At most per member a day (empty: no cap)",
    "counters": "Purchase counters", "pending_days": "Points become active after (days)",
    "sale_max_age_days": "A till's sale may be this old (days)", "offline_sale_max_age_days": "An offline till's sale may be this old (days)",
    "expiry_days": "Points expire after (days)", "return_debt": "Points a return cannot take back",
    "favourite_categories_count": "Favourite categories a shopper picks", "birth_date_known_days": "A birth date counts after (days)",
    "language": "Language of the explanations (ru, en)", "reactivation_after_days": "Inactive after (days)",
    "tier_at_risk_days": "Warn of a tier at risk (days before)", "expiry_notice_days": "Warn of expiring points (days before)",
}
JSON_HINTS = {
    "tiers": '[{"code": "basic", "name": "Basic", "rank": 1, "threshold_spend_minor": 0, "accrual_bp": 300}]',
    "counters": '[{"name": "month", "period": "month"}]',
    "steps": '[{"min_amount": 300000, "bp": 500}]', "buy": '{"categories": ["coffee"]}',
    "get": '{"skus": ["CUP-1"]}', "components": '[{"lines": {"skus": ["BURGER"]}, "quantity": 1}]',
}

RU: dict[str, str] = {
    "Cost: points at their value plus discounts": "Стоимость: баллы по их цене и скидки",
    "any stage": "любой этап", "Calendar table": "Таблица: что когда действует", "Settings saved": "Настройки сохранены",
    "Save the settings": "Сохранить настройки", "Currency": "Валюта", "One point pays": "Один балл оплачивает",
    "Share of a receipt payable with points": "Доля чека, которую можно оплатить баллами",
    "An unregistered card may pay with points": "Незарегистрированная карта может платить баллами",
    "Default tier": "Уровень по умолчанию", "Excluded SKUs": "Исключённые артикулы",
    "Excluded categories": "Исключённые категории", "At most per receipt (empty: no cap)": "Не больше на чек (пусто: без предела)",
    "At most per member a day (empty: no cap)": "Не больше на участника в день (пусто: без предела)",
    "Purchase counters": "Счётчики покупок", "Points become active after (days)": "Баллы становятся активными через (дней)",
    "A till's sale may be this old (days)": "Продажа кассы может быть не старше (дней)",
    "An offline till's sale may be this old (days)": "Продажа офлайн-кассы может быть не старше (дней)",
    "Points expire after (days)": "Баллы сгорают через (дней)", "Points a return cannot take back": "Баллы, которые возврат не может забрать",
    "Favourite categories a shopper picks": "Сколько любимых категорий выбирает покупатель",
    "A birth date counts after (days)": "Дата рождения учитывается через (дней)",
    "Language of the explanations (ru, en)": "Язык пояснений (ru, en)", "Inactive after (days)": "Неактивен через (дней)",
    "Warn of a tier at risk (days before)": "Предупреждать о потере уровня (за дней)",
    "Warn of expiring points (days before)": "Предупреждать о сгорании баллов (за дней)",
    "Program settings": "Настройки программы", "on": "да", "Add a group": "Добавить группу",
    "Rule group": "Группа правил", "Mode": "Режим", "all stack": "все суммируются",
    "first by priority": "первое по приоритету", "best for the shopper": "лучшее для покупателя",
    "Cascade (each discount on what the previous left)": "Каскад (каждая скидка от остатка после предыдущей)",
    "Active group": "Группа включена", "Save the group": "Сохранить группу", "Group saved": "Группа сохранена",
    "discount": "скидки", "limits": "ограничения", "accrual": "начисление", "event": "события", "Name of the rule": "Название правила", "What runs when": "Что когда действует", "Dates": "Даты",
    "all day": "весь день", "days of the month": "числа месяца", "Hours are the store's local time.":
        "Часы — местное время магазина.", "Rules": "Правила", "Rule groups and rules": "Группы правил и правила", "Live version": "Действующая версия",
    "Drafts": "Черновики", "New draft": "Новый черновик", "Version history": "История версий",
    "Restore": "Восстановить", "Version": "Версия", "Comment": "Комментарий", "Author": "Автор",
    "live": "действует", "Group": "Группа", "Stage": "Этап", "Rule": "Правило", "Mechanic": "Механика",
    "Runs": "Когда действует", "always": "всегда", "inactive": "выключено", "Open": "Открыть",
    "Draft": "Черновик", "draft": "черновик", "proposed": "на согласовании", "published": "опубликован",
    "discarded": "удалён", "Edit": "Изменить", "Add a rule": "Добавить правило", "Remove": "Удалить",
    "Changes against the live version": "Изменения относительно действующей версии",
    "No changes yet": "Изменений пока нет", "added": "добавлено", "removed": "удалено", "changed": "изменено",
    "Settings of the program": "Настройки программы", "was": "было", "now": "стало",
    "Replay over past receipts": "Прогон по прошлым чекам", "Days": "Дней", "Receipts at most": "Чеков не больше",
    "Replay": "Прогнать", "Given": "Выдано", "Live, replayed": "Действующие, прогон", "Draft minus live": "Черновик − действующие",
    "Points accrued": "Начислено баллов", "Discounts given": "Дано скидок", "By rule": "По правилам", "By day": "По дням",
    "Day": "День", "Receipts": "Чеки",
    "Propose for publishing": "Отправить на публикацию", "Why (kept with the version)": "Зачем (сохраняется с версией)",
    "Approve and publish": "Согласовать и опубликовать", "Withdraw": "Отозвать", "Discard the draft": "Удалить черновик",
    "Proposed by": "Предложил", "Waits for a second person: another marketer or an admin approves it.":
        "Ждёт второго сотрудника: согласует другой маркетолог или администратор.",
    "You proposed it: another person must approve.": "Вы предложили этот черновик: согласует другой сотрудник.",
    "Raw document (JSON)": "Документ целиком (JSON)", "Save the document": "Сохранить документ",
    "Rule saved": "Правило сохранено", "Rule removed": "Правило удалено", "Draft created": "Черновик создан",
    "Document saved": "Документ сохранён", "Proposed: waits for a second person": "Отправлено: ждёт второго сотрудника",
    "Published": "Опубликовано", "Sent back to editing": "Возвращено на доработку", "Draft discarded": "Черновик удалён",
    "The rules are not valid": "Правила не прошли проверку", "Code": "Код", "Priority": "Приоритет",
    "Active rule": "Правило включено", "Name in Russian": "Название по-русски", "Name in English": "Название по-английски",
    "Description in Russian": "Описание по-русски", "Description in English": "Описание по-английски",
    "When": "Когда", "Valid from": "Действует с", "Valid to": "Действует по", "Weekdays": "Дни недели",
    "Hours (e.g. 18-21)": "Часы (например, 18-21)", "Who": "Кто", "Tiers": "Уровни",
    "Segments": "Сегменты", "Stores": "Магазины", "Channels": "Каналы", "Birthday window (days)": "Окно дня рождения (дни)",
    "Registered members only": "Только зарегистрированные", "Which goods": "Какие товары",
    "Categories": "Категории", "SKUs": "Артикулы", "Brands": "Бренды", "Except categories": "Кроме категорий",
    "Except SKUs": "Кроме артикулов", "Own brand": "Собственная марка", "any": "любые", "yes": "да", "no": "нет",
    "Minimum unit price": "Минимальная цена за штуку", "Condition (JSON, optional)": "Условие (JSON, необязательно)",
    "Show its fields": "Показать поля", "Save the rule": "Сохранить правило", "Back to the draft": "К черновику",
    "separated by commas": "через запятую", "Change the mechanic": "Сменить механику",
    "Rate": "Ставка", "Discount cap per receipt": "Предел скидки на чек", "Amount off": "Размер скидки",
    "Steps": "Ступени", "Discount of the 1st / 2nd / ... item": "Скидка на 1-й / 2-й / ... товар",
    "Buy (goods)": "Покупка (товары)", "Get (goods)": "Подарок (товары)", "Buy quantity": "Сколько купить",
    "Get quantity": "Сколько получить", "Discount on what you get": "Скидка на подарок", "Components": "Состав",
    "Set price": "Цена набора", "Share payable with points": "Доля оплаты баллами", "At most per receipt": "Не больше на чек",
    "At most per member a day": "Не больше на участника в день", "Points cap": "Предел баллов", "Points": "Баллы",
    "For every": "За каждые", "Multiplier": "Множитель", "Coupon series": "Серия купонов", "Event": "Событие",
    "Points to the referrer": "Баллы пригласившему", "Coupon series to issue": "Выдать купон серии",
    "Valid for (days)": "Действуют (дней)", "points": "баллы", "Settings": "Настройки",
    "Cap": "Предел", "The newest receipts of the period were replayed: the period has more than the cap.":
        "Прогнаны самые новые чеки периода: в периоде их больше предела.",
    "could not be priced": "не удалось рассчитать", "Program": "Программа", "Title": "Название",
    "Started from version": "Начат с версии", "Another version went live since this draft started: start a new draft.":
        "После начала черновика опубликована другая версия: начните новый черновик.",
    "Mon": "Пн", "Tue": "Вт", "Wed": "Ср", "Thu": "Чт", "Fri": "Пт", "Sat": "Сб", "Sun": "Вс",
    "Restore as a draft": "Восстановить как черновик", "Errors": "Ошибки", "General": "Общее",
    "Marketing": "Маркетинг", "Edit rules, replay them over past receipts, publish": "Правила: изменить, прогнать по чекам, опубликовать",
    "ms": "мс", "Decided by": "Решил", "Nothing to compare": "Нечего сравнивать",
}
RU.update({title: ru for title, ru in {
    "Percent discount": "Скидка в процентах", "Fixed discount on the receipt": "Скидка суммой на чек",
    "Discount from a receipt amount": "Скидка от суммы чека", "Discount by item order": "Скидка по порядку товара",
    "Every n-th item free": "Каждый n-й товар бесплатно", "Take m, pay for n": "m по цене n", "Buy X, get Y": "Купи X — получи Y",
    "Set price": "Цена набора", "Points pay at most a share": "Баллами — не больше доли", "No payment with points": "Без оплаты баллами",
    "No points": "Без начисления", "Points cap": "Предел баллов", "Accrual rate (percent in points)": "Начисление процентом",
    "Points per item": "Баллы за штуку", "Points per amount spent": "Баллы за каждые N ₽", "Points multiplier": "Множитель баллов",
    "Bonus on the cheapest item": "Бонус на самый дешёвый товар", "Fixed points per receipt": "Фиксированные баллы за чек",
    "Issue a coupon": "Выдать купон", "Event bonus": "Бонус за событие",
}.items()})
HELP_RU = {  # the engine's docstring of each mechanic, for a Russian-speaking marketer
    "percent_discount": "Процент скидки на каждую подходящую позицию (купон, скидка уровня, акция на категорию).",
    "amount_discount": "Фиксированная сумма скидки на подходящие позиции, делится пропорционально их суммам.",
    "threshold_discount": "Высшая ступень, которой достигает сумма подходящих позиций: 5 % от 3 000 ₽, 10 % от 5 000 ₽.",
    "ladder_discount": "k-й подходящий товар (по порядку в чеке) получает k-ю ступень; последняя повторяется.",
    "nth_item_free": "Каждый n-й товар бесплатно; товары по убыванию цены, бесплатен самый дешёвый в каждой n-ке.",
    "m_for_n": "Берёшь m, платишь за n (3 по цене 2): в каждой группе из m товаров m−n самых дешёвых бесплатны.",
    "bogo": "Купи столько-то товаров X — получи столько-то товаров Y со скидкой (100 % — бесплатно).",
    "set_price": "Полный набор (например, бургер + картошка + напиток) стоит фиксированную цену; повторяется.",
    "redeem_share": "Подходящие позиции можно оплатить баллами не больше этой доли (вместо доли программы).",
    "no_redeem": "Подходящие позиции нельзя оплатить баллами.",
    "no_accrual": "На подходящие позиции баллы не начисляются (например, товар уже по акционной цене).",
    "accrual_cap": "Не больше стольких баллов за чек и/или на участника в день (все правила вместе).",
    "percent_points": "Процент от суммы, оплаченной деньгами за подходящие позиции, баллами.",
    "points_per_item": "Фиксированные баллы за штуку подходящей позиции (весовой товар — одна штука).",
    "points_per_amount": "Столько-то баллов за каждые полные N ₽, оплаченные деньгами за подходящие позиции.",
    "multiplier": "Умножает базовые баллы уровня на подходящих позициях (×10 добавляет 9 раз базу).",
    "cheapest_item_bonus": "Дополнительный процент баллами на самую дешёвую подходящую позицию.",
    "fixed_points": "Фиксированный бонус один раз за чек (первая покупка, каждая 5-я покупка, возвращение).",
    "issue_coupon": "Выдать участнику персональный купон этой серии.",
    "event_bonus": "Баллы за событие участника; пригласившему — баллы пригласившему.",
}
for _kind, _text in HELP_RU.items():
    _mechanic = MECHANICS.get(_kind)
    if _mechanic is not None and _mechanic.help:
        RU[_mechanic.help] = _text
i18n.RU.update({k: v for k, v in RU.items() if k not in i18n.RU})
assert set(KIND_NAMES.values()) <= set(RU)


def label(field: Field) -> str:
    return FIELD_NAMES.get(field.name, field.name.replace("_", " ").capitalize())


async def posted(request: Request) -> dict[str, list[str]]:
    """The form as name -> values; a form too big for an editor is refused (400) before anything is read into rules."""
    form = await request.form()
    found: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str) or len(key) > 100 or len(value) > MAX_VALUE:
            raise HTTPException(status_code=400, detail="The form is not valid: a value is too long")
        found.setdefault(key, []).append(value)
    if len(found) > MAX_FIELDS:
        raise HTTPException(status_code=400, detail="The form is not valid: too many fields")
    return found


_MESSAGE = re.compile(r"^(rule|group) '([^']*)': ([a-z_.]+): (.*)$")


def by_field(messages: list[str], code: str, fields: set[str], what: str = "rule") -> tuple[dict[str, str], list[str]]:
    """The engine's messages about this rule, by the form field they name ("rule 'x': effect.bp: ..." -> effect.bp);
    what names no field of the form stays in the general list."""
    placed: dict[str, str] = {}
    general: list[str] = []
    for message in messages:
        found = _MESSAGE.match(message)
        if found and found.group(1) == what and found.group(2) == code:
            field = found.group(3)
            while field and field not in fields:
                field = field.rpartition(".")[0]
            if field:
                placed[field] = (placed[field] + "; " if field in placed else "") + found.group(4)
                continue
            if found.group(3).startswith("effect"):
                placed["effect.kind"] = (placed.get("effect.kind", "") + "; " if "effect.kind" in placed else "") + \
                    f"{found.group(3)}: {found.group(4)}"
                continue
        general.append(message)
    return placed, general


def messages_of(exc: Any) -> list[str]:
    errors = exc.extra.get("errors") if hasattr(exc, "extra") else None
    return [str(m) for m in errors] if errors else [exc.detail]
