"""Trading days of the Shanghai Stock Exchange, from the maintained ``exchange_calendars`` package (XSHG).

exchange_calendars records SSE holidays only up to the years the exchange has announced. For a date past
its last recorded session we fall back to weekdays minus ``extra_closures`` from the settings (where an
operator adds next year's closures as soon as the exchange publishes them), and say so in the log once.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from functools import cached_property
from typing import Iterable

log = logging.getLogger(__name__)


class TradingCalendar:
    def __init__(self, extra_closures: Iterable[date | str] = ()) -> None:
        self._extra = {d if isinstance(d, date) else date.fromisoformat(d) for d in extra_closures}
        self._warned = False

    @cached_property
    def _sessions(self) -> tuple[frozenset[date], date, date]:
        import exchange_calendars as xcals

        cal = xcals.get_calendar("XSHG")
        days = frozenset(ts.date() for ts in cal.sessions)
        return days, cal.first_session.date(), cal.last_session.date()

    @property
    def known_until(self) -> date:
        return self._sessions[2]

    def is_trading_day(self, day: date) -> bool:
        if day in self._extra:
            return False
        sessions, first, last = self._sessions
        if first <= day <= last:
            return day in sessions
        if not self._warned:
            log.warning("SSE calendar data ends %s; treating weekdays as trading days after it", last)
            self._warned = True
        return day.weekday() < 5

    def add_trading_days(self, day: date, n: int) -> date:
        """The n-th trading day after (n > 0) or before (n < 0) ``day``; n == 0 gives ``day`` itself."""
        step = 1 if n >= 0 else -1
        remaining = abs(n)
        current = day
        while remaining:
            current += timedelta(days=step)
            if self.is_trading_day(current):
                remaining -= 1
        return current

    def next_trading_day(self, day: date) -> date:
        """``day`` itself when it trades, otherwise the next day that does."""
        while not self.is_trading_day(day):
            day += timedelta(days=1)
        return day
