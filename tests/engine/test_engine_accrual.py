"""Accrual mechanics: points on what is paid with money, floored once per receipt."""

from __future__ import annotations

import datetime as dt

from loyalty_core.engine import (
    Arith,
    CheapestItemBonus,
    Compare,
    FixedPoints,
    HourRange,
    IssueCoupon,
    LineFilter,
    Multiplier,
    PercentPoints,
    PointsPerAmount,
    PointsPerItem,
    Schedule,
    StoreInfo,
    Targeting,
    Var,
)
from tests.engine.engine_helpers import (
    UTC,
    applied,
    basket,
    context,
    group,
    line,
    member,
    per_line,
    program,
    rule,
    run,
    weighed,
)


def test_gold_tier_earns_seven_percent_and_says_so():
    prog = program()

    result = run(prog, basket(line(1, 100_000), line(2, 25_000)), context(member("gold")))

    # 70 + 17.5 = 87.5 -> 87: floored once per receipt, not per line
    assert per_line(result, "accrued_points") == [70, 17]
    assert applied(result, "tier").explanation == "Gold tier: 7% on 1 250.00 RUB = 87 points"
    assert [d.explanation for d in applied(result, "tier").details] == [
        "Gold tier: 7% on 1 000.00 RUB = 70 points",
        "Gold tier: 7% on 250.00 RUB = 17 points",
    ]


def test_floor_per_receipt_keeps_what_per_line_flooring_would_lose():
    # ten lines of 10.00 RUB earn 0.7 points each: per line that would floor to 0 each
    result = run(program(), basket(*(line(n, 1_000) for n in range(1, 11))), context(member("gold")))

    assert result.totals.accrued_points == 7
    assert per_line(result, "accrued_points") == [1] * 7 + [0] * 3  # ties go to the earlier lines


def test_no_card_no_points():
    result = run(program(), basket(line(1, 100_000)), context(None))

    assert result.totals.accrued_points == 0
    assert result.trace[-1].reason == "no loyalty card: no points"


def test_percent_points_on_all_goods():
    prog = program(group("accrual", rule("five-percent", PercentPoints(bp=500))))

    result = run(prog, basket(line(1, 100_000), line(2, 25_050)))

    # 50 + 12.525 = 62.525 -> 62
    assert per_line(result, "accrued_points") == [50, 12]


def test_fixed_points_per_item_count_pieces_and_one_per_weighed_line():
    prog = program(
        group("accrual", rule("dairy-10", PointsPerItem(points=10), lines=LineFilter(categories=["dairy"])))
    )

    result = run(
        prog,
        basket(
            line(1, 23_700, qty=3, cats=("yogurt", "dairy")),
            weighed(2, 1_234, 89_000, cats=("cheese", "dairy")),
            line(3, 5_000),
        ),
    )

    assert per_line(result, "accrued_points") == [30, 10, 0]
    assert applied(result, "dairy-10").details[0].explanation == "Dairy 10: 10 points x 3 pcs = 30 points"


def test_points_for_each_full_thousand_roubles():
    prog = program(group("accrual", rule("per-1000", PointsPerAmount(points=10, per_amount=100_000))))

    result = run(prog, basket(line(1, 150_000), line(2, 105_000)))

    # 2 550.00 RUB -> 2 full thousands -> 20 points, spread 11.76 / 8.24 by largest remainder
    assert per_line(result, "accrued_points") == [12, 8]


def test_birthday_multiplies_the_tier_points_by_ten():
    prog = program(
        group(
            "accrual",
            rule("birthday-x10", Multiplier(factor_bp=100_000), target=Targeting(birthday_window_days=0)),
        )
    )
    birthday = dt.date(1990, 11, 23)

    party = run(
        prog, basket(line(1, 100_000), line(2, 50_000)), context(member("basic", birth_date=birthday))
    )
    next_day = run(
        prog,
        basket(line(1, 100_000), line(2, 50_000)),
        context(member("basic", birth_date=dt.date(1990, 11, 24))),
    )

    assert per_line(party, "accrued_points") == [300, 150]  # 3 % = 45, x10 = 450
    assert applied(party, "birthday-x10").explanation == "Birthday x10: tier points x10 = +405 points"
    assert per_line(next_day, "accrued_points") == [30, 15]


