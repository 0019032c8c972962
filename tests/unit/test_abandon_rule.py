"""The abandon budget rule (callcenter.domain.abandon): rates, the cap today or over 30 days, the minimum sample."""

from __future__ import annotations

import pytest

from callcenter.domain.abandon import MIN_HUMANS, REGULATORY_CAP, AbandonBudget, over_cap


def test_rates_and_empty_budget() -> None:
    empty = AbandonBudget()
    assert empty.today_rate is None and empty.d30_rate is None
    assert not over_cap(empty)
    b = AbandonBudget(today_humans=200, today_abandoned=4, d30_humans=1000, d30_abandoned=10)
    assert b.today_rate == pytest.approx(0.02) and b.d30_rate == pytest.approx(0.01)


def test_the_first_abandon_of_the_day_does_not_stop_a_campaign_the_second_does() -> None:
    assert REGULATORY_CAP == 0.03 and MIN_HUMANS == 50
    assert not over_cap(AbandonBudget(1, 1, 1, 1))  # 100 % of one call, but judged on at least 50 humans
    assert over_cap(AbandonBudget(2, 2, 2, 2))  # 2 >= 3 % of 50
    assert not over_cap(AbandonBudget(67, 2, 67, 2))  # 2 < 3 % of 67 (2.01)


def test_at_the_cap_counts_as_over_under_does_not() -> None:
    assert over_cap(AbandonBudget(100, 3, 100, 3))  # exactly 3 %
    assert not over_cap(AbandonBudget(101, 3, 101, 3))
    assert over_cap(AbandonBudget(1000, 30, 5000, 30))  # today at 3 %, the 30 days well under
    assert over_cap(AbandonBudget(100, 0, 10000, 300))  # a clean day, but the 30 days are at 3 %
    assert not over_cap(AbandonBudget(100, 0, 10000, 299))
    assert over_cap(AbandonBudget(1000, 21, 1000, 21), 0.02)  # a stricter cap of the caller's


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AbandonBudget(1, 2, 5, 2), "more abandoned"),
        (lambda: AbandonBudget(10, 1, 5, 1), "include today"),
        (lambda: AbandonBudget(-1, 0, 0, 0), "today_humans"),
        (lambda: AbandonBudget(1.5, 0, 2, 0), "today_humans"),  # type: ignore[arg-type]
        (lambda: over_cap(AbandonBudget(), 3), "abandon_cap"),
        (lambda: over_cap((1, 0, 1, 0)), "AbandonBudget"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_a_clear_value_error(build, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        build()
