"""Russian (default) and English: a small message dictionary and the shopper's money, number and date formats.

Messages are keyed by their English text, so a missing Russian entry shows English rather than a key.
"""

from __future__ import annotations

import datetime as dt
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
    "Send a new code": "Отправить код ещё раз",
    "Use another phone or e-mail": "Другой телефон или e-mail",
    "Points": "Баллы",
    "points": "баллов",
    "Balance": "Баллы",
    "Pending": "Ожидают начисления",
    "available from": "станут доступны",
    "Expiring soon": "Скоро сгорят",
    "expire on": "сгорят",
    "Nothing expires soon.": "Ближайшее время ничего не сгорает.",
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
    "friends joined": "друзей присоединились",
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
    "active": "активные",
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
