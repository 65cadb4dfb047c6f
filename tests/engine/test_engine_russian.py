"""Explanations in Russian: what a cashier in Moscow and a shopper in the app read.

Money prints as "1 250,00 ₽" with no-break spaces inside the amount (written "1_250,00_₽" here), so a narrow screen
never splits it; points take their Russian plural (1 балл, 2 балла, 5 баллов).
"""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty_core.engine import (
    Basket,
    CouponInput,
    EventBonus,
    LineFilter,
    MemberEvent,
    Multiplier,
    NthItemFree,
    PercentDiscount,
    PercentPoints,
    RedeemLimitExceeded,
    RedeemShare,
    Targeting,
    ThresholdDiscount,
    ThresholdStep,
    TierDef,
    evaluate_event,
    price,
)
from loyalty_core.engine.language import ru_money, ru_plural
from tests.engine.engine_helpers import (
    MONDAY_NOON,
    applied,
    basket,
    context,
    group,
    line,
    member,
    program,
    rule,
)

NB = "\u00a0"
RUSSIAN_TIERS = [
    TierDef(code="basic", name="Базовый", rank=1, threshold_spend_minor=0, accrual_bp=300),
    TierDef(code="gold", name="Золотой", rank=3, threshold_spend_minor=10_000_000, accrual_bp=700),
]


def rub(text: str) -> str:
    """Write "1_250,00_₽" for what the engine prints with no-break spaces inside the amount."""
    return text.replace("_", NB)


def in_russian(prog, b: Basket, ctx=None, **kw):
    return price(b, ctx or context(member("basic")), prog, lang="ru", **kw)


@pytest.mark.parametrize(
    ("n", "word"),
    [(0, "баллов"), (1, "балл"), (2, "балла"), (4, "балла"), (5, "баллов"), (11, "баллов"), (12, "баллов"),
     (14, "баллов"), (21, "балл"), (22, "балла"), (25, "баллов"), (101, "балл"), (111, "баллов"), (1_000, "баллов")],
)  # fmt: skip
def test_points_take_the_russian_plural(n, word):
    assert ru_plural(n, "балл", "балла", "баллов") == word


def test_roubles_print_with_a_comma_and_the_rouble_sign():
    assert ru_money(125_000) == rub("1_250,00_₽")
    assert ru_money(5) == rub("0,05_₽")
    assert ru_money(123_456_789) == rub("1_234_567,89_₽")
    assert ru_money(10_000, "USD") == rub("100,00_USD")


def test_gold_tier_in_russian():
    prog = program(tiers=RUSSIAN_TIERS)

    result = in_russian(prog, basket(line(1, 100_000), line(2, 25_000)), context(member("gold")))

    assert applied(result, "tier").explanation == rub("Уровень «Золотой»: 7% от 1_250,00_₽ = 87 баллов")
    assert [d.explanation for d in applied(result, "tier").details] == [
        rub("Уровень «Золотой»: 7% от 1_000,00_₽ = 70 баллов"),
        rub("Уровень «Золотой»: 7% от 250,00_₽ = 17 баллов"),
    ]


def test_the_store_language_comes_with_the_context_and_price_can_override_it():
    prog = program(tiers=RUSSIAN_TIERS)
    b = basket(line(1, 30_000))
    shopper = member("gold")

    in_moscow = price(b, context(shopper, lang="ru-RU"), prog)
    asked_for_english = price(b, context(shopper, lang="ru"), prog, lang="en")
    by_default = price(b, context(shopper), prog)
    unknown = price(b, context(shopper, lang="kk"), prog)  # never an error at the till: English

    assert applied(in_moscow, "tier").explanation == rub("Уровень «Золотой»: 7% от 300,00_₽ = 21 балл")
    assert applied(asked_for_english, "tier").explanation == "Золотой tier: 7% on 300.00 RUB = 21 points"
    assert applied(by_default, "tier").explanation == "Золотой tier: 7% on 300.00 RUB = 21 points"
    assert applied(unknown, "tier").explanation == "Золотой tier: 7% on 300.00 RUB = 21 points"


def test_birthday_multiplier_in_russian():
    prog = program(
        group(
            "accrual",
            rule("birthday", Multiplier(factor_bp=100_000), name="День рождения ×10",
                 target=Targeting(birthday_window_days=0)),
        ),
        tiers=RUSSIAN_TIERS,
    )  # fmt: skip
    shopper = member("basic", birth_date=dt.date(1990, 11, 23))

    result = in_russian(prog, basket(line(1, 100_000), line(2, 50_000)), context(shopper))

    assert applied(result, "birthday").explanation == "День рождения ×10: баллы уровня ×10 = +405 баллов"
    assert applied(result, "tier").explanation == rub("Уровень «Базовый»: 3% от 1_500,00_₽ = 45 баллов")


