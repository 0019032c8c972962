"""预约服务 slot rules (domain/appointments.py): trading days, working-hour grid, lead time, horizon, capacity, one
of a kind a day, the open limit, cancel and reminder windows; and the hotline's branch on its entry."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest

from callcenter.domain.appointments import (
    AppointmentError,
    Booked,
    Rule,
    SlotRules,
    check_slot,
    decide,
    free_slots,
    may_cancel,
    reminder_due,
    slot_starts,
)

CST = timezone(timedelta(hours=8))
RULES = SlotRules()
HOLIDAY = date(2026, 12, 4)  # a Friday made a holiday for these tests


def trading(day: date) -> bool:
    return day.weekday() < 5 and day != HOLIDAY


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 12, day, hh, mm, tzinfo=CST)


NOW = at(2, 10, 0)  # Wednesday 2 December 2026, 10:00
FREE = Booked(0, 0, 0)


def refused(kind: str, start: datetime, booked: Booked = FREE, now: datetime = NOW) -> str | None:
    try:
        decide(kind, start, now, trading, booked, RULES)
    except AppointmentError as exc:
        return exc.rule.value
    return None


def test_the_grid_of_a_working_day() -> None:
    starts = slot_starts(date(2026, 12, 3), RULES)
    assert starts[0] == time(9, 0) and starts[-1] == time(16, 30)
    assert time(11, 0) in starts and time(11, 30) not in starts and time(13, 0) in starts
    assert len(starts) == 5 + 8


@pytest.mark.parametrize(("start", "code"), [
    (at(3, 9, 0), None), (at(3, 11, 0), None), (at(3, 16, 30), None),  # first, last of the morning, last
    (at(3, 11, 30), "outside_hours"), (at(3, 12, 0), "outside_hours"), (at(3, 8, 30), "outside_hours"),
    (at(3, 17, 0), "outside_hours"), (at(3, 10, 15), "off_grid"),
    (at(5, 10, 0), "not_trading_day"), (at(4, 10, 0), "not_trading_day"),
    (at(2, 10, 30), "too_soon"), (at(2, 11, 0), None),  # 60 minutes ahead is the boundary
])
def test_slot_boundaries(start: datetime, code: str | None) -> None:
    assert refused("group_callback", start) == code


def test_horizon_is_ten_trading_days() -> None:
    # from Wed 2 Dec: trading days 3, 7, 8, 9, 10, 11, 14, 15, 16, 17 (4 Dec a holiday): 17 Dec is the last
    assert refused("branch_visit", at(17, 9, 0)) is None
    assert refused("branch_visit", at(18, 9, 0)) == "too_far"


def test_capacity_one_of_a_kind_a_day_and_the_open_limit() -> None:
    slot = at(3, 10, 0)
    assert refused("analyst_callback", slot, Booked(0, 0, 0)) is None
    assert refused("analyst_callback", slot, Booked(1, 0, 0)) == "slot_full"  # one analyst a slot
    assert refused("group_callback", slot, Booked(2, 0, 0)) is None
    assert refused("group_callback", slot, Booked(3, 0, 0)) == "slot_full"
    assert refused("group_callback", slot, Booked(0, 1, 1)) == "already_booked"
    assert refused("group_callback", slot, Booked(0, 3, 0)) == "too_many_open"
    with pytest.raises(AppointmentError) as exc:
        check_slot("haircut", slot, NOW, trading, RULES)
    assert exc.value.rule is Rule.BAD_KIND


def test_free_slots_skip_full_and_too_soon_and_closed_days() -> None:
    friday_evening = datetime(2026, 12, 11, 16, 10, tzinfo=CST)
    slots = free_slots("analyst_callback", friday_evening, trading, {}, RULES, limit=2)
    assert slots == [at(14, 9, 0), at(14, 9, 30)]  # 16:30 Friday is too soon, the weekend closed
    full = {at(14, 9, 0): 1}
    assert free_slots("analyst_callback", friday_evening, trading, full, RULES, limit=1) == [at(14, 9, 30)]
    assert free_slots("group_callback", friday_evening, trading, full, RULES, limit=1) == [at(14, 9, 0)]


def test_cancel_and_reminder_windows() -> None:
    slot = at(3, 10, 0)
    may_cancel("booked", slot, slot - timedelta(minutes=30), RULES, staff=False)
    with pytest.raises(AppointmentError):
        may_cancel("booked", slot, slot - timedelta(minutes=29), RULES, staff=False)
    may_cancel("booked", slot, slot - timedelta(minutes=1), RULES, staff=True)
    with pytest.raises(AppointmentError):
        may_cancel("cancelled", slot, NOW, RULES, staff=True)
    assert not reminder_due("booked", slot, slot - timedelta(minutes=121), False, RULES)
    assert reminder_due("booked", slot, slot - timedelta(minutes=120), False, RULES)
    assert not reminder_due("booked", slot, slot - timedelta(minutes=60), True, RULES)  # sent already
    assert not reminder_due("booked", slot, slot, False, RULES)  # started


def test_the_hotline_lands_in_the_order_menu_when_entered_there() -> None:
    from callcenter.adapters.ivr.textphone import TextPhone
    from callcenter.services.ivr.backend import demo_backend
    from callcenter.services.ivr.flow import load_flow

    flow = load_flow("hotline")
    assert flow.nodes["after_login"].type == "branch"
    login = "11234567890123456#123456#"
    plain = "\n".join(TextPhone(flow, demo_backend(), call_id="t-main").run(login).lines)
    entered = "\n".join(TextPhone(flow, demo_backend(), call_id="t-orders", entry="orders").run(login).lines)
    assert "查询资金余额请按1" in plain and "查询行情请按1" not in plain
    assert "查询行情请按1" in entered and "查询资金余额请按1" not in entered
    bogus = "\n".join(TextPhone(flow, demo_backend(), call_id="t-bogus", entry="admin").run(login).lines)
    assert "查询资金余额请按1" in bogus  # an unknown entry is the main menu


def test_a_branch_node_is_checked() -> None:
    from callcenter.services.ivr.flow import parse_flow

    text = """
flow: t
initial: b
nodes:
  b:
    type: branch
    var: entry
    cases: {orders: nowhere}
  end:
    type: hangup
    say: [goodbye]
"""
    flow, problems = parse_flow(text)
    messages = " ".join(p.message for p in problems)
    assert flow is None and "needs 'next'" in messages and "unknown node 'nowhere'" in messages


def test_the_care_part_runs_the_reminders_on_trading_days_only() -> None:
    from callcenter.parts.care import APPOINTMENT_JOBS, due_interval_jobs

    class Cal:
        def is_trading_day(self, day: date) -> bool:
            return trading(day)

    (job,) = APPOINTMENT_JOBS
    assert [j.name for j in due_interval_jobs(APPOINTMENT_JOBS, {}, at(2, 8, 0), Cal())] == [job.name]  # type: ignore[arg-type]
    assert due_interval_jobs(APPOINTMENT_JOBS, {}, at(5, 10, 0), Cal()) == []  # type: ignore[arg-type]
    assert due_interval_jobs(APPOINTMENT_JOBS, {job.name: at(2, 8, 0)}, at(2, 8, 4), Cal()) == []  # type: ignore[arg-type]
    from pathlib import Path

    runtime = (Path(__file__).resolve().parents[2] / "callcenter" / "runtime.py").read_text()
    assert "DEFAULT_JOBS + RECORDING_JOBS + APPOINTMENT_JOBS" in runtime
