"""预约服务: appointment slots (pure: standard library only, time passed in, the trading calendar as a function).

A client books an appointment of one kind at one slot:

``group_callback``   a call-back by someone of the client's service group (服务小组)
``analyst_callback`` a call-back by an analyst (投资顾问)
``branch_visit``     an account-service visit at the branch (营业部临柜)

Slots are ``slot_minutes`` long and start on the grid of the working hours of a trading day (the exchange
calendar: no appointments on weekends and holidays), ``morning`` and ``afternoon`` spans in local time. A slot may
be booked from ``min_lead_minutes`` ahead up to ``horizon_trading_days`` trading days ahead; each (kind, slot)
takes at most ``capacity[kind]`` appointments, and a client at most one appointment of a kind per day and
``max_open_per_client`` open ones in all. Every refusal is an ``AppointmentError`` whose code names its sentence
``appointments.<code>`` in ``locales/<lang>/orders.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import Enum

KINDS = ("group_callback", "analyst_callback", "branch_visit")
STATUSES = ("booked", "cancelled", "done", "missed")
OPEN_STATUSES = ("booked",)


class Rule(str, Enum):
    BAD_KIND = "bad_kind"
    NOT_TRADING_DAY = "not_trading_day"
    OUTSIDE_HOURS = "outside_hours"
    OFF_GRID = "off_grid"
    TOO_SOON = "too_soon"
    TOO_FAR = "too_far"
    SLOT_FULL = "slot_full"
    ALREADY_BOOKED = "already_booked"
    TOO_MANY_OPEN = "too_many_open"
    NOT_CANCELLABLE = "not_cancellable"
    UNKNOWN_APPOINTMENT = "unknown_appointment"
    UNKNOWN_CLIENT = "unknown_client"
    NO_SERVICE_GROUP = "no_service_group"
    NOT_ALLOWED = "not_allowed"  # a slot's capacity is set by supervisors and admins
    BAD_CAPACITY = "bad_capacity"


class AppointmentError(Exception):
    def __init__(self, rule: Rule, detail: str = "") -> None:
        super().__init__(rule.value if not detail else f"{rule.value}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class SlotRules:
    slot_minutes: int = 30
    spans: tuple[tuple[time, time], ...] = ((time(9, 0), time(11, 30)), (time(13, 0), time(17, 0)))
    min_lead_minutes: int = 60
    horizon_trading_days: int = 10
    capacity: Mapping[str, int] = field(default_factory=lambda: {"group_callback": 3, "analyst_callback": 1,
                                                                 "branch_visit": 2})
    max_open_per_client: int = 3
    reminder_minutes: int = 120  # the SMS reminder goes out this long before the slot
    cancel_until_minutes: int = 30  # a client may cancel until this long before the slot


def slot_starts(day: date, rules: SlotRules) -> list[time]:
    """Every slot start of a working day, in order (a slot must end inside its span)."""
    out: list[time] = []
    step = timedelta(minutes=rules.slot_minutes)
    for start, end in rules.spans:
        t = datetime.combine(day, start)
        stop = datetime.combine(day, end)
        while t + step <= stop:
            out.append(t.time())
            t += step
    return out


def _horizon_end(today: date, rules: SlotRules, is_trading_day: Callable[[date], bool]) -> date:
    """The last day a slot may be on: ``horizon_trading_days`` trading days after today (today not counted)."""
    day, seen = today, 0
    for _ in range(400):
        day += timedelta(days=1)
        if is_trading_day(day):
            seen += 1
            if seen >= rules.horizon_trading_days:
                return day
    return day  # pragma: no cover - a calendar without trading days


def check_slot(kind: str, start_local: datetime, now_local: datetime, is_trading_day: Callable[[date], bool],
               rules: SlotRules) -> None:
    """The slot rules, no counting: kind, trading day, working hours and grid, lead time, horizon."""
    if kind not in KINDS:
        raise AppointmentError(Rule.BAD_KIND, kind[:32])
    day = start_local.date()
    if not is_trading_day(day):
        raise AppointmentError(Rule.NOT_TRADING_DAY, day.isoformat())
    starts = slot_starts(day, rules)
    t = start_local.time().replace(tzinfo=None)
    if not any(s_ <= t < (datetime.combine(day, s_) + timedelta(minutes=rules.slot_minutes)).time()
               for s_ in starts):
        raise AppointmentError(Rule.OUTSIDE_HOURS, t.isoformat("minutes"))
    if t not in starts:
        raise AppointmentError(Rule.OFF_GRID, t.isoformat("minutes"))
    if start_local - now_local < timedelta(minutes=rules.min_lead_minutes):
        raise AppointmentError(Rule.TOO_SOON)
    if day > _horizon_end(now_local.date(), rules, is_trading_day):
        raise AppointmentError(Rule.TOO_FAR)


@dataclass(frozen=True)
class Booked:
    """What is already booked that the decision needs: the slot's count for the kind, the client's open ones."""

    in_slot: int  # open appointments of this kind at this slot
    client_open: int  # the client's open appointments, all kinds
    client_same_day_kind: int  # the client's open appointments of this kind on that day
    capacity: int | None = None  # the slot's own capacity, set by a supervisor (None: the rules' for the kind)


def decide(kind: str, start_local: datetime, now_local: datetime, is_trading_day: Callable[[date], bool],
           booked: Booked, rules: SlotRules) -> None:
    """Raise the first rule a booking breaks, else return (the caller inserts the appointment)."""
    check_slot(kind, start_local, now_local, is_trading_day, rules)
    if booked.client_same_day_kind > 0:
        raise AppointmentError(Rule.ALREADY_BOOKED)
    if booked.client_open >= rules.max_open_per_client:
        raise AppointmentError(Rule.TOO_MANY_OPEN)
    if booked.in_slot >= slot_capacity(kind, booked.capacity, rules):
        raise AppointmentError(Rule.SLOT_FULL)


def slot_capacity(kind: str, own: int | None, rules: SlotRules) -> int:
    """A slot's capacity: its own (a supervisor's, 0 closes it) or the rules' for the kind."""
    return own if own is not None else rules.capacity.get(kind, 0)