def test_happy_hours_are_read_in_the_stores_time_zone():
    happy = rule(
        "happy-hours",
        Multiplier(factor_bp=20_000),
        schedule=Schedule(weekdays=[1, 2, 3, 4, 5], hours=[HourRange(start=9, end=12)]),
    )
    prog = program(group("accrual", happy))
    moscow = StoreInfo(code="MSK-1", timezone="Europe/Moscow")
    vladivostok = StoreInfo(code="VVO-1", timezone="Asia/Vladivostok")
    at = dt.datetime(2026, 11, 23, 8, 30, tzinfo=UTC)  # 11:30 in Moscow, 18:30 in Vladivostok

    in_moscow = run(prog, basket(line(1, 100_000)), context(member("basic"), now=at, store=moscow))
    in_vladivostok = run(prog, basket(line(1, 100_000)), context(member("basic"), now=at, store=vladivostok))

    assert per_line(in_moscow, "accrued_points") == [60]
    assert per_line(in_vladivostok, "accrued_points") == [30]
    assert [t.reason for t in in_vladivostok.trace if t.rule == "happy-hours"] == ["outside its hours"]


def test_days_of_month_multiplier():
    payday = rule("payday-x3", Multiplier(factor_bp=30_000), schedule=Schedule(month_days=[1, 15]))
    prog = program(group("accrual", payday))

    on_15th = run(
        prog,
        basket(line(1, 100_000)),
        context(member("basic"), now=dt.datetime(2026, 12, 15, 10, tzinfo=UTC)),
    )
    on_16th = run(
        prog,
        basket(line(1, 100_000)),
        context(member("basic"), now=dt.datetime(2026, 12, 16, 10, tzinfo=UTC)),
    )

    assert per_line(on_15th, "accrued_points") == [90]
    assert per_line(on_16th, "accrued_points") == [30]


def test_favourite_categories_earn_extra():
    prog = program(
        group(
            "accrual", rule("favourites", PercentPoints(bp=500), lines=LineFilter(favourite_categories=True))
        )
    )

    result = run(
        prog,
        basket(line(1, 20_000, cats=("milk", "dairy")), line(2, 10_000, cats=("bread",))),
        context(member("basic", favourite_categories=["dairy"])),
    )

    assert per_line(result, "accrued_points") == [16, 3]  # 3 % + 5 % on dairy


def test_own_brand_earns_extra():
    prog = program(
        group("accrual", rule("own-brand", PercentPoints(bp=200), lines=LineFilter(own_brand=True)))
    )

    result = run(prog, basket(line(1, 50_000, own_brand=True), line(2, 50_000)), context(member("basic")))

    assert per_line(result, "accrued_points") == [25, 15]


def test_bonus_on_the_cheapest_item():
    prog = program(group("accrual", rule("cheapest", CheapestItemBonus(bp=1000))))

    result = run(prog, basket(line(1, 30_000), line(2, 9_990), line(3, 15_000)))

    assert per_line(result, "accrued_points") == [0, 9, 0]  # 10 % of 99.90


def test_first_purchase_bonus():
    first = rule(
        "first-purchase",
        FixedPoints(points=200),
        condition=Compare(left=Var(name="member.purchases_count"), cmp="==", right=0),
    )
    prog = program(group("accrual", first))

    newcomer = run(prog, basket(line(1, 60_000), line(2, 40_000)), context(member(purchases_count=0)))
    regular = run(prog, basket(line(1, 60_000), line(2, 40_000)), context(member(purchases_count=3)))

    assert per_line(newcomer, "accrued_points") == [120, 80]
    assert applied(newcomer, "first-purchase").explanation == "First purchase: bonus 200 points"
    assert regular.totals.accrued_points == 0


def test_every_fifth_purchase_in_the_month():
    fifth = Compare(
        left=Arith(fn="%", left=Arith(fn="+", left=Var(name="member.counter.month"), right=1), right=5),
        cmp="==",
        right=0,
    )
    prog = program(
        group("accrual", rule("every-5th", FixedPoints(points=100), condition=fifth)),
        counters=[{"name": "month"}],
    )

    fifth_visit = run(prog, basket(line(1, 10_000)), context(member(purchases_in_period={"month": 4})))
    fourth_visit = run(prog, basket(line(1, 10_000)), context(member(purchases_in_period={"month": 3})))

    assert fifth_visit.totals.accrued_points == 100
    assert fourth_visit.totals.accrued_points == 0


def test_reactivation_after_ninety_days_away():
    back = rule(
        "welcome-back",
        FixedPoints(points=300),
        condition=Compare(left=Var(name="member.days_since_last_purchase"), cmp=">=", right=90),
    )
    prog = program(group("accrual", back))
    now = dt.datetime(2026, 11, 23, 9, tzinfo=UTC)

    away = run(
        prog, basket(line(1, 10_000)), context(member(last_purchase_at=now - dt.timedelta(days=100)), now=now)
    )
    regular = run(
        prog, basket(line(1, 10_000)), context(member(last_purchase_at=now - dt.timedelta(days=30)), now=now)
    )
    never = run(prog, basket(line(1, 10_000)), context(member(), now=now))

    assert away.totals.accrued_points == 300
    assert regular.totals.accrued_points == 0
    assert never.totals.accrued_points == 0  # no last purchase: the fact is missing, the comparison is false


