"""Russian (default) and English: a small message dictionary and the shopper's money, number and date formats.

Messages are keyed by their English text, so a missing Russian entry shows English rather than a key.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from loyalty_core.engine.language import points_word

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
NBSP = "\u00a0"  # between digits groups and before the currency sign: the line never breaks inside a sum

RU: dict[str, str] = {
    "Kopilka": "Копилка",
    "My card": "Моя карта",
    "Purchases": "Покупки",
    "Points history": "История баллов",
    "Favourite categories": "Любимые категории",
    "Offers and coupons": "Акции и купоны",
    "Profile": "Профиль",
    "Cards": "Карты",
    "Sign out": "Выйти",
    "Sign in": "Войти",
    "Main menu": "Главное меню",
    "Skip to content": "Перейти к содержимому",
    "Sign in or register": "Вход и регистрация",
    "Phone or e-mail": "Телефон или e-mail",
    "We send a one-time code. New here? The same code registers you.":
        "Пришлём одноразовый код. Впервые у нас? Этот же код вас зарегистрирует.",
    "Get a code": "Получить код",
    "Sign in with": "Войти через",
    "Enter the code": "Введите код",
    "We sent a 6-digit code to": "Мы отправили 6-значный код на",
    "Code": "Код",
    "Your name (for a new card)": "Ваше имя (для новой карты)",
    "I agree to receive offers by": "Согласен получать предложения по",
    "Continue": "Продолжить",
    "Send a new code": "Отправить новый код",
    "Use another phone or e-mail": "Другой телефон или e-mail",
    "Points": "Баллы",
    "points": "баллов",
    "Balance": "Баланс",
    "Pending": "Ожидают начисления",
    "available from": "станут доступны",
    "Expiring soon": "Скоро сгорят",
    "expire on": "сгорят",
    "Nothing expires soon.": "В ближайшие 60 дней ничего не сгорает.",
    "Nothing pending.": "Нет ожидающих баллов.",
    "Show this code at the till": "Покажите этот код на кассе",
    "Card": "Карта",
    "Tier": "Уровень",
    "Spent": "Покупки на",
    "to the next tier": "до следующего уровня",
    "The top tier: thank you!": "Максимальный уровень — спасибо, что вы с нами!",
    "Add to Apple Wallet": "Добавить в Apple Wallet",
    "Add to Google Wallet": "Добавить в Google Wallet",
    "Google Wallet is not set up for this program.": "Google Wallet для этой программы не настроен.",
    "Invite a friend": "Пригласите друга",
    "Your code": "Ваш код",
    "Link to share": "Ссылка для приглашения",
    "Latest purchases": "Последние покупки",
    "All purchases": "Все покупки",
    "No purchases yet.": "Покупок пока нет.",
    "Receipt": "Чек",
    "Store": "Магазин",
    "Date": "Дата",
    "Total": "Сумма",
    "Discount": "Скидка",
    "Paid with points": "Оплачено баллами",
    "To pay": "К оплате",
    "Earned": "Начислено",
    "Item": "Товар",
    "Qty": "Кол-во",
    "Price": "Цена",
    "returned": "возвращено",
    "Why": "Почему",
    "No promotions applied to this receipt.": "К этому чеку акции не применялись.",
    "cancelled": "отменён",
    "confirmed": "проведён",
    "Older": "Раньше",
    "Newest": "К новым",
    "Back to purchases": "К покупкам",
    "No movements yet.": "Движений по баллам пока нет.",
    "accrue": "Начисление",
    "activate": "Баллы стали доступны",
    "redeem": "Списание",
    "return_clawback": "Возврат покупки",
    "return_refund": "Возврат баллов",
    "expire": "Сгорание",
    "adjust": "Корректировка",
    "import": "Перенос баллов",
    "transfer": "Перенос баллов",
    "pending": "ожидают",
    "active": "активна",
    "Choose up to": "Выберите до",
    "categories: they earn extra points all month.": "категорий: по ним начисляется больше баллов весь месяц.",
    "You can change the choice once a calendar month.": "Выбор можно менять раз в календарный месяц.",
    "Next change from": "Следующая смена — с",
    "Chosen for the month of": "Выбрано на месяц с",
    "Save my choice": "Сохранить выбор",
    "No categories to choose from yet.": "Категорий для выбора пока нет.",
    "Saved.": "Сохранено.",
    "Offers": "Акции",
    "No offers right now.": "Сейчас акций нет.",
    "with a coupon": "по купону",
    "until": "до",
    "from": "с",
    "Coupons": "Купоны",
    "No coupons yet.": "Купонов пока нет.",
    "used": "использован",
    "Name": "Имя",
    "Birth date": "Дата рождения",
    "Language": "Язык",
    "Phone": "Телефон",
    "E-mail": "E-mail",
    "Save": "Сохранить",
    "Messages we may send": "Какие сообщения можно присылать",
    "SMS": "SMS",
    "Push notifications": "Push-уведомления",
    "Save consents": "Сохранить согласия",
    "Devices": "Устройства",
    "No devices with notifications.": "Нет устройств с уведомлениями.",
    "Remove": "Удалить",
    "registered": "подключено",
    "Delete my account": "Удалить аккаунт",
    "Your personal data is erased and your points are lost. Receipts stay anonymous for the accounts.":
        "Личные данные будут удалены, баллы пропадут. Чеки останутся в учёте обезличенными.",
    "Type DELETE to confirm": "Введите УДАЛИТЬ для подтверждения",
    "Delete for good": "Удалить навсегда",
    "Your account was deleted.": "Аккаунт удалён.",
    "Block a lost card": "Заблокировать потерянную карту",
    "Blocked cards stop working at the till at once; the points stay yours.":
        "Заблокированная карта сразу перестаёт работать на кассе, баллы остаются у вас.",
    "Block": "Заблокировать",
    "Get a new card": "Выпустить новую карту",
    "A new card number keeps your points, tier and history.":
        "Новый номер карты сохраняет баллы, уровень и историю.",
    "Your cards": "Ваши карты",
    "blocked": "заблокирована",
    "replaced": "заменена",
    "emitted": "выпущена",
    "virtual": "виртуальная",
    "plastic": "пластиковая",
    "replaced by": "заменена на",
    "Reason": "Причина",
    "lost": "потеряна",
    "The card is blocked. Get a new card to keep collecting points.":
        "Карта заблокирована. Выпустите новую, чтобы продолжать копить баллы.",
    "Page not found": "Страница не найдена",
    "Something went wrong": "Что-то пошло не так",
    "Back to my card": "На главную",
    "This page does not exist or is not yours.": "Такой страницы нет или она не ваша.",
    "We could not finish this. Nothing was changed; try again in a minute.":
        "Не получилось. Ничего не изменилось — попробуйте через минуту.",
    "This is unavailable for a moment. Nothing was changed; try again in a minute.":
        "Сейчас это недоступно. Ничего не изменилось — попробуйте через минуту.",
    "The form expired: please try again.": "Форма устарела — попробуйте ещё раз.",
    "Please sign in.": "Пожалуйста, войдите.",
    "Updated live": "Обновляется сам",
    "Wrong or expired code.": "Неверный или устаревший код.",
    "This sign-in has expired or was started in another browser. Please try again.":
        "Этот вход устарел или был начат в другом браузере. Попробуйте ещё раз.",
    "Sign-in was cancelled at the provider. Try again or sign in with a code.":
        "Вход отменён на стороне провайдера. Попробуйте ещё раз или войдите по коду.",
    "The provider did not confirm your e-mail or phone. Sign in with a code instead.":
        "Провайдер не подтвердил ваш e-mail или телефон. Войдите по коду.",
    "The sign-in service is not answering. Try again in a minute or sign in with a code.":
        "Сервис входа не отвечает. Попробуйте через минуту или войдите по коду.",
    "We could not sign you in with the provider. Please try again or sign in with a code.":
        "Не удалось войти через провайдера. Попробуйте ещё раз или войдите по коду.",
    "Too many attempts; try again later.": "Слишком много попыток, попробуйте позже.",
    "That is not a phone number or an e-mail address.": "Это не похоже на телефон или e-mail.",
    "Welcome!": "Добро пожаловать!",
    "You are signed out.": "Вы вышли.",
    "Card blocked.": "Карта заблокирована.",
    "Card confirmed.": "Карта подтверждена.",
    "It is my card": "Это моя карта",
    "Linked to your phone at": "Привязана к вашему телефону:",
    "a till": "на кассе",
    "the call centre": "в колл-центре",
    "an import": "при переносе базы",
    "Its points cannot be spent with it until you confirm it. Were you handed this card? If not, block it.":
        "Списать баллы по ней нельзя, пока вы её не подтвердите. Вам выдали эту карту? Если нет, заблокируйте её.",
    "New card issued:": "Выпущена новая карта:",
    "Removed.": "Удалено.",
    "Hello": "Здравствуйте",
    "Per page": "На странице",
    "Page": "Страница",
    "Menu": "Меню",
    "Sign in to see your points.": "Войдите, чтобы увидеть свои баллы.",
    "Download the card for Apple Wallet": "Скачать карту для Apple Wallet",
    "Pass": "Карта в кошельке",
    "Error": "Ошибка",
    "The address contains a character that is not allowed (NUL).": "В адресе недопустимый символ (NUL).",
    "The form contains a character that is not allowed (NUL).": "В форме недопустимый символ (NUL).",
    "A value in the request is outside what can be stored (too large, or a character that is not allowed)":
        "Значение в запросе нельзя сохранить (слишком большое или с недопустимым символом)",
    "Choose categories from the list.": "Выберите категории из списка.",
    "Add a plastic card": "Добавить пластиковую карту",
    "Card number": "Номер карты",
    "Secret code from the card": "Секретный код с карты",
    "Add the card": "Добавить карту",
    "The secret code is printed on the card or its envelope. The card's points become yours.":
        "Секретный код напечатан на карте или её конверте. Баллы карты станут вашими.",
    "Card added:": "Карта добавлена:",
    "Check the card number and the secret.": "Проверьте номер карты и секретный код.",
    "This card belongs to another member.": "Эта карта принадлежит другому участнику.",
    "The secret does not match this card.": "Секретный код не подходит к этой карте.",
    "There is no such card in this program.": "Такой карты в программе нет.",
    "This card is blocked and cannot be added.": "Карта заблокирована, добавить её нельзя.",
    "Too many attempts; try again in an hour.": "Слишком много попыток — попробуйте через час.",
    "To correct your birth date, contact support.": "Чтобы исправить дату рождения, обратитесь в поддержку.",
    "The birth date can be set once.": "Дату рождения можно указать один раз.",
    "The birth date is already set; to correct it, contact support":
        "Дата рождения уже указана; чтобы исправить её, обратитесь в поддержку",
    "We keep a keyed hash of your phone and e-mail (not the phone or e-mail themselves), only so the welcome bonus is given once per phone and e-mail.":
        "Мы храним только ключевой хеш вашего телефона и e-mail (не сами телефон и e-mail), чтобы приветственный бонус начислялся один раз на телефон и e-mail.",
    "The welcome bonus is given once per phone and e-mail: for that we keep a keyed hash of them (not the contacts themselves), even after an account is deleted.":
        "Приветственный бонус начисляется один раз на телефон и e-mail: для этого мы храним их ключевой хеш (не сами контакты), в том числе после удаления аккаунта.",
}

CATALOGUE: dict[str, dict[str, str]] = {"ru": RU, "en": {}}

_MONTHS_RU = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")
_CURRENCY_SIGNS = {"RUB": "₽", "EUR": "€", "USD": "$", "KZT": "₸", "BYN": "Br"}


def pick_language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def translate(language: str, text: str) -> str:
    return CATALOGUE.get(language, {}).get(text, text)


def group_digits(value: int, language: str) -> str:
    text = f"{abs(value):,}"
    text = text.replace(",", NBSP) if language == "ru" else text
    return ("-" if value < 0 else "") + text


def number(value: int, language: str) -> str:
    return group_digits(value, language)


def money(minor: int, language: str, currency: str = "RUB") -> str:
    """1234567 kopecks -> '12 345,67 ₽' (ru) or '₽12,345.67' (en); integer arithmetic only."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    symbol = _CURRENCY_SIGNS.get(currency, currency)
    if language == "ru":
        return f"{sign}{group_digits(whole, 'ru')},{cents:02d}{NBSP}{symbol}"
    return f"{sign}{symbol}{group_digits(whole, 'en')}.{cents:02d}"


