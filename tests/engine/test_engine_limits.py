"""Paying with points and limits on accrual: shares, balances, caps, excluded goods."""

from __future__ import annotations

import pytest

from loyalty_core.engine import (
    AccrualCap,
    LineFilter,
    NoAccrual,
    NoRedeem,
    PercentDiscount,
    PercentPoints,
    RedeemLimitExceeded,
    RedeemShare,
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


def test_up_to_thirty_percent_of_the_receipt_payable_with_points():
    prog = program()

    result = run(
        prog, basket(line(1, 70_000), line(2, 30_000), redeem=300), context(member("basic"), balance=1_000)
    )

    assert result.max_redeem_points == 300
    assert per_line(result, "redeemed_points") == [210, 90]
    assert per_line(result, "redeemed_amount") == [21_000, 9_000]
    assert per_line(result, "to_pay") == [49_000, 21_000]
    # points accrue on what is paid with money: 3 % of 490.00 + 210.00 = 14.7 + 6.3 = 21
    assert per_line(result, "accrued_points") == [15, 6]


def test_asking_for_more_than_allowed_is_refused_with_the_maximum():
    with pytest.raises(RedeemLimitExceeded) as refused:
        run(program(), basket(line(1, 100_000), redeem=301), context(member("basic"), balance=1_000))

    assert refused.value.max_redeem_points == 300


def test_the_maximum_is_capped_by_the_balance():
    result = run(program(), basket(line(1, 100_000)), context(member("basic"), balance=120))

    assert result.max_redeem_points == 120


def test_no_card_or_unregistered_card_cannot_spend_unless_the_program_allows():
    unregistered = member("basic", registered=False)

    assert run(program(), basket(line(1, 100_000)), context(None, balance=500)).max_redeem_points == 0
    assert run(program(), basket(line(1, 100_000)), context(unregistered, balance=500)).max_redeem_points == 0
    allowed = program(anonymous_can_redeem=True)
    assert run(allowed, basket(line(1, 100_000)), context(unregistered, balance=500)).max_redeem_points == 300


def test_redemption_is_taken_after_discounts():
    prog = program(group("discount", rule("ten-off", PercentDiscount(bp=1000))))

    result = run(prog, basket(line(1, 100_000), redeem=270), context(member("basic"), balance=1_000))

    assert result.max_redeem_points == 270  # 30 % of 900.00
    assert per_line(result, "to_pay") == [63_000]


def test_a_promo_lets_pay_99_percent_of_household_goods_with_points():
    prog = program(
        group(
            "limits",
            rule("household-99", RedeemShare(max_share_bp=9900), lines=LineFilter(categories=["household"])),
        )
    )

    result = run(
        prog,
        basket(line(1, 10_000, cats=("household",)), line(2, 10_000), redeem=129),
        context(member(), balance=1_000),
    )

    assert result.max_redeem_points == 129  # 99.00 + 30.00
    assert per_line(result, "redeemed_amount") == [9_900, 3_000]


def test_odd_kopecks_are_spread_without_exceeding_any_line():
    prog = program(max_redeem_share_bp=10_000, point_value_minor=100)

    result = run(
        prog, basket(line(1, 101), line(2, 102), line(3, 197), redeem=4), context(member(), balance=10)
    )

    assert per_line(result, "redeemed_amount") == [101, 102, 197]
    assert per_line(result, "redeemed_points") == [1, 1, 2]
    assert per_line(result, "to_pay") == [0, 0, 0]


def test_excluded_goods_cannot_be_paid_with_points():
    result = run(
        program(),
        basket(line(1, 100_000), line(2, 100_000, cats=("tobacco",))),
        context(member(), balance=10_000),
    )

    assert result.max_redeem_points == 300


def test_no_redeem_and_no_accrual_on_promo_priced_goods():
    prog = program(
        group(
            "limits",
            rule("promo-no-points", NoAccrual(), lines=LineFilter(skus=["promo"])),
            rule("promo-no-redeem", NoRedeem(), lines=LineFilter(skus=["promo"])),
        )
    )

    result = run(
        prog, basket(line(1, 10_000, sku="promo"), line(2, 10_000)), context(member("basic"), balance=1_000)
    )

    assert result.max_redeem_points == 30
    assert per_line(result, "accrued_points") == [0, 3]


def test_accrual_capped_per_receipt():
    prog = program(
        group("limits", rule("cap", AccrualCap(per_receipt=50))),
        group("accrual", rule("ten", PercentPoints(bp=1000))),
    )

    result = run(prog, basket(line(1, 60_000), line(2, 40_000)), context(member("basic")))

    # 30 (tier) + 100 (rule) = 130 -> 50: split 12 / 38 between tier and rule, then over lines
    assert result.totals.accrued_points == 50
    assert per_line(result, "accrued_points") == [30, 20]
    assert applied(result, "tier").points + applied(result, "ten").points == 50


def test_accrual_capped_per_day_counts_what_was_earned_today():
    prog = program(max_accrual_per_day=100)

    result = run(prog, basket(line(1, 100_000)), context(member("gold"), accrued_today=80))

    assert result.totals.accrued_points == 20
    assert any(t.reason == "capped at 20 points left for today" for t in result.trace)


def test_rule_max_points_caps_only_that_rule():
    prog = program(group("accrual", rule("ten", PercentPoints(bp=1000, max_points=25))))

    result = run(prog, basket(line(1, 100_000)), context(member("basic")))

    assert result.totals.accrued_points == 55
