"""Pure care rules: reminder timing on the SSE calendar (weekends, Spring Festival and National Day 2026),
birthdays, quiet hours, opt-outs, the notification-call flow, CSV parsing, complaint moves, job timing."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from callcenter.domain.birthdays import celebrated_on
from callcenter.adapters.trading_calendar import TradingCalendar
from callcenter.domain import reminders as R
from callcenter.services.care.complaints import ComplaintError, due_at, next_status
from callcenter.services.care.events import parse_csv
from callcenter.services.care.notify_calls import MAX_PLAYS, NotifyFlow, Play, ToAgent
from callcenter.services.care.regulatory import annual_target, one_month_after
from callcenter.parts.care import DEFAULT_JOBS, due_jobs, seconds_until_next

CAL = TradingCalendar()
SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("event_date", "days", "expected"),
    [
        (date(2026, 3, 9), 1, date(2026, 3, 6)),  # Monday event: the Friday before, not the weekend
        (date(2026, 3, 9), 0, date(2026, 3, 9)),
        (date(2026, 3, 8), 0, date(2026, 3, 6)),  # event on a Sunday, "on the day" = last trading day before
        (date(2026, 2, 24), 1, date(2026, 2, 13)),  # Spring Festival: closed 14-23 Feb
        (date(2026, 2, 25), 3, date(2026, 2, 12)),
        (date(2026, 2, 20), 2, date(2026, 2, 12)),  # event inside the closure
        (date(2026, 10, 8), 1, date(2026, 9, 30)),  # National Day: closed 1-7 Oct
        (date(2026, 10, 9), 2, date(2026, 9, 30)),
        (date(2026, 10, 12), 3, date(2026, 9, 30)),
        (date(2026, 10, 12), 2, date(2026, 10, 8)),
    ],
)
def test_send_day_counts_trading_days(event_date, days, expected):
    assert R.send_day(event_date, days, CAL) == expected
    assert CAL.is_trading_day(expected)


def test_rule_never_fires_on_a_closed_day_and_catches_up_before_the_event():
    rule = R.Rule(1, "r", event_kind="warrant_last_trading", days_before=2)
    event = R.Event(7, "warrant_last_trading", "580001", date(2026, 10, 9))  # send day 30 Sep
    fires = {d: R.rule_due(rule, event, d, CAL)[0] for d in
             (date(2026, 9, 29), date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 4), date(2026, 10, 7),
              date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 12))}
    assert fires == {date(2026, 9, 29): False, date(2026, 9, 30): True, date(2026, 10, 1): False,
                     date(2026, 10, 4): False, date(2026, 10, 7): False, date(2026, 10, 8): True,
                     date(2026, 10, 9): False, date(2026, 10, 12): False}


def test_every_day_of_2026_holidays_sends_nothing():
    rule = R.Rule(1, "r", days_before=1)
    events = [R.Event(1, "dividend", "600000", date(2026, 2, 24)), R.Event(2, "dividend", "600000", date(2026, 10, 8))]
    client = R.ClientFacts(1, "+8613900000001", holdings=frozenset({"600000"}))
    for day in [date(2026, 2, d) for d in range(14, 24)] + [date(2026, 10, d) for d in range(1, 8)]:
        assert R.event_candidates(events, [rule], [client], day, CAL) == []
    assert [c.subject for c in R.event_candidates(events, [rule], [client], date(2026, 2, 13), CAL)] == ["event:1"]
    assert [c.subject for c in R.event_candidates(events, [rule], [client], date(2026, 9, 30), CAL)] == ["event:2"]


def test_best_rule_wins_and_audiences():
    rules = [R.Rule(1, "sms", event_kind="placing", days_before=2, channel="sms", priority=5),
             R.Rule(2, "call", event_kind="placing", days_before=2, channel="agent_call", priority=1),
             R.Rule(3, "other code", code="000001", days_before=2, channel="notify_call", priority=0)]
    ev = R.Event(1, "placing", "600000", date(2026, 3, 11))
    holder = R.ClientFacts(1, "+86139", holdings=frozenset({"600000"}))
    closed = R.ClientFacts(2, "+86138", status="closed", holdings=frozenset({"600000"}))
    stranger = R.ClientFacts(3, "+86137")
    [c] = R.event_candidates([ev], rules, [holder, closed, stranger], date(2026, 3, 9), CAL)
    assert (c.client_id, c.channel, c.rule.id) == (1, "agent_call", 2)
    ipo = R.Event(2, "ipo_subscription", "732001", date(2026, 3, 10))
    fan = R.ClientFacts(4, "+86136", topics=frozenset({"ipo"}))
    got = R.event_candidates([ipo], [R.Rule(9, "ipo", days_before=1)], [holder, fan], date(2026, 3, 9), CAL)
    assert [c.client_id for c in got] == [4]


def test_birthdays_including_29_february():
    rule = R.Rule(1, "bd", kind="birthday")
    leapling = R.ClientFacts(1, "+86139", birthday=date(2000, 2, 29))
    assert celebrated_on(date(2000, 2, 29), 2026) == date(2026, 2, 28)
    assert celebrated_on(date(2000, 2, 29), 2028) == date(2028, 2, 29)
    assert [c.subject for c in R.birthday_candidates([rule], [leapling], date(2026, 2, 28))] == ["birthday:2026"]
    assert R.birthday_candidates([rule], [leapling], date(2026, 3, 1)) == []
    assert R.birthday_candidates([rule], [leapling], date(2028, 2, 28)) == []  # a leap year: the 29th itself
    assert [c.subject for c in R.birthday_candidates([rule], [leapling], date(2028, 2, 29))] == ["birthday:2028"]
    # greetings go out on weekends and holidays too
    sunday = R.ClientFacts(2, "+86139", birthday=date(1970, 2, 15))
    assert len(R.birthday_candidates([rule], [sunday], date(2026, 2, 15))) == 1
    assert R.birthday_candidates([], [sunday], date(2026, 2, 15)) == []


def test_quiet_hours():
    q = R.QuietHours()
    assert not q.allows("sms", datetime(2026, 3, 4, 8, 59, tzinfo=SH))
    assert q.allows("sms", datetime(2026, 3, 4, 9, 0, tzinfo=SH))
    assert not q.allows("sms", datetime(2026, 3, 4, 20, 0, tzinfo=SH))
    assert not q.allows("notify_call", datetime(2026, 3, 4, 9, 15, tzinfo=SH))
    assert q.opens_at("sms", datetime(2026, 3, 4, 7, 0, tzinfo=SH)) == datetime(2026, 3, 4, 9, 0, tzinfo=SH)
    assert q.opens_at("sms", datetime(2026, 3, 4, 22, 0, tzinfo=SH)) == datetime(2026, 3, 5, 9, 0, tzinfo=SH)
    assert q.opens_at("notify_call", datetime(2026, 3, 4, 9, 0, tzinfo=SH)).time() == time(9, 30)


def _cand(channel: str = "sms", subject: str = "event:1") -> R.Candidate:
    ev = R.Event(1, "dividend", "600000", date(2026, 3, 10)) if subject.startswith("event") else None
    return R.Candidate(1, subject, channel, R.Rule(1, "r", channel=channel), "event", {}, ev)


def test_decide_order_opt_outs_subscriptions_quiet_hours():
    noon = datetime(2026, 3, 4, 12, 0, tzinfo=SH)
    night = datetime(2026, 3, 4, 23, 0, tzinfo=SH)
    c = R.ClientFacts(1, "+8613900000001")
    q = R.QuietHours()
    assert R.decide(_cand(), c, noon, q, already=False).verdict == "send"
    assert R.decide(_cand(), c, noon, q, already=True).verdict == "already_sent"
    assert R.decide(_cand(), R.ClientFacts(1, "+86139", opted_out=frozenset({"sms"})), noon, q, False).verdict == "opted_out"
    assert R.decide(_cand("notify_call"), R.ClientFacts(1, "+86139", opted_out=frozenset({"sms"})), noon, q, False).verdict == "send"
    assert R.decide(_cand("agent_call"), R.ClientFacts(1, "+86139", opted_out=frozenset({"call"})), noon, q, False).verdict == "opted_out"
    assert R.decide(_cand("sms"), R.ClientFacts(1, "+86139", opted_out=frozenset({"all"})), noon, q, False).verdict == "opted_out"
    assert R.decide(_cand(), R.ClientFacts(1, "+86139", topics=frozenset()), noon, q, False).verdict == "unsubscribed"
    assert R.decide(_cand(subject="birthday:2026"), R.ClientFacts(1, "+86139", topics=frozenset({"corporate_actions"})),
                    noon, q, False).verdict == "unsubscribed"
    assert R.decide(_cand(), R.ClientFacts(1, ""), noon, q, False).verdict == "no_number"
    held = R.decide(_cand(), c, night, q, False)
    assert held.verdict == "quiet_hours" and held.not_before == datetime(2026, 3, 5, 9, 0, tzinfo=SH)
    assert R.decide(_cand("agent_call"), c, night, q, False).verdict == "send"  # the dialler's window applies
    assert R.decide(_cand(), c, None, q, False).verdict == "send"  # a plan for another day


def test_notify_flow_repeat_agent_and_outcomes():
    f = NotifyFlow("care/notify-1")
    assert f.digit("1") == []  # not answered yet
    assert f.answered("human") == [Play("care/notify-1")]
    assert [f.digit("1") for _ in range(MAX_PLAYS)] == [[Play("care/notify-1")]] * (MAX_PLAYS - 1) + [[]]
    assert f.digit("7") == []
    assert f.digit("0") == [ToAgent()] and f.digit("1") == []
    f.ended()
    assert f.outcome == "to_agent"
    m = NotifyFlow("p")
    m.answered("machine")
    assert m.digit("0") == []
    m.ended()
    assert (m.outcome, m.detail) == ("answered", "machine")
    b = NotifyFlow("p")
    b.failed("busy")
    assert (b.outcome, b.detail) == ("failed", "busy")


def test_csv_rows_with_errors_are_reported_by_line():
    text = ("\ufeffkind,code,name,event_date,start_date,end_date,price,ratio\n"
            "配股,600000,浦发银行,2026-03-10,2026-03-03,2026-03-10,8.50,10配3\n"
            "swap,60000,X,2026-13-01,,,-1,\n"
            "\n"
            "dividend,600036,招商银行,2026-03-12,2026-03-20,2026-03-12,,10派2.5\n"
            "rights_issue,600000,浦发银行,2026-03-10,,,,\n"
            "权证行权,580001,某权证,2026-03-20,,,1.20,\n")
    good, errors = parse_csv(text, "en")
    assert [(line, item.kind, item.code) for line, item in good] == [
        (2, "rights_issue", "600000"), (7, "warrant_exercise", "580001")]
    by_line = {e.line: e.messages for e in errors}
    assert sorted(by_line) == [3, 5, 6]
    assert len(by_line[3]) == 4  # kind, code, date, price: every problem of the row
    assert by_line[5] == ["start date after end date"]
    assert by_line[6] == ["duplicates line 2"]
    assert parse_csv("code,event_date\n600000,2026-01-01\n", "en")[1][0].messages == ["missing column: kind"]


def test_complaint_moves_and_due_times():
    assert next_status("open", "in_progress") == "in_progress"
    assert next_status("closed", "in_progress") == "in_progress"
    for bad in (("open", "open"), ("closed", "resolved"), ("in_progress", "open"), ("resolved", "open")):
        with pytest.raises(ComplaintError):
            next_status(*bad)
    t0 = datetime(2026, 3, 4, 2, 0, tzinfo=ZoneInfo("UTC"))
    assert (due_at("unauthorized_trading", t0) - t0).total_seconds() == 24 * 3600
    assert (due_at("service_attitude", t0) - t0).total_seconds() == 72 * 3600


def test_regulatory_arithmetic():
    assert one_month_after(date(2026, 1, 31)) == date(2026, 2, 28)
    assert one_month_after(date(2026, 12, 15)) == date(2027, 1, 15)
    assert annual_target(1000, 12) == 100 and annual_target(1000, 1) == 9 and annual_target(7, 12) == 1
    assert annual_target(0, 6) == 0


def test_job_timing_on_trading_and_closed_days():
    last: dict[str, date] = {}
    early = datetime(2026, 3, 4, 7, 0, tzinfo=SH)
    assert due_jobs(DEFAULT_JOBS, last, early, CAL) == []
    assert seconds_until_next(DEFAULT_JOBS, early) == 3600
    at_ten = datetime(2026, 3, 4, 10, 0, tzinfo=SH)
    assert [j.name for j in due_jobs(DEFAULT_JOBS, last, at_ten, CAL)] == ["regulatory", "reminders", "notify_calls"]
    last.update({"regulatory": at_ten.date(), "reminders": at_ten.date(), "notify_calls": at_ten.date()})
    assert due_jobs(DEFAULT_JOBS, last, at_ten, CAL) == []
    holiday = datetime(2026, 10, 2, 10, 0, tzinfo=SH)  # National Day: only the greetings/reminders job
    assert [j.name for j in due_jobs(DEFAULT_JOBS, last, holiday, CAL)] == ["reminders"]
    late = datetime(2026, 3, 4, 22, 0, tzinfo=SH)
    assert seconds_until_next(DEFAULT_JOBS, late) == 10 * 3600