def quantity(milli: int, language: str) -> str:
    whole, frac = divmod(milli, 1000)
    if not frac:
        return group_digits(whole, language)
    text = f"{whole}.{frac:03d}".rstrip("0")
    return text.replace(".", ",") if language == "ru" else text


def date(value: dt.date | dt.datetime | None, language: str, timezone: str = "Europe/Moscow") -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(ZoneInfo(timezone)).date()
    months = _MONTHS_RU if language == "ru" else _MONTHS_EN
    return f"{value.day} {months[value.month - 1]} {value.year}"


def datetime(value: dt.datetime | None, language: str, timezone: str = "Europe/Moscow") -> str:
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(timezone))
    return f"{date(local.date(), language)}, {local:%H:%M}"


# --- what the issue 16 pass added: plurals, errors with values, names per language ------------------

RU.update({
    "Nothing expires in the next 60 days.": "В ближайшие 60 дней ничего не сгорает.",
    "Card": "Карта",
    "Offers": "Акции",
    "Sign-out and more": "Выход и другое",
    "More": "Ещё",
    "My cards": "Мои карты",
    "Card number for typing": "Номер карты для ввода вручную",
    "The code changes every 30 seconds: a screenshot will not work at the till.":
        "Код меняется каждые 30 секунд — скриншот на кассе не сработает.",
    "Your session has ended. Sign in again to see your card.": "Сеанс завершён. Войдите снова, чтобы увидеть карту.",
    "Sign in again": "Войти снова",
    "Happy birthday!": "С днём рождения!",
    "Your birthday is coming": "Скоро ваш день рождения",
    "Your tier": "Ваш уровень",
    "of every purchase back in points": "от каждой покупки возвращается баллами",
    "Only": "Осталось всего",
    "to reach": "до уровня",
    "You reached the tier": "Вы достигли уровня",
    "Every day": "Каждый день",
    "Always": "Без срока",
    "On your birthday": "В ваш день рождения",
    ": they earn extra points all month.": ": по ним начисляется больше баллов весь месяц.",
    "for bringing a friend": "за приглашённого друга",
    "Balance moved from the old programme": "Перенос баланса из прежней программы",
    "What you get": "Что вы получите",
    "Choose favourite categories": "Выбрать любимые категории",
    "Favourite categories earn more": "Любимые категории — больше баллов",
    "Points history": "История баллов",
    "All movements of points": "Все движения баллов",
    # receipt
    "Paid in money": "Оплачено деньгами",
    "Paid in points": "Оплачено баллами",
    "Points earned": "Начислено баллов",
    "No points": "Баллы не начислены",
    "is not part of the programme": "не участвует в программе",
    "This item is not part of the programme": "Этот товар не участвует в программе",
    "the purchase was cancelled": "покупка отменена",
    "the item was returned": "товар возвращён",
    "paid in full with points": "полностью оплачено баллами",
    "Returned": "Возвращено",
    "Returned money": "Возвращено деньгами",
    "Points taken back": "Баллы списаны при возврате",
    "Points given back": "Баллы возвращены",
    "Points kept": "Баллов осталось с покупки",
    "Money after returns": "Итого после возврата",
    "The purchase was cancelled: its points were taken back and points paid were returned.":
        "Покупка отменена: начисленные баллы списаны, оплаченные баллами — возвращены.",
    "How the points add up": "Как сложились баллы",
    "Base points of your tier": "Базовые баллы вашего уровня",
    "Promotions on this receipt": "Акции в этом чеке",
    "In all": "Итого",
    "lines": "строки",
    "Line": "Строка",
    "Price": "Цена",
    "Discount": "Скидка",
    # flows
    "Confirm blocking": "Подтвердите блокировку",
    "Block card": "Заблокировать карту",
    "Why are you blocking it?": "Почему вы блокируете карту?",
    "I lost it": "Потеряна",
    "It was stolen": "Украдена",
    "It is damaged": "Повреждена",
    "stolen": "украдена",
    "damaged": "повреждена",
    "Once blocked, the card no longer works at the till. This cannot be undone; your points stay and you can get a new card.":
        "После блокировки карта перестанет работать на кассе. Отменить это нельзя; баллы останутся, можно выпустить новую карту.",
    "Yes, block the card": "Да, заблокировать",
    "Cancel": "Отмена",
    "Saving locks your choice until": "После сохранения выбор нельзя будет изменить до",
    "You will lose": "Вы потеряете",
    "including pending": "включая ожидающие",
    "Welcome back": "С возвращением",
    "Welcome to Kopilka!": "Добро пожаловать в Копилку!",
    "Tell us your name and which messages you want. You can change this later in your profile.":
        "Как вас зовут и какие сообщения вам присылать? Это можно изменить позже в профиле.",
    "Your name": "Ваше имя",
    "Skip": "Пропустить",
    "Attempts left:": "Осталось попыток:",
    "Wrong code.": "Неверный код.",
    "Too many wrong codes: this code no longer works. Request a new one.":
        "Слишком много неверных попыток: этот код больше не действует. Запросите новый.",
    "The code has expired or was not requested. Request a new one.":
        "Код истёк или не запрашивался. Запросите новый.",
    "You can request a new code in": "Новый код можно запросить через",
    "seconds": "с",
    "Too many codes were sent. You can request a new one in": "Отправлено слишком много кодов. Новый можно запросить через",
    "minutes": "мин",
    "We sent a new code.": "Мы отправили новый код.",
    "Invited by a friend": "Вас пригласил друг",
    "invites you to Kopilka": "приглашает вас в Копилку",
    "You get": "Вы получите",
    "your friend gets": "ваш друг получит",
    "Join and get points": "Присоединиться",
    "This invitation link is not valid. You can still join.": "Эта ссылка-приглашение недействительна, но вы всё равно можете присоединиться.",
    "points for joining": "за регистрацию",
    "points when you make your first purchase": "после вашей первой покупки",
    "That is not a plausible birth date.": "Это не похоже на дату рождения.",
    "The address has a value that is not allowed.": "В адресе недопустимое значение.",
    "This card is not one of yours.": "Это не ваша карта.",
    "This card was already replaced.": "Эта карта уже заменена.",
    "This card is already blocked.": "Эта карта уже заблокирована.",
    "This device is not one of yours.": "Это не ваше устройство.",
    "We could not do this. Check the form and try again.": "Не получилось. Проверьте данные и попробуйте ещё раз.",
    "Language saved.": "Язык сохранён.",
    "Install": "Установить",
    "demo starting balance": "стартовые баллы демо-версии",
    "due": "срок настал",
    "Base points of your tier": "Базовые баллы уровня",
    "points taken back": "списано",
    "points given back": "возвращено баллами",
    "Limit of points per receipt": "Ограничение баллов на чек",
    "Open the menu of your browser and choose «Add to Home Screen» to open the card like an app.":
        "В меню браузера выберите «На экран „Домой“», чтобы открывать карту как приложение.",
})


