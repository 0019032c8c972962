"""The birthday rule (standard library only): the day a birthday is celebrated in a given year.

A client born on 29 February is greeted on 28 February in common years (and on the 29th in leap years), so
they are greeted exactly once every year. The care planner (greetings), the care rules and the dialler's
"birthdays" segment all use these functions.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def celebrated_on(birthday: date, year: int) -> date:
    """The day ``birthday`` is celebrated in ``year``."""
    if (birthday.month, birthday.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def celebrates(birthday: date, day: date) -> bool:
    """Whether ``day`` is the day ``birthday`` is celebrated that year."""
    return celebrated_on(birthday, day.year) == day


def birthdays_celebrated_between(first: date, last: date) -> frozenset[tuple[int, int]]:
    """(month, day) of every birthday celebrated on a day in ``[first, last]``: those days themselves, and
    29 February when a common year's 28 February is among them. Empty when ``last < first``."""
    out: set[tuple[int, int]] = set()
    day = first
    while day <= last:
        out.add((day.month, day.day))
        if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
            out.add((2, 29))
        day += timedelta(days=1)
        if len(out) >= 366:  # every birthday there is
            break
    return frozenset(out)
