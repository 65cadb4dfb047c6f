"""When a tier is lost as the 12-month window moves on (the dashboard's tier-at-risk hint): pure cases and a property."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from loyalty_core.members.tiers import first_drop

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def day(n: int) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def test_the_first_purchase_to_leave_that_takes_the_spend_under_the_threshold_sets_the_date() -> None:
    # 120 000 ₽ in the window, Gold from 100 000 ₽: 15 000 leaves on day 5 (still Gold), 10 000 on day 12 (under)
    assert first_drop(12_000_000, 10_000_000, [(day(12), 1_000_000), (day(5), 1_500_000)]) == (day(12), 500_000)


def test_nothing_leaving_or_enough_left_is_no_risk() -> None:
    assert first_drop(12_000_000, 10_000_000, []) is None
    assert first_drop(12_000_000, 10_000_000, [(day(3), 2_000_000)]) is None  # exactly the threshold keeps it


def test_a_legacy_carry_ending_counts_like_a_purchase_leaving() -> None:
    assert first_drop(12_000_000, 10_000_000, [(day(10), 12_000_000)]) == (day(10), 10_000_000)


@given(st.integers(0, 10**9), st.integers(1, 10**9),
       st.lists(st.tuples(st.integers(0, 60), st.integers(0, 10**8)), max_size=20))
def test_the_date_is_the_first_moment_under_and_buying_the_amount_keeps_the_tier_then(spend: int, threshold: int,
                                                                                    leaving: list[tuple[int, int]]) -> None:
    drops = [(day(d), amount) for d, amount in leaving]
    found = first_drop(spend, threshold, drops)
    ordered = sorted(drops)
    left = [spend - sum(a for _, a in ordered[:i + 1]) for i in range(len(ordered))]
    if found is None:
        assert all(x >= threshold for x in left)
        return
    at, needed = found
    i = next(i for i, x in enumerate(left) if x < threshold)
    assert at == ordered[i][0] and needed == threshold - left[i] > 0
    assert all(x >= threshold for x in left[:i])