def plural(n: int, language: str, forms_ru: tuple[str, str, str], forms_en: tuple[str, str]) -> str:
    """The word after a number: plural('1 друг присоединился') rules for Russian, one/other for English."""
    from loyalty_core.engine.language import ru_plural

    if language == "ru":
        return ru_plural(n, *forms_ru)
    return forms_en[0] if abs(n) == 1 else forms_en[1]


def localized(names: dict[str, str] | None, fallback: str, language: str) -> str:
    """A rules-document text per language (`names: {ru, en}`); the document's own `name` when a language is missing."""
    if names:
        return names.get(language) or fallback or next(iter(names.values()), "")
    return fallback


# --- issue 16, the last pass: sessions ended elsewhere, tier banners, operator reasons, error pages -----------

RU.update({
    "Sign out on every device": "Выйти на всех устройствах",
    "You reached {tier}": "Вы перешли на уровень «{tier}»",
    "Got it": "Понятно",
    "Note from our support team": "Комментарий службы поддержки",
    "Temporarily unavailable": "Временно недоступно",
    "Try again": "Попробовать снова",
    "A gift from our support team": "Подарок от службы поддержки",
    "Points for a purchase the card missed": "Баллы за покупку, не учтённую на карте",
    "Correction of an error": "Исправление ошибки",
    "Points taken back after a check": "Списание по итогам проверки",
    "Adjusted by our support team": "Корректировка службой поддержки",
    "blocked by our support team": "заблокирована службой поддержки",
    "Spend {amount} more by {by} to keep {tier}": "Чтобы сохранить уровень «{tier}», купите ещё на {amount} до {by}",
})