def test_extra_points_for_gold_only():
    prog = program(
        group("accrual", rule("gold-extra", PercentPoints(bp=100), target=Targeting(tiers=["gold"])))
    )

    gold = run(prog, basket(line(1, 100_000)), context(member("gold")))
    silver = run(prog, basket(line(1, 100_000)), context(member("silver")))

    assert per_line(gold, "accrued_points") == [80]
    assert per_line(silver, "accrued_points") == [50]


def test_store_and_region_bonus():
    prog = program(
        group(
            "accrual",
            rule("spb-region", PercentPoints(bp=100), target=Targeting(regions=["spb"])),
            rule("new-store", PercentPoints(bp=200), target=Targeting(stores=["SPB-7"])),
        )
    )
    new_store = StoreInfo(code="SPB-7", region="spb")

    there = run(prog, basket(line(1, 100_000)), context(member("basic"), store=new_store))
    elsewhere = run(prog, basket(line(1, 100_000)), context(member("basic")))

    assert per_line(there, "accrued_points") == [60]
    assert per_line(elsewhere, "accrued_points") == [30]


def test_channel_bonus_in_the_app():
    prog = program(
        group("accrual", rule("app-orders", PercentPoints(bp=200), target=Targeting(channels=["app"])))
    )

    app = run(prog, basket(line(1, 100_000)), context(member("basic"), channel="app"))
    shop = run(prog, basket(line(1, 100_000)), context(member("basic"), channel="store"))

    assert (app.totals.accrued_points, shop.totals.accrued_points) == (50, 30)


def test_partner_bank_card_bonus():
    prog = program(
        group(
            "accrual",
            rule(
                "partner-bank", PercentPoints(bp=200), target=Targeting(payment_types=["partner_bank_card"])
            ),
        )
    )

    partner = run(prog, basket(line(1, 100_000), paid_with="partner_bank_card"), context(member("basic")))
    cash = run(prog, basket(line(1, 100_000), paid_with="cash"), context(member("basic")))

    assert (partner.totals.accrued_points, cash.totals.accrued_points) == (50, 30)


def test_segment_bonus():
    prog = program(
        group(
            "accrual", rule("young-families", PercentPoints(bp=400), target=Targeting(segments=["families"]))
        )
    )

    result = run(prog, basket(line(1, 100_000)), context(member("basic", segments=["families"])))

    assert result.totals.accrued_points == 70


def test_coupon_gives_extra_points():
    from loyalty_core.engine import CouponInput

    prog = program(
        group("accrual", rule("double-coupon", PercentPoints(bp=300), target=Targeting(coupon_series=["X2"])))
    )

    result = run(
        prog,
        basket(line(1, 100_000), coupons=[CouponInput(code="X2-777", series="X2", personal=True)]),
        context(member("basic")),
    )

    assert result.totals.accrued_points == 60
    assert result.coupons[0].status == "applied"


def test_a_big_receipt_issues_a_personal_coupon():
    big = rule(
        "next-visit",
        IssueCoupon(series="NEXT10"),
        condition=Compare(left=Var(name="basket.amount"), cmp=">=", right=300_000),
    )
    prog = program(group("accrual", big))

    big_receipt = run(prog, basket(line(1, 300_000)))
    small_receipt = run(prog, basket(line(1, 299_999)))

    assert big_receipt.issued_coupons == ["NEXT10"]
    assert small_receipt.issued_coupons == []


def test_excluded_goods_earn_nothing():
    result = run(
        program(), basket(line(1, 100_000), line(2, 100_000, cats=("tobacco",))), context(member("basic"))
    )

    assert per_line(result, "accrued_points") == [30, 0]


def test_best_for_customer_among_accrual_rules_and_first_by_priority():
    rules = (
        rule("three", PercentPoints(bp=300), priority=5),
        rule("five", PercentPoints(bp=500), priority=1),
    )

    best = run(program(group("accrual", *rules, mode="best")), basket(line(1, 100_000)))
    first = run(program(group("accrual", *rules, mode="first")), basket(line(1, 100_000)))

    assert best.totals.accrued_points == 50
    assert first.totals.accrued_points == 30