def free_slots(kind: str, now_local: datetime, is_trading_day: Callable[[date], bool],
               counts: Mapping[datetime, int], rules: SlotRules, limit: int = 5,
               capacities: Mapping[datetime, int] | None = None) -> list[datetime]:
    """The first ``limit`` slots a booking of ``kind`` could take from now (``counts``: open appointments of the
    kind per slot start, local time; ``capacities``: the slots a supervisor gave a capacity of their own), in
    time order."""
    if kind not in KINDS:
        raise AppointmentError(Rule.BAD_KIND, kind[:32])
    out: list[datetime] = []
    last = _horizon_end(now_local.date(), rules, is_trading_day)
    day = now_local.date()
    cap = rules.capacity.get(kind, 0)
    while day <= last and len(out) < limit:
        if is_trading_day(day):
            for s_ in slot_starts(day, rules):
                start = datetime.combine(day, s_, tzinfo=now_local.tzinfo)
                if start - now_local < timedelta(minutes=rules.min_lead_minutes):
                    continue
                if counts.get(start, 0) < (capacities or {}).get(start, cap):
                    out.append(start)
                    if len(out) >= limit:
                        break
        day += timedelta(days=1)
    return out


def may_cancel(status: str, start_local: datetime, now_local: datetime, rules: SlotRules, *, staff: bool) -> None:
    """A booked appointment may be cancelled by the client until ``cancel_until_minutes`` before it; staff any
    time before it starts."""
    if status not in OPEN_STATUSES:
        raise AppointmentError(Rule.NOT_CANCELLABLE)
    limit = timedelta(0) if staff else timedelta(minutes=rules.cancel_until_minutes)
    if start_local - now_local < limit:
        raise AppointmentError(Rule.NOT_CANCELLABLE)


def reminder_due(status: str, start_local: datetime, now_local: datetime, reminded: bool, rules: SlotRules) -> bool:
    """The SMS reminder is due once the slot is ``reminder_minutes`` away or less, and not yet started."""
    if status not in OPEN_STATUSES or reminded:
        return False
    return timedelta(0) < start_local - now_local <= timedelta(minutes=rules.reminder_minutes)