_ERRORS: list[tuple[re.Pattern[str], Callable[[re.Match[str], str], str]]] = []


def _error(pattern: str) -> Callable[[Callable[[re.Match[str], str], str]], Callable[[re.Match[str], str], str]]:
    def register(render: Callable[[re.Match[str], str], str]) -> Callable[[re.Match[str], str], str]:
        _ERRORS.append((re.compile(pattern), render))
        return render
    return register


@_error(r"^choose between 1 and (\d+) categories$")
def _choose_between(m: re.Match[str], lang: str) -> str:
    n = int(m[1])
    if lang == "ru":
        return f"Выберите от 1 до {n} {plural(n, 'ru', ('категории', 'категорий', 'категорий'), ('', ''))}."
    return f"Choose between 1 and {n} {'category' if n == 1 else 'categories'}."


@_error(r"^Favourite categories can be changed once a month; next change from (\d{4}-\d\d-\d\d)$")
def _once_a_month(m: re.Match[str], lang: str) -> str:
    day = date(dt.date.fromisoformat(m[1]), lang)
    if lang == "ru":
        return f"Любимые категории можно менять раз в месяц; следующая смена — с {day}."
    return f"Favourite categories can be changed once a month; the next change is from {day}."


_FIXED_ERRORS = {
    r"^not selectable as favourite: .*$": "Choose categories from the list.",
    r"^birth_date is not a plausible birth date$": "That is not a plausible birth date.",
    r"^Card \S+ is not one of your cards$": "This card is not one of yours.",
    r"^Card \S+ was already replaced$": "This card was already replaced.",
    r"^Card \S+ is (blocked|replaced)$": "This card is already blocked.",
    r"^device \d+ is not one of yours$": "This device is not one of yours.",
    r"^Validation failed for .*$": "The address has a value that is not allowed.",
    r"^Too many attempts; try again in \d+ s$": "Too many attempts; try again later.",
}


def error_text(text: str, language: str) -> str:
    """A message for the shopper in their language: the catalogue, the known messages with values, and a
    general sentence rather than English on the Russian site for anything else (details stay in the log)."""
    text = text.strip()
    if language in CATALOGUE and text in CATALOGUE[language] or language == "en" and text in RU:
        return translate(language, text)
    for pattern, render in _ERRORS:
        if m := pattern.match(text):
            return render(m, language)
    for pattern, fixed in _FIXED_ERRORS.items():
        if re.match(pattern, text):
            return translate(language, fixed)
    if language == "ru" and re.search(r"[A-Za-z]{3}", text) and not re.search(r"[А-Яа-яЁё]", text):
        return RU["We could not do this. Check the form and try again."]
    return text


def phone_display(value: str) -> str:
    """+79991234567 -> '+7 999 123-45-67' (other countries: the international format)."""
    try:
        import phonenumbers

        number = phonenumbers.parse(value, "RU")
    except Exception:  # an e-mail or something odd: as it is
        return value
    if number.country_code == 7 and len(str(number.national_number)) == 10:
        d = str(number.national_number)
        return f"+7{NBSP}{d[:3]}{NBSP}{d[3:6]}-{d[6:8]}-{d[8:]}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
