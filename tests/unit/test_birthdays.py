"""The one birthday rule (domain/birthdays.py), used by the care planner, the care rules and the dialler's
birthdays segment: 29 February is celebrated on 28 February in common years, on the 29th in leap years."""

from __future__ import annotations

from datetime import date

from callcenter.domain.birthdays import birthdays_celebrated_between, celebrated_on, celebrates

LEAPLING = date(2000, 2, 29)


def test_29_february_in_leap_and_common_years() -> None:
    assert celebrated_on(LEAPLING, 2027) == date(2027, 2, 28)  # common year
    assert celebrated_on(LEAPLING, 2028) == date(2028, 2, 29)  # leap year
    assert celebrated_on(LEAPLING, 2100) == date(2100, 2, 28)  # divisible by 100: common
    assert celebrated_on(LEAPLING, 2000) == date(2000, 2, 29)  # divisible by 400: leap
    assert celebrates(LEAPLING, date(2027, 2, 28)) and not celebrates(LEAPLING, date(2027, 3, 1))
    assert celebrates(LEAPLING, date(2028, 2, 29)) and not celebrates(LEAPLING, date(2028, 2, 28))
    assert celebrates(date(1980, 2, 28), date(2027, 2, 28))  # born on the 28th: the 28th, as always
    assert celebrated_on(date(1980, 11, 28), 2026) == date(2026, 11, 28)


def test_birthdays_celebrated_in_a_range() -> None:
    # a window that ends on a common year's 28 February includes the leaplings (it used to need 1 March too)
    assert (2, 29) in birthdays_celebrated_between(date(2027, 2, 22), date(2027, 2, 28))
    assert (2, 29) not in birthdays_celebrated_between(date(2027, 3, 1), date(2027, 3, 7))
    # in a leap year only the 29th itself
    assert (2, 29) not in birthdays_celebrated_between(date(2028, 2, 22), date(2028, 2, 28))
    assert (2, 29) in birthdays_celebrated_between(date(2028, 2, 29), date(2028, 3, 1))
    assert birthdays_celebrated_between(date(2026, 11, 25), date(2026, 11, 27)) == {(11, 25), (11, 26), (11, 27)}
    assert birthdays_celebrated_between(date(2026, 1, 2), date(2026, 1, 1)) == frozenset()
    assert len(birthdays_celebrated_between(date(2026, 1, 1), date(2030, 1, 1))) == 366
