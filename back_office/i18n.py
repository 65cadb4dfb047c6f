"""The back office in Russian (default) and English: messages keyed by their English text (a missing entry shows
English), numbers and dates through the personal account's formats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from personal_account import i18n as web_i18n

LANGUAGES = ("ru", "en")

RU: dict[str, str] = {
    "Back office": "Бэк-офис",
    "Kopilka": "Копилка",
    "Sign in": "Войти",
    "Sign out": "Выйти",
    "E-mail": "E-mail",
    "Password": "Пароль",
    "Code from the authenticator app": "Код из приложения-аутентификатора",
    "Sign in with": "Войти через",
    "Wrong e-mail, password or code": "Неверный e-mail, пароль или код",
    "Too many failed attempts: wait 15 minutes or ask an admin": "Слишком много неудачных попыток: подождите 15 минут или обратитесь к администратору",
    "Main menu": "Главное меню",
    "Skip to content": "Перейти к содержимому",
    "Language": "Язык",
    "Members": "Участники",
    "Find a member": "Найти участника",
    "Phone, card, e-mail or name": "Телефон, карта, e-mail или имя",
    "Find": "Найти",
    "Nothing found": "Ничего не найдено",
    "Name": "Имя",
    "Phone": "Телефон",
    "Cards": "Карты",
    "Program": "Программа",
    "Status": "Статус",
    "Approvals": "Согласования",
    "Audit log": "Журнал аудита",
    "Settings": "Настройки",
    "Home": "Главная",
    "Profile": "Профиль",
    "Birth date": "Дата рождения",
    "Consents": "Согласия",
    "Balance": "Баланс",
    "Active": "Активные",
    "Pending": "Ожидают",
    "Tier": "Уровень",
    "Spend in the window": "Покупки за период",
    "Purchases": "Покупки",
    "Points history": "История баллов",
    "Audit trail": "Журнал изменений",
    "Expiring": "Сгорают",
    "Becoming active": "Станут активными",
    "Block": "Заблокировать",
    "Unblock": "Разблокировать",
    "Replace": "Заменить",
    "Reason": "Причина",
    "Points": "Баллы",
    "Adjust points": "Начислить или списать баллы",
    "Adjust": "Провести",
    "Correct the birth date": "Исправить дату рождения",
    "Save": "Сохранить",
    "Approve": "Согласовать",
    "Reject": "Отклонить",
    "Requested by": "Запросил",
    "When": "Когда",
    "Who": "Кто",
    "What": "Что",
    "Subject": "Объект",
    "Before": "Было",
    "After": "Стало",
    "From": "Откуда",
    "Filter": "Фильтр",
    "Since": "С",
    "Until": "По",
    "Action": "Действие",
    "Older": "Раньше",
    "Nothing waits for approval": "Согласований нет",
    "Adjustment limit (points)": "Лимит корректировки (баллы)",
    "Above it a second person approves": "Выше лимита нужно согласование второго сотрудника",
    "Error": "Ошибка",
    "Your roles": "Ваши роли",
    "Receipt": "Чек",
    "Store": "Магазин",
    "Amount": "Сумма",
    "Earned": "Начислено",
    "Paid with points": "Оплачено баллами",
    "Lines": "Позиции",
    "Goodwill": "Компенсация клиенту",
    "Lost purchase": "Не начисленная покупка",
    "Correction of an error": "Исправление ошибки",
    "Fraud": "Мошенничество",
    "Other": "Другое",
    "Lost card": "Карта утеряна",
    "Stolen card": "Карта украдена",
    "Damaged card": "Карта повреждена",
    "Card blocked": "Карта заблокирована",
    "Card unblocked": "Карта разблокирована",
    "Card replaced": "Карта заменена",
    "Points adjusted": "Баллы скорректированы",
    "Above the limit: waits for a second person": "Выше лимита: ждёт согласования второго сотрудника",
    "Birth date corrected": "Дата рождения исправлена",
    "Approved": "Согласовано",
    "Rejected": "Отклонено",
    "Limit saved": "Лимит сохранён",
    "granted": "дано",
    "withdrawn": "отозвано",
    "no consents": "согласий нет",
    "Your role does not allow this page.": "Ваша роль не даёт доступа к этой странице.",
    "The form expired: please try again.": "Форма устарела: попробуйте ещё раз.",
    "Note": "Комментарий",
    "What you can do here": "Что вы можете здесь делать",
    "Marketing and finance pages come in a later release.": "Разделы маркетинга и финансов появятся в следующих версиях.",
}

# the finance reports (back_office/reports.py, loyalty_core/reports)
RU.update({
    "Finance reports": "Финансовые отчёты",
    "Points liability": "Обязательства по баллам",
    "Active and pending points the members hold, in points and money": "Активные и ожидающие баллы участников, в баллах и деньгах",
    "Accrued, redeemed, expired, adjusted": "Начислено, потрачено, сгорело, скорректировано",
    "Every movement of points per day, week or month": "Все движения баллов по дням, неделям или месяцам",
    "Breakage": "Сгорание баллов",
    "Points expired against points accrued": "Сгоревшие баллы к начисленным",
    "Liability by expiry month": "Обязательства по месяцам сгорания",
    "What burns when, if nobody spends it": "Что и когда сгорит, если не потратить",
    "Stores": "Магазины",
    "Accrual and redemption per store": "Начисления и оплата баллами по магазинам",
    "The reports are read from daily sums the worker refreshes every 10 minutes; each page says when.":
        "Отчёты строятся по дневным суммам, которые обновляются каждые 10 минут; на каждой странице указано, на какое время.",
    "Money": "Деньги",
    "Liability before the range": "Обязательства до начала периода",
    "Liability at the end of the range": "Обязательства на конец периода",
    "In money at the point value": "В деньгах по стоимости балла",
    "Sum of account balances": "Сумма балансов счетов",
    "Sum of all ledger days": "Сумма всех дней журнала",
    "Reconciled with the accounts": "Сходится со счетами",
    "Owed by members (debt), not in the liability": "Долг участников (не входит в обязательства)",
    "Figures as of": "Данные на",
    "Period": "Период",
    "End of period": "Конец периода",
    "Liability, points": "Обязательства, баллы",
    "Accrued": "Начислено",
    "Redeemed": "Оплачено баллами",
    "Expired": "Сгорело",
    "Adjusted": "Корректировки",
    "Returns: taken back": "Возвраты: отозвано",
    "Returns: given back": "Возвраты: возвращено",
    "Imported": "Перенесено из прежней системы",
    "Debt repaid": "Погашение долга",
    "Other (merges)": "Прочее (объединения)",
    "Net change": "Изменение",
    "Total": "Итого",
    "Signs": "Знаки",
    "as the points change the liability: + adds, − takes away": "по влиянию на обязательства: + увеличивает, − уменьшает",
    "Breakage, %": "Сгорание, %",
    "Never": "Бессрочно",
    "Expires in": "Сгорают в",
    "Lots": "Партии",
    "No store (adjustments, welcome, imports, expiry)": "Без магазина (корректировки, бонусы, перенос, сгорание)",
    "Store code": "Код магазина",
    "No store": "Без магазина",
    "not yet summed": "ещё не подсчитаны",
    "Group by": "Группировать",
    "day": "по дням",
    "week": "по неделям",
    "month": "по месяцам",
    "All stores": "Все магазины",
    "Show": "Показать",
    "Dates as YYYY-MM-DD, both days included, in the program's time zone.":
        "Даты в формате ГГГГ-ММ-ДД, оба дня включительно, по часовому поясу программы.",
    "Download CSV": "Скачать CSV",
    "Chart": "График",
    "The same numbers are in the table below.": "Те же числа — в таблице ниже.",
    "Nothing in this period": "За этот период ничего нет",
    "yes": "да",
    "NO: the difference is shown above": "НЕТ: расхождение видно выше",
    "Group by: day, week or month": "Группировка: по дням, неделям или месяцам",
    "Since: a date as YYYY-MM-DD": "«С»: дата в формате ГГГГ-ММ-ДД",
    "Until: a date as YYYY-MM-DD": "«По»: дата в формате ГГГГ-ММ-ДД",
    "Since must not be after Until": "Дата «С» не может быть позже даты «По»",
    "The dates must lie between 2000-01-01 and a year from today": "Даты — не раньше 01.01.2000 и не дальше года вперёд",
    "At most 366 days by day: group by week or month": "По дням — не больше 366 дней: сгруппируйте по неделям или месяцам",
    "At most 3 years by week: group by month": "По неделям — не больше 3 лет: сгруппируйте по месяцам",
    "At most 10 years": "Не больше 10 лет",
    "Store: choose one from the list": "Магазин: выберите из списка",
    "No such program": "Такой программы нет",
    "No program yet": "Программ пока нет",
    "No such report": "Такого отчёта нет",
})


def pick(value: str | None) -> str:
    return value if value in LANGUAGES else "ru"


class Formats:
    def __init__(self, lang: str, timezone: str = "Europe/Moscow") -> None:
        self.lang, self.timezone = lang, timezone

    def t(self, text: str) -> str:
        return RU.get(text, text) if self.lang == "ru" else text

    def points(self, value: int) -> str:
        return web_i18n.number(value, self.lang)

    def money(self, minor: int) -> str:
        return web_i18n.money(minor, self.lang)

    def date(self, value: Any) -> str:
        return web_i18n.date(value, self.lang, self.timezone) if value else "—"

    def datetime(self, value: dt.datetime | None) -> str:
        return web_i18n.datetime(value, self.lang, self.timezone) if value else "—"

    def phone(self, value: str | None) -> str:
        return web_i18n.phone_display(value) if value else "—"
