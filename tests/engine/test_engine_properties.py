"""Properties that hold for any basket and any program built from the mechanics."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_core.engine import (
    AmountDiscount,
    Basket,
    BasketLine,
    Bogo,
    CheapestItemBonus,
    CouponInput,
    EventBonus,
    FixedPoints,
    LadderDiscount,
    LineFilter,
    MemberEvent,
    MForN,
    Multiplier,
    NthItemFree,
    PercentDiscount,
    PercentPoints,
    PointsPerAmount,
    PointsPerItem,
    RedeemLimitExceeded,
    RedeemShare,
    RuleValidationError,
    SetComponent,
    SetPrice,
    Targeting,
    ThresholdDiscount,
    ThresholdStep,
    compile_program,
    evaluate_event,
    price,
    split_largest_remainder,
    validate_program,
)
from loyalty_core.engine.money import BP
from tests.engine.engine_helpers import (
    TIERS,
    UTC,
    context,
    group,
    member,
    program,
    rule,
)

FAST = settings(max_examples=120, deadline=None)
CATS = ["dairy", "bread", "tobacco", "household", "fruit"]


@st.composite
def basket_lines(draw) -> list[BasketLine]:
    lines = []
    for no in range(1, draw(st.integers(1, 8)) + 1):
        weighed = draw(st.booleans())
        qty = draw(st.integers(1, 3_000)) if weighed else draw(st.integers(1, 5)) * 1000
        unit = draw(st.integers(1, 500_000))
        lines.append(
            BasketLine(
                line_no=no,
                sku=draw(st.sampled_from(["tea", "milk", "soap", "cake"])),
                quantity_milli=qty,
                price=unit,
                amount=max(1, unit * qty // 1000),
                category_codes=draw(st.lists(st.sampled_from(CATS), max_size=2, unique=True)),
                own_brand=draw(st.booleans()),
                excluded=draw(st.integers(0, 9)) == 0,
            )
        )
    return lines


DISCOUNTS = st.one_of(
    st.builds(PercentDiscount, bp=st.integers(0, BP)),
    st.builds(AmountDiscount, amount=st.integers(0, 200_000)),
    st.builds(
        ThresholdDiscount,
        steps=st.lists(
            st.builds(ThresholdStep, min_amount=st.integers(0, 500_000), bp=st.integers(0, BP)),
            min_size=1,
            max_size=3,
        ),
    ),
    st.builds(LadderDiscount, steps_bp=st.lists(st.integers(0, BP), min_size=1, max_size=4)),
    st.builds(NthItemFree, n=st.integers(2, 4)),
    st.integers(2, 4).flatmap(lambda m: st.builds(MForN, m=st.just(m), n=st.integers(1, m - 1))),
    st.builds(
        Bogo,
        buy=st.just(LineFilter(skus=["tea"])),
        get=st.just(LineFilter(skus=["tea", "cake"])),
        get_bp=st.integers(1, BP),
    ),
    st.builds(
        SetPrice,
        components=st.just(
            [SetComponent(lines=LineFilter(skus=["milk"])), SetComponent(lines=LineFilter(skus=["cake"]))]
        ),
        price=st.integers(0, 300_000),
    ),
)
ACCRUALS = st.one_of(
    st.builds(PercentPoints, bp=st.integers(0, BP)),
    st.builds(PointsPerItem, points=st.integers(0, 50)),
    st.builds(PointsPerAmount, points=st.integers(0, 50), per_amount=st.integers(1, 100_000)),
    st.builds(Multiplier, factor_bp=st.integers(BP, 10 * BP)),
    st.builds(CheapestItemBonus, bp=st.integers(0, BP)),
    st.builds(FixedPoints, points=st.integers(0, 500)),
)
FILTERS = st.one_of(
    st.none(),
    st.builds(LineFilter, categories=st.lists(st.sampled_from(CATS), max_size=2)),
    st.just(LineFilter(own_brand=True)),
)


@st.composite
def rule_list(draw, effects) -> list:
    return [
        rule(f"r{i}", e, lines=draw(FILTERS), priority=draw(st.integers(0, 3)))
        for i, e in enumerate(draw(st.lists(effects, max_size=4)))
    ]


@st.composite
def cases(draw):
    discount_rules = draw(rule_list(DISCOUNTS))
    accrual_rules = [
        rule(f"a{r.code}", r.effect, lines=r.lines, priority=r.priority) for r in draw(rule_list(ACCRUALS))
    ]
    share_rules = [
        rule(
            "share",
            RedeemShare(max_share_bp=draw(st.integers(0, BP))),
            lines=LineFilter(categories=["household"]),
        )
    ]
    groups = [
        group(
            "discount",
            *discount_rules,
            mode=draw(st.sampled_from(["stack", "first", "best"])),
            cascade=draw(st.booleans()),
        ),
        group("limits", *share_rules),
        group("accrual", *accrual_rules, mode=draw(st.sampled_from(["stack", "first", "best"]))),
    ]
    settings_ = dict(
        max_redeem_share_bp=draw(st.integers(0, BP)), point_value_minor=draw(st.sampled_from([1, 10, 100]))
    )
    shopper = draw(
        st.one_of(st.none(), st.builds(lambda t: member(t), st.sampled_from([t.code for t in TIERS])))
    )
    ctx = context(
        shopper,
        balance=draw(st.integers(0, 100_000)),
        now=dt.datetime(2026, 11, 23, draw(st.integers(0, 23)), tzinfo=UTC),
    )
    return groups, settings_, draw(basket_lines()), ctx, draw(st.floats(0, 1))


def _price_with_some_redemption(groups, settings_, lines, ctx, fraction):
    prog = program(*groups, **settings_)
    first = price(Basket(lines=lines), ctx, prog)
    wanted = int(first.max_redeem_points * fraction)
    return prog, price(Basket(lines=lines, redeem_points=wanted), ctx, prog)


@FAST
@given(cases())
def test_totals_are_the_sums_of_the_lines_and_nothing_goes_negative(case):
    _, result = _price_with_some_redemption(*case)
    for field in ("amount", "discount", "redeemed_points", "redeemed_amount", "to_pay", "accrued_points"):
        assert getattr(result.totals, field) == sum(getattr(li, field) for li in result.lines), field
    for li in result.lines:
        assert 0 <= li.discount <= li.amount
        assert li.to_pay == li.amount - li.discount - li.redeemed_amount >= 0
        assert li.redeemed_points >= 0 and li.accrued_points >= 0
    assert sum(a.discount for a in result.applied) == result.totals.discount
    assert sum(a.points for a in result.applied) == result.totals.accrued_points


@FAST
@given(cases())
def test_excluded_goods_get_nothing(case):
    _, result = _price_with_some_redemption(*case)
    for basket_line, li in zip(case[2], result.lines):
        if basket_line.excluded or "tobacco" in basket_line.category_codes:
            assert (li.discount, li.redeemed_amount, li.accrued_points) == (0, 0, 0)


@FAST
@given(cases())
def test_redemption_never_exceeds_the_share_or_the_balance(case):
    groups, settings_, lines, ctx, _ = case
    prog, result = _price_with_some_redemption(*case)
    share_cap = 0
    for basket_line, li in zip(lines, result.lines):
        if basket_line.excluded or "tobacco" in basket_line.category_codes:
            continue
        share = (
            groups[1].rules[0].effect.max_share_bp
            if "household" in basket_line.category_codes
            else settings_["max_redeem_share_bp"]
        )
        share_cap += (li.amount - li.discount) * share
    assert result.totals.redeemed_amount <= share_cap // BP
    assert result.totals.redeemed_points <= ctx.balance_active
    assert result.totals.redeemed_amount == result.totals.redeemed_points * settings_["point_value_minor"]
    with pytest.raises(RedeemLimitExceeded):
        price(Basket(lines=lines, redeem_points=result.max_redeem_points + 1), ctx, prog)


@FAST
@given(cases())
def test_the_engine_is_deterministic_and_survives_a_json_round_trip(case):
    groups, settings_, lines, ctx, _ = case
    prog, result = _price_with_some_redemption(*case)
    again = compile_program(validate_program(msgspec.json.encode(prog.source)))
    assert price(Basket(lines=lines, redeem_points=result.totals.redeemed_points), ctx, again) == result


@FAST
@given(cases(), st.lists(st.sampled_from(["WELCOME10", "S-1", "bad"]), max_size=2, unique=True))
def test_every_explanation_says_something_in_russian_and_in_english(case, codes):
    groups, settings_, lines, ctx, _ = case
    coupon = rule("coupon", PercentDiscount(bp=500), target=Targeting(coupon_codes=["WELCOME10"]))
    prog = program(*groups, group("discount", coupon, code="coupons"), **settings_)
    coupons = [CouponInput(code=c, valid=c != "bad") for c in codes]
    priced = {lang: price(Basket(lines=lines, coupons=coupons), ctx, prog, lang=lang) for lang in ("ru", "en")}

    for result in priced.values():
        assert all(a.explanation for a in result.applied)
        assert all(d.explanation for a in result.applied for d in a.details)
        assert all(t.reason for t in result.trace)
        assert all(c.reason for c in result.coupons if c.status == "rejected")
    # the language changes the words, never the numbers
    assert priced["ru"].lines == priced["en"].lines
    assert [(a.rule, a.points, a.discount) for a in priced["ru"].applied] == [
        (a.rule, a.points, a.discount) for a in priced["en"].applied
    ]


@FAST
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(["ru", "en"]))
def test_every_event_award_says_something(points, referrer_points, lang):
    bonus = EventBonus(event="first_purchase", points=points, referrer_points=referrer_points)
    prog = program(group("event", rule("welcome", bonus)))
    ctx = context(member(referred_by="m-2"))

    awards = evaluate_event(MemberEvent(kind="first_purchase", at=ctx.now), ctx, prog, lang=lang)

    assert all(a.explanation.startswith("Welcome: ") and a.explanation != "Welcome: " for a in awards)


@FAST
@given(st.lists(DISCOUNTS, min_size=1, max_size=4), basket_lines(), st.booleans())
def test_stacking_modes_behave_as_named(effects, lines, cascade):
    rules = [rule(f"r{i}", e, priority=len(effects) - i) for i, e in enumerate(effects)]
    ctx = context(member())

    def total(mode, chosen=rules):
        return price(
            Basket(lines=lines), ctx, program(group("discount", *chosen, mode=mode, cascade=cascade))
        ).totals.discount

    stacked, first, best = total("stack"), total("first"), total("best")
    singles = [total("stack", [r]) for r in rules]
    assert stacked >= first
    assert best == max(singles)
    assert first == next((s for s in singles if s), 0)


@FAST
@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_largest_remainder_is_exact_and_fair(total, weights):
    parts = split_largest_remainder(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights):
        exact = total * weight / sum(weights)
        assert exact - 1 < part < exact + 1


@FAST
@given(st.text(alphabet="abcdefgh-", min_size=1, max_size=12), st.integers(25, 100))
def test_validation_errors_name_the_rule_and_the_field(code, hour):
    doc = {"groups": [{"code": "g", "name": "G", "stage": "accrual", "rules": [
        {"code": code, "name": "N", "effect": {"kind": "percent_points", "bp": 100}, "schedule": {"hours": [{"start": 1, "end": hour}]}}
    ]}]}  # fmt: skip
    with pytest.raises(RuleValidationError) as error:
        validate_program(doc)
    assert error.value.messages == [f"rule '{code}': schedule.hours: end {hour} is outside 0..24"]


@FAST
@given(st.lists(ACCRUALS, min_size=1, max_size=4), basket_lines())
def test_accrual_stacking_modes_behave_as_named(effects, lines):
    rules = [rule(f"r{i}", e, priority=len(effects) - i) for i, e in enumerate(effects)]
    ctx = context(member("plain"))

    def total(mode, chosen=rules):
        return price(
            Basket(lines=lines), ctx, program(group("accrual", *chosen, mode=mode))
        ).totals.accrued_points

    stacked, first, best = total("stack"), total("first"), total("best")
    singles = [total("stack", [r]) for r in rules]
    assert stacked >= best >= first
    assert best == max(singles)
