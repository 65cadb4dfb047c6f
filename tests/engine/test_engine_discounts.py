"""Discount mechanics, each a small story with exact per-line amounts (kopecks)."""

from __future__ import annotations

from loyalty_core.engine import (
    AmountDiscount,
    Bogo,
    CouponInput,
    LadderDiscount,
    LineFilter,
    MForN,
    NthItemFree,
    PercentDiscount,
    SetComponent,
    SetPrice,
    Targeting,
    ThresholdDiscount,
    ThresholdStep,
)
from tests.engine.engine_helpers import (
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
)


def test_threshold_discount_takes_the_highest_step_the_receipt_reaches():
    steps = [ThresholdStep(min_amount=300_000, bp=500), ThresholdStep(min_amount=500_000, bp=1000)]
    prog = program(group("discount", rule("big-receipt", ThresholdDiscount(steps=steps))))

    result = run(prog, basket(line(1, 350_000), line(2, 200_000)))

    assert per_line(result, "discount") == [35_000, 20_000]
    assert per_line(result, "to_pay") == [315_000, 180_000]
    assert (
        applied(result, "big-receipt").explanation
        == "Big receipt: receipt discount on 5 500.00 RUB = -550.00 RUB"
    )


def test_threshold_not_reached_gives_nothing_and_says_why():
    steps = [ThresholdStep(min_amount=300_000, bp=500)]
    prog = program(group("discount", rule("big-receipt", ThresholdDiscount(steps=steps))))

    result = run(prog, basket(line(1, 100_000)))

    assert result.totals.discount == 0
    assert [t.reason for t in result.trace if t.rule == "big-receipt"] == ["nothing to discount"]


def test_percent_discount_spreads_the_floored_receipt_total_by_largest_remainder():
    prog = program(group("discount", rule("ten-off", PercentDiscount(bp=1000))))

    # 10 % of 33.33 + 33.33 + 33.34 = 10.00 exactly; per line 3.333 / 3.333 / 3.334
    result = run(prog, basket(line(1, 3333), line(2, 3333), line(3, 3334)))

    assert per_line(result, "discount") == [333, 333, 334]
    assert result.totals.discount == 1000


def test_cascade_discounts_each_next_on_what_the_previous_left():
    rules = (
        rule("first-10", PercentDiscount(bp=1000), priority=2),
        rule("then-10", PercentDiscount(bp=1000), priority=1),
    )

    cascade = run(program(group("discount", *rules, cascade=True)), basket(line(1, 100_000)))
    flat = run(program(group("discount", *rules, cascade=False)), basket(line(1, 100_000)))

    assert per_line(cascade, "discount") == [19_000]  # 10 % then 10 % of 900.00
    assert per_line(flat, "discount") == [20_000]  # both on 1 000.00
    assert [a.discount for a in cascade.applied] == [10_000, 9_000]


def test_ladder_discount_by_item_position():
    ladder = LadderDiscount(steps_bp=[0, 1000, 2000])
    prog = program(group("discount", rule("ladder", ladder)))

    # 1st item 0 %, 2nd 10 %, 3rd and later 20 %
    result = run(prog, basket(line(1, 10_000), line(2, 10_000), line(3, 20_000, qty=2)))

    assert per_line(result, "discount") == [0, 1_000, 4_000]  # 20 % of 2 x 100.00


def test_every_third_item_free_gives_away_the_cheapest():
    prog = program(group("discount", rule("third-free", NthItemFree(n=3))))

    result = run(prog, basket(line(1, 10_000), line(2, 5_000), line(3, 8_000)))

    assert per_line(result, "discount") == [0, 5_000, 0]
    assert (
        applied(result, "third-free").details[0].explanation == "Third free: every 3rd item free, -50.00 RUB"
    )


def test_three_for_two_on_one_line_of_six():
    prog = program(group("discount", rule("3-for-2", MForN(m=3, n=2), lines=LineFilter(skus=["tea"]))))

    result = run(prog, basket(line(1, 59_940, qty=6, sku="tea"), line(2, 10_000)))

    assert per_line(result, "discount") == [19_980, 0]  # two of six at 99.90 free


def test_bogo_buy_shampoo_get_the_conditioner_free():
    effect = Bogo(buy=LineFilter(categories=["shampoo"]), get=LineFilter(categories=["conditioner"]))
    prog = program(group("discount", rule("bogo", effect)))

    result = run(
        prog,
        basket(
            line(1, 45_000, cats=("shampoo", "hair")),
            line(2, 30_000, cats=("conditioner", "hair")),
            line(3, 25_000, cats=("conditioner", "hair")),
        ),
    )

    # one shampoo bought -> the cheaper conditioner is the gift
    assert per_line(result, "discount") == [0, 0, 25_000]


def test_bogo_same_goods_makes_the_cheaper_half_free():
    effect = Bogo(buy=LineFilter(categories=["socks"]), get=LineFilter(categories=["socks"]))
    prog = program(group("discount", rule("bogo", effect)))

    result = run(
        prog,
        basket(*(line(no, amount, cats=("socks",)) for no, amount in [(1, 100), (2, 90), (3, 50), (4, 40)])),
    )

    assert per_line(result, "discount") == [0, 0, 50, 40]


