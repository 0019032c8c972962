"""A simulated exchange behind the trading-gateway port.

* Instruments: ``instruments.csv`` in this package (code, name, ST flag, listing day, a base close).
* Quotes: a pure function of (seed, code, day, time). Daily closes walk from the base close one trading day at
  a time (±3 % a day, within the limits); inside a day the last price is a Brownian bridge from the previous
  close to the day's close over 240 one-minute steps of continuous trading, clamped to the limits and rounded
  to the tick. No state: every process sees the same prices at the same instant.
* Matching (lazily, whenever orders, fills or status are asked for, up to the time given): a limit buy fills
  when the last price is at or below its price, a sell when at or above, at the last price, at most the step's
  seeded volume per step (partial fills). Opening-auction orders first trade at 09:30, closing-auction orders
  at 15:00. A market order trades what the current step offers; the rest is cancelled. Open orders expire at
  ``end_of_day``.
* The book lives in the engine's database (``sim_orders``, ``sim_fills``), so the CLI and the hotline in other
  processes see one exchange.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.orders import (
    Instrument,
    OrderRules,
    Quote,
    board_of,
    limit_pct,
    price_limits,
)
from callcenter.ports.calendar import Calendar
from callcenter.ports.trading import Fill, GatewayAck, GatewayOrderState, MarketQuote, NewOrder
from callcenter.store.db import run_in_transaction
from callcenter.store.models import SimFill, SimOrder

STEPS = 240  # one-minute steps of continuous trading: 09:30-11:30, 13:00-15:00 (the closing auction is step 240)
DAILY_SIGMA = 0.03
INTRADAY_SIGMA = 0.012


@dataclass(frozen=True)
class Listed:
    instrument: Instrument
    base_close_li: int


def load_instruments() -> list[Listed]:
    """The shipped instrument list."""
    text = resources.files("callcenter.adapters").joinpath("instruments.csv").read_text(encoding="utf-8")
    out = []
    for row in csv.DictReader(text.splitlines()):
        code = row["code"]
        inst = Instrument(code, row["name"], board_of(code), row["st"] == "1", date.fromisoformat(row["listed_on"]))
        out.append(Listed(inst, int(Decimal(row["base_close"]) * 1000)))
    return out


def step_of(local: datetime) -> int:
    """The price step at local time: 0 until 09:30, 120 over lunch, 240 from 15:00 (the close)."""
    t = local.hour * 60 + local.minute
    if t < 9 * 60 + 30:
        return 0
    if t < 11 * 60 + 30:
        return t - (9 * 60 + 30)
    if t < 13 * 60:
        return 120
    if t < 15 * 60:
        return 120 + t - 13 * 60
    return STEPS


def first_step_for(local: datetime) -> int:
    """Where an order entered at ``local`` first trades: auction orders at the open / the close."""
    t = local.time()
    if t < time(9, 30):
        return 0
    if time(14, 57) <= t:
        return STEPS
    return step_of(local)


class SimulatedExchange:
    def __init__(self, sessions: sessionmaker[Session], calendar: Calendar, rules: OrderRules, tz: ZoneInfo,
                 *, seed: int = 7, instruments: list[Listed] | None = None, anchor: date = date(2026, 11, 2)) -> None:
        self._sessions = sessions
        self._calendar = calendar
        self._rules = rules
        self._tz = tz
        self._seed = seed
        self._anchor = anchor
        listed = instruments if instruments is not None else load_instruments()
        self._listed = {item.instrument.code: item for item in listed}
        self._closes: dict[str, dict[date, int]] = {}

    # ------------------------------------------------------------------ instruments and quotes
    def instruments(self) -> list[Instrument]:
        return [item.instrument for item in self._listed.values()]

    def instrument(self, code: str) -> Instrument | None:
        item = self._listed.get(code)
        return item.instrument if item else None

    def _rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256(":".join(str(p) for p in (self._seed, *parts)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _days_listed(self, inst: Instrument, day: date) -> int | None:
        if inst.listed_on is None or day < inst.listed_on:
            return None if inst.listed_on is None else 1
        if (day - inst.listed_on).days > 60:
            return None
        n, d = 0, inst.listed_on
        while d <= day:
            if self._calendar.is_trading_day(d):
                n += 1
            d += timedelta(days=1)
        return n

    def _limits(self, inst: Instrument, day: date, prev: int) -> tuple[int | None, int | None]:
        return price_limits(prev, inst, limit_pct(inst, self._rules, day, self._days_listed(inst, day)))

    def prev_close(self, code: str, day: date) -> int:
        """The close of the trading day before ``day`` (the base close up to the anchor day)."""
        item = self._listed[code]
        if day <= self._anchor:
            return item.base_close_li
        closes = self._closes.setdefault(code, {})
        if day in closes:
            return closes[day]
        d, prev = self._anchor, item.base_close_li
        while d < day:
            if self._calendar.is_trading_day(d):
                prev = self._close_of(item.instrument, d, prev)
            d += timedelta(days=1)
            closes[d] = prev
        return prev

    def _close_of(self, inst: Instrument, day: date, prev: int) -> int:
        change = self._rng(inst.code, day, "close").gauss(0, DAILY_SIGMA)
        return self._clamp(inst, day, prev, prev * (1 + change))

    def _clamp(self, inst: Instrument, day: date, prev: int, value: float) -> int:
        up, down = self._limits(inst, day, prev)
        hi = up if up is not None else prev * 3
        lo = down if down is not None else max(inst.tick_li, prev // 3)
        ticks = round(value / inst.tick_li)
        return int(min(hi, max(lo, ticks * inst.tick_li)))

    @lru_cache(maxsize=256)
    def _path(self, code: str, day: date) -> tuple[int, ...]:
        inst = self._listed[code].instrument
        prev = self.prev_close(code, day)
        close = self._close_of(inst, day, prev)
        rng = self._rng(code, day, "path")
        walk = [0.0]
        for _ in range(STEPS):
            walk.append(walk[-1] + rng.gauss(0, INTRADAY_SIGMA / math.sqrt(STEPS)))
        target = math.log(close / prev)
        out = []
        for m in range(STEPS + 1):
            bridge = walk[m] - walk[STEPS] * m / STEPS
            out.append(self._clamp(inst, day, prev, prev * math.exp(target * m / STEPS + bridge)))
        out[STEPS] = close
        return tuple(out)

    def _volume(self, code: str, day: date, step: int) -> int:
        return 100 * self._rng(code, day, step, "volume").randint(1, 50)

    def quote(self, code: str, at: datetime) -> MarketQuote:
        item = self._listed[code]
        local = at.astimezone(self._tz)
        day = local.date()
        if not self._calendar.is_trading_day(day):  # a closed day shows the last session's close
            last_day = day
            while not self._calendar.is_trading_day(last_day):
                last_day -= timedelta(days=1)
            prev = self.prev_close(code, last_day)
            close = self._path(code, last_day)[STEPS]
            up, down = self._limits(item.instrument, last_day, prev)
            return MarketQuote(code, Quote(prev, close, up, down), at)
        prev = self.prev_close(code, day)
        up, down = self._limits(item.instrument, day, prev)
        last = prev if local.time() < time(9, 30) else self._path(code, day)[step_of(local)]
        return MarketQuote(code, Quote(prev, last, up, down), at)

    # ------------------------------------------------------------------ orders
    def place(self, order: NewOrder) -> GatewayAck:
        def work(s: Session) -> GatewayAck:
            existing = s.get(SimOrder, order.reference)
            if existing is not None:
                return GatewayAck(existing.reference, existing.status, existing.reject_code)  # type: ignore[arg-type]
            local = order.at.astimezone(self._tz)
            status, code = "open", ""
            if order.code not in self._listed:
                status, code = "rejected", "unknown_code"
            s.add(SimOrder(reference=order.reference, code=order.code, side=order.side, kind=order.kind,
                           quantity=order.quantity, price_li=order.price_li, status=status, reject_code=code,
                           trade_date=local.date(), first_step=first_step_for(local), placed_at=order.at))
            s.flush()
            if status == "open":
                self._match(s, s.get_one(SimOrder, order.reference), order.at)
            return GatewayAck(order.reference, status, code)  # type: ignore[arg-type]

        return run_in_transaction(self._sessions, work)

    def _match(self, s: Session, o: SimOrder, at: datetime) -> None:
        """Trade ``o`` over the price steps it has not seen yet, up to ``at``."""
        if o.status != "open":
            return
        local = at.astimezone(self._tz)
        if local.date() > o.trade_date:
            upto = STEPS
        elif local.date() < o.trade_date or local.time() < time(9, 30):
            return
        else:
            upto = step_of(local)
            if local.time() >= time(15, 0):
                upto = STEPS
            elif upto == STEPS:
                upto = STEPS - 1
        if o.first_step == STEPS and upto < STEPS:
            return
        path = self._path(o.code, o.trade_date)
        start = max(o.first_step, o.checked_step + 1)
        if o.kind == "market":
            start = upto  # a market order trades at the step it arrives in, once
        for step in range(start, upto + 1):
            remaining = o.quantity - o.filled - o.cancelled
            if remaining <= 0:
                break
            last = path[step]
            crosses = last <= o.price_li if o.side == "buy" else last >= o.price_li
            if o.kind == "market" or crosses:
                qty = min(remaining, self._volume(o.code, o.trade_date, step))
                when = self._time_of(o.trade_date, step, o.placed_at)
                s.add(SimFill(reference=o.reference, quantity=qty, price_li=last, at=when))
                o.filled += qty
        o.checked_step = max(o.checked_step, upto)
        if o.filled + o.cancelled >= o.quantity:
            o.status = "filled" if o.cancelled == 0 else "cancelled"
        elif o.kind == "market":
            o.cancelled = o.quantity - o.filled  # market: the rest is cancelled at once
            o.status = "cancelled"
        s.flush()

    def _time_of(self, day: date, step: int, placed_at: datetime) -> datetime:
        minutes = 9 * 60 + 30 + step if step < 120 else 13 * 60 + (step - 120)
        local = datetime.combine(day, time(minutes // 60, minutes % 60), self._tz)
        return max(local, placed_at)

    def _state(self, o: SimOrder) -> GatewayOrderState:
        return GatewayOrderState(o.reference, o.status, o.filled, o.cancelled)  # type: ignore[arg-type]

    def cancel(self, reference: str, at: datetime) -> GatewayOrderState:
        def work(s: Session) -> GatewayOrderState:
            o = s.get(SimOrder, reference, with_for_update=True)
            if o is None:
                return GatewayOrderState(reference, "rejected", 0, 0)
            self._match(s, o, at)
            if o.status == "open":
                o.cancelled = o.quantity - o.filled
                o.status = "cancelled"
            return self._state(o)

        return run_in_transaction(self._sessions, work)

    def order_status(self, reference: str, at: datetime) -> GatewayOrderState:
        def work(s: Session) -> GatewayOrderState:
            o = s.get(SimOrder, reference)
            if o is None:
                return GatewayOrderState(reference, "rejected", 0, 0)
            self._match(s, o, at)
            return self._state(o)

        return run_in_transaction(self._sessions, work)

    def fills(self, since: int, at: datetime) -> list[Fill]:
        def work(s: Session) -> list[Fill]:
            for o in s.execute(select(SimOrder).where(SimOrder.status == "open").order_by(SimOrder.reference)
                               .with_for_update()).scalars():
                self._match(s, o, at)
            rows = s.execute(select(SimFill).where(SimFill.exec_id > since)
                             .order_by(SimFill.exec_id)).scalars()
            return [Fill(r.exec_id, r.reference, r.quantity, r.price_li, r.at) for r in rows]

        return run_in_transaction(self._sessions, work)

    def end_of_day(self, day: date) -> None:
        close = datetime.combine(day, time(15, 0), self._tz)

        def work(s: Session) -> None:
            for o in s.execute(select(SimOrder).where(SimOrder.status == "open", SimOrder.trade_date <= day)
                               .with_for_update()).scalars():
                self._match(s, o, close)
                if o.status == "open":
                    o.cancelled = o.quantity - o.filled
                    o.status = "expired"

        run_in_transaction(self._sessions, work)

    def fill_count(self) -> int:
        return int(run_in_transaction(self._sessions, lambda s: s.execute(select(func.count(SimFill.exec_id))).scalar_one()))
