"""Time and the exchange's calendar: the trading calendar and the wall clock, as the use cases see them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol


class Calendar(Protocol):
    def is_trading_day(self, day: date) -> bool: ...

    def add_trading_days(self, day: date, n: int) -> date: ...


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Aware UTC now."""


class Monotonic(Protocol):
    """Seconds on a clock that only moves forward (the event loop's, or a virtual one in accelerated runs)."""

    def time(self) -> float: ...