def test_fixed_price_for_a_set_spreads_the_saving_over_the_set():
    components = [
        SetComponent(lines=LineFilter(skus=["burger"])),
        SetComponent(lines=LineFilter(skus=["fries"])),
        SetComponent(lines=LineFilter(skus=["drink"])),
    ]
    prog = program(group("discount", rule("combo", SetPrice(components=components, price=39_900))))

    result = run(
        prog,
        basket(
            line(1, 25_000, sku="burger"),
            line(2, 12_000, sku="fries"),
            line(3, 10_000, sku="drink"),
            line(4, 5_000),
        ),
    )

    # 470.00 -> 399.00: 71.00 off, 3776.6 / 1812.8 / 1510.6 -> largest remainder
    assert per_line(result, "discount") == [3_776, 1_813, 1_511, 0]
    assert sum(per_line(result, "to_pay")[:3]) == 39_900


def test_incomplete_set_gets_no_price():
    components = [
        SetComponent(lines=LineFilter(skus=["burger"])),
        SetComponent(lines=LineFilter(skus=["fries"])),
    ]
    prog = program(group("discount", rule("combo", SetPrice(components=components, price=30_000))))

    result = run(prog, basket(line(1, 25_000, sku="burger", qty=1)))

    assert result.totals.discount == 0


def test_amount_discount_never_takes_a_line_below_zero():
    prog = program(group("discount", rule("minus-500", AmountDiscount(amount=50_000))))

    result = run(prog, basket(line(1, 20_000), line(2, 10_000)))

    assert per_line(result, "discount") == [20_000, 10_000]
    assert per_line(result, "to_pay") == [0, 0]


def test_excluded_goods_get_no_discount():
    prog = program(group("discount", rule("ten-off", PercentDiscount(bp=1000))))

    result = run(
        prog, basket(line(1, 10_000), line(2, 30_000, cats=("tobacco",)), line(3, 5_000, excluded=True))
    )

    assert per_line(result, "discount") == [1_000, 0, 0]


def test_shared_promo_code_and_personal_coupon_each_unlock_their_rule():
    prog = program(
        group(
            "discount",
            rule("promo-code", PercentDiscount(bp=1000), target=Targeting(coupon_codes=["WELCOME10"])),
            rule("personal", AmountDiscount(amount=10_000), target=Targeting(coupon_series=["BDAY-500"])),
        )
    )
    coupons = [
        CouponInput(code="WELCOME10"),
        CouponInput(code="X7Q-991", series="BDAY-500", personal=True),
        CouponInput(code="OLD-1", series="BDAY-500", valid=False, reason="expired"),
        CouponInput(code="SUMMER", series="SUMMER"),
    ]

    result = run(prog, basket(line(1, 60_000), line(2, 40_000), coupons=coupons))

    # 10 % (6000 / 4000), then 100.00 spread by the lines' original amounts (non-cascade)
    assert per_line(result, "discount") == [12_000, 8_000]
    assert [(c.code, c.status, c.reason) for c in result.coupons] == [
        ("WELCOME10", "applied", None),
        ("X7Q-991", "applied", None),
        ("OLD-1", "rejected", "expired"),
        ("SUMMER", "rejected", "no promotion applies to this basket"),
    ]


def test_coupon_rule_does_not_fire_without_its_coupon():
    prog = program(
        group(
            "discount",
            rule("promo-code", PercentDiscount(bp=1000), target=Targeting(coupon_codes=["WELCOME10"])),
        )
    )

    result = run(
        prog, basket(line(1, 60_000), coupons=[CouponInput(code="WELCOME10", valid=False, reason="used up")])
    )

    assert result.totals.discount == 0
    assert [t.reason for t in result.trace if t.rule == "promo-code"] == ["no valid coupon for it"]


def test_first_by_priority_applies_only_the_top_rule():
    prog = program(
        group(
            "discount",
            rule("small", PercentDiscount(bp=500), priority=10),
            rule("big", PercentDiscount(bp=2000), priority=1),
            mode="first",
        )
    )

    result = run(prog, basket(line(1, 10_000)))

    assert per_line(result, "discount") == [500]
    assert [t.reason for t in result.trace if t.rule == "big"] == ["displaced by small (first)"]


def test_best_for_customer_applies_the_biggest_discount():
    prog = program(
        group(
            "discount",
            rule("small", PercentDiscount(bp=500), priority=10),
            rule("big", PercentDiscount(bp=2000), priority=1),
            rule("bogo", NthItemFree(n=2)),
            mode="best",
        )
    )

    result = run(prog, basket(line(1, 10_000), line(2, 1_000)))

    assert per_line(result, "discount") == [2_000, 200]  # 20 % of 110.00 beats one 10.00 item free
    assert [a.rule for a in result.applied] == ["big"]


def test_segment_discount_for_students_only():
    prog = program(
        group("discount", rule("students", PercentDiscount(bp=1000), target=Targeting(segments=["students"])))
    )

    student = run(prog, basket(line(1, 10_000)), context(member(segments=["students"])))
    other = run(prog, basket(line(1, 10_000)), context(member(segments=["pensioners"])))
    no_card = run(prog, basket(line(1, 10_000)), context(None))

    assert per_line(student, "discount") == [1_000]
    assert other.totals.discount == 0
    assert no_card.totals.discount == 0