def test_favourite_categories_in_russian():
    favourites = rule(
        "favourites",
        PercentPoints(bp=500),
        name="Любимые категории",
        lines=LineFilter(favourite_categories=True),
    )
    prog = program(group("accrual", favourites), tiers=RUSSIAN_TIERS)
    shopper = member("basic", favourite_categories=["coffee"])

    result = in_russian(
        prog, basket(line(1, 42_000, cats=("coffee",)), line(2, 10_000, cats=("tea",))), context(shopper)
    )

    assert applied(result, "favourites").explanation == rub("Любимые категории: 5% от 420,00_₽ = 21 балл")
    assert applied(result, "favourites").lines == [1]


def test_threshold_discount_in_russian():
    steps = [ThresholdStep(min_amount=300_000, bp=500), ThresholdStep(min_amount=500_000, bp=1000)]
    prog = program(group("discount", rule("big", ThresholdDiscount(steps=steps), name="Большой чек")))

    result = in_russian(prog, basket(line(1, 350_000), line(2, 200_000)))
    small = in_russian(prog, basket(line(1, 100_000)))

    assert applied(result, "big").explanation == rub(
        "Большой чек: скидка от суммы покупки 5_500,00_₽ = -550,00_₽"
    )
    assert [d.explanation for d in applied(result, "big").details] == [
        rub("Большой чек: скидка от суммы покупки 3_500,00_₽ = -350,00_₽"),
        rub("Большой чек: скидка от суммы покупки 2_000,00_₽ = -200,00_₽"),
    ]
    assert [t.reason for t in result.trace if t.rule == "big"] == [rub("скидка 550,00_₽, 2 строки")]
    assert [t.reason for t in small.trace if t.rule == "big"] == ["нет товаров для скидки"]


def test_every_third_item_free_in_russian():
    prog = program(group("discount", rule("third-free", NthItemFree(n=3), name="Третий в подарок")))

    result = in_russian(prog, basket(line(1, 10_000), line(2, 5_000), line(3, 8_000)))

    assert applied(result, "third-free").explanation == rub(
        "Третий в подарок: каждый 3-й товар бесплатно, -50,00_₽"
    )


def test_coupon_in_russian_applied_or_rejected_with_the_reason():
    coupon_rule = rule(
        "welcome10", PercentDiscount(bp=1000), name="WELCOME10", target=Targeting(coupon_codes=["WELCOME10"])
    )
    prog = program(group("discount", coupon_rule))

    used = in_russian(prog, basket(line(1, 60_000), coupons=[CouponInput(code="WELCOME10")]))
    stranger = in_russian(prog, basket(line(1, 60_000), coupons=[CouponInput(code="OTHER")]))
    expired = in_russian(prog, basket(line(1, 60_000), coupons=[CouponInput(code="WELCOME10", valid=False)]))

    assert applied(used, "welcome10").explanation == rub("WELCOME10: скидка 10% от 600,00_₽ = -60,00_₽")
    assert [(c.code, c.status) for c in used.coupons] == [("WELCOME10", "applied")]
    assert [c.reason for c in stranger.coupons] == ["ни одна акция не подходит к этой покупке"]
    assert [c.reason for c in expired.coupons] == ["купон недействителен"]
    assert [t.reason for t in expired.trace if t.rule == "welcome10"] == ["нет действующего купона"]


def test_redemption_limit_in_russian():
    half = rule(
        "half", RedeemShare(max_share_bp=5000), name="Половина баллами", lines=LineFilter(categories=["wine"])
    )
    prog = program(group("limits", half), max_redeem_share_bp=3000)
    b = basket(line(1, 10_000, cats=("wine",)), line(2, 10_000))
    ctx = context(member("basic"), balance=10_000)

    allowed = in_russian(prog, b, ctx)
    with pytest.raises(RedeemLimitExceeded) as too_much:
        in_russian(prog, Basket(lines=b.lines, redeem_points=81), ctx)

    assert allowed.max_redeem_points == 80  # 50 % of 100.00 + 30 % of 100.00
    assert [t.reason for t in allowed.trace if t.rule == "half"] == ["оплата баллами до 50%: 1 строка"]
    assert str(too_much.value) == "на этот чек можно списать максимум 80 баллов"
    assert too_much.value.max_redeem_points == 80


def test_no_card_and_excluded_goods_in_russian():
    result = in_russian(program(), basket(line(1, 10_000), line(2, 5_000, cats=("tobacco",))), context(None))

    assert [t.reason for t in result.trace] == [
        "строка 2: товары-исключения — без скидки, без баллов, без оплаты баллами",
        "нет карты лояльности: баллы не начисляются",
    ]


def test_welcome_and_referral_awards_in_russian():
    welcome = rule(
        "welcome",
        EventBonus(event="first_purchase", points=500, referrer_points=201),
        name="Добро пожаловать",
    )
    prog = program(group("event", welcome))
    newcomer = member("basic", referred_by="m-friend")

    awards = evaluate_event(
        MemberEvent(kind="first_purchase", at=MONDAY_NOON), context(newcomer), prog, lang="ru"
    )

    assert [(a.membership_id, a.explanation) for a in awards] == [
        ("m-1", "Добро пожаловать: 500 баллов"),
        ("m-friend", "Добро пожаловать: 201 балл за приглашённого друга"),
    ]
