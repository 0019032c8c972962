"""Pure campaign rules: calling windows in the lead's time zone, DNC, retries, and the two state machines."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.domain.campaigns import (
    AgentFacts,
    CampaignRules,
    LeadFacts,
    RuleError,
    Window,
    after_attempt,
    agent_transition,
    campaign_transition,
    dial_refusal,
    in_window,
    longest_idle,
    next_window_open,
    on_dnc,
)

UTC = timezone.utc
HOLIDAYS = {date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5)}


def trading(d: date) -> bool:
    return d.weekday() < 5 and d not in HOLIDAYS


def rules(window: Window = Window(time(9), time(20), "working"), max_attempts: int = 3, **kw) -> CampaignRules:
    return CampaignRules(7, kw.pop("state", "running"), window, max_attempts, kw.pop("retry", None))


def lead(**kw) -> LeadFacts:
    base = dict(phone="+8613912345678", status="new", attempts=0, timezone="Asia/Shanghai")
    base.update(kw)
    return LeadFacts(**base)


def test_window_is_in_the_leads_own_time_zone() -> None:
    w = Window(time(9), time(20), "every")
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 Shanghai, 18:00 previous day Los Angeles, 02:00 London
    assert in_window(now, "Asia/Shanghai", w, trading)
    assert in_window(now, "America/Los_Angeles", w, trading)
    assert not in_window(now, "Europe/London", w, trading)


def test_window_end_is_exclusive_and_days_matter() -> None:
    w = Window(time(9), time(20), "trading")
    sh = ZoneInfo("Asia/Shanghai")
    assert not in_window(datetime(2026, 11, 25, 20, 0, tzinfo=sh), "Asia/Shanghai", w, trading)
    assert in_window(datetime(2026, 11, 25, 19, 59, tzinfo=sh), "Asia/Shanghai", w, trading)
    assert not in_window(datetime(2026, 10, 1, 10, 0, tzinfo=sh), "Asia/Shanghai", w, trading)  # holiday
    assert in_window(datetime(2026, 10, 1, 10, 0, tzinfo=sh), "Asia/Shanghai", Window(time(9), time(20), "every"), trading)
    assert not in_window(datetime(2026, 11, 28, 10, 0, tzinfo=sh), "Asia/Shanghai",
                         Window(time(9), time(20), "working"), trading)  # Saturday


def test_next_window_open_skips_holidays_and_weekends() -> None:
    sh = ZoneInfo("Asia/Shanghai")
    w = Window(time(9), time(20), "trading")
    opening = next_window_open(datetime(2026, 9, 30, 21, 0, tzinfo=sh), "Asia/Shanghai", w, trading)
    assert opening == datetime(2026, 10, 6, 9, 0, tzinfo=sh)
    inside = datetime(2026, 11, 25, 10, 0, tzinfo=sh)
    assert next_window_open(inside, "Asia/Shanghai", w, trading) == inside


def test_bad_window_and_zone_are_refused() -> None:
    with pytest.raises(RuleError):
        Window(time(20), time(9))
    with pytest.raises(RuleError):
        Window(time(9), time(20), "sometimes")
    with pytest.raises(RuleError):
        in_window(datetime(2026, 1, 1, tzinfo=UTC), "Mars/Olympus", Window(time(9), time(20)), trading)


def test_dnc_global_and_per_campaign() -> None:
    entries = [("+8613900000001", None), ("+8613900000002", 7), ("+8613900000003", 8)]
    assert on_dnc("+8613900000001", 7, entries)
    assert on_dnc("+8613900000002", 7, entries)
    assert not on_dnc("+8613900000003", 7, entries)


def test_refusal_reasons() -> None:
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert dial_refusal(lead(), rules(), now, (), trading) is None
    assert dial_refusal(lead(), rules(state="paused"), now, (), trading) == "campaign_not_running"
    assert dial_refusal(lead(status="in_progress", claimed_until=now + timedelta(minutes=1)), rules(), now, (),
                        trading) == "in_flight"
    assert dial_refusal(lead(status="in_progress", claimed_until=now - timedelta(minutes=1)), rules(), now, (),
                        trading) is None  # an expired claim: its dialler died
    assert dial_refusal(lead(status="done"), rules(), now, (), trading) == "final"
    assert dial_refusal(lead(attempts=3), rules(), now, (), trading) == "no_attempts_left"
    assert dial_refusal(lead(next_attempt_at=now + timedelta(seconds=1)), rules(), now, (), trading) == "not_due"
    assert dial_refusal(lead(), rules(), now, [("+8613912345678", None)], trading) == "dnc"
    assert dial_refusal(lead(timezone="Europe/London"), rules(), now, (), trading) == "outside_window"


def test_retry_schedule_per_outcome_and_max_attempts() -> None:
    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    r = rules(retry={"busy": 10, "no_answer": 120})
    assert after_attempt("busy", 0, r, now) == after_attempt("busy", 0, r, now)
    u = after_attempt("busy", 0, r, now)
    assert (u.status, u.attempts, u.next_attempt_at) == ("retry", 1, now + timedelta(minutes=10))
    assert after_attempt("no_answer", 1, r, now).next_attempt_at == now + timedelta(minutes=120)
    assert after_attempt("no_answer", 2, r, now).status == "exhausted"
    assert after_attempt("human", 0, r, now).status == "done"
    assert after_attempt("human", 0, r, now, disposition="dnc").status == "dnc"
    assert after_attempt("human", 0, r, now, disposition="retry").status == "retry"
    lost = after_attempt("lost", 2, r, now)
    assert (lost.status, lost.attempts) == ("retry", 2)  # a call the dialler lost does not count
    assert after_attempt("abandoned", 0, r, now).status == "retry"


def test_campaign_state_machine() -> None:
    assert campaign_transition("draft", "schedule") == "scheduled"
    assert campaign_transition("scheduled", "start") == "running"
    assert campaign_transition("running", "pause") == "paused"
    assert campaign_transition("paused", "resume") == "running"
    assert campaign_transition("running", "stop") == "finished"
    for state, action in [("finished", "start"), ("running", "schedule"), ("draft", "pause"), ("finished", "resume")]:
        with pytest.raises(RuleError):
            campaign_transition(state, action)


def test_the_one_campaign_life_cycle() -> None:
    from callcenter.domain.campaigns import CAMPAIGN_ACTIONS, CAMPAIGN_STATES, CAMPAIGN_TRANSITIONS, CampaignRefused

    # a started campaign is never "scheduled" again (scheduled = not started yet); start on paused resumes it
    with pytest.raises(CampaignRefused) as err:
        campaign_transition("paused", "schedule")
    assert (err.value.state, err.value.action) == ("paused", "schedule")
    assert campaign_transition("paused", "start") == "running"
    assert campaign_transition("scheduled", "schedule") == "scheduled"  # a new start time
    assert campaign_transition("scheduled", "unschedule") == "draft"
    # asking for the state a campaign is in is granted without change (double click, a repeated daily job)
    for state, action in [("running", "start"), ("running", "resume"), ("paused", "pause"), ("finished", "stop")]:
        assert campaign_transition(state, action) == state
    # nothing leaves finished; every pair is either in the one table or refused
    for state in CAMPAIGN_STATES:
        for action in CAMPAIGN_ACTIONS:
            if (state, action) in CAMPAIGN_TRANSITIONS:
                assert CAMPAIGN_TRANSITIONS[(state, action)] in CAMPAIGN_STATES
            else:
                with pytest.raises(CampaignRefused):
                    campaign_transition(state, action)
    assert [a for a in CAMPAIGN_ACTIONS if ("finished", a) in CAMPAIGN_TRANSITIONS] == ["stop"]


def test_agent_state_machine() -> None:
    path = [("login", "paused"), ("ready", "ready"), ("reserve", "reserved"), ("connect", "talking"),
            ("hangup", "wrap_up"), ("ready", "ready"), ("pause", "paused"), ("logout", "logged_out")]
    state = "logged_out"
    for event, expected in path:
        state = agent_transition(state, event)
        assert state == expected
    for state, event in [("talking", "ready"), ("talking", "pause"), ("logged_out", "ready"), ("paused", "reserve")]:
        with pytest.raises(RuleError):
            agent_transition(state, event)


def test_longest_idle_first() -> None:
    t = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    agents = [AgentFacts(1, "ready", t), AgentFacts(2, "ready", t - timedelta(seconds=30)),
              AgentFacts(3, "talking", t - timedelta(hours=1)), AgentFacts(4, "ready", t - timedelta(seconds=30))]
    assert longest_idle(agents) == 2
    assert longest_idle(agents, only=1) == 1
    assert longest_idle(agents, only=3) is None
    assert longest_idle([]) is None


# --- property: whatever the lead data and the clock, no dial outside the window or to a DNC number -----

ZONES = ["Asia/Shanghai", "Asia/Hong_Kong", "Europe/London", "America/New_York", "Australia/Sydney", "UTC"]
PHONES = [f"+86139{i:08d}" for i in range(6)]

lead_facts = st.builds(
    LeadFacts,
    phone=st.sampled_from(PHONES),
    status=st.sampled_from(["new", "retry", "in_progress", "done", "dnc", "exhausted"]),
    attempts=st.integers(0, 6),
    timezone=st.sampled_from(ZONES),
    next_attempt_at=st.none() | st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    claimed_until=st.none() | st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
)
windows = st.tuples(st.integers(0, 22), st.integers(1, 24), st.sampled_from(["trading", "working", "every"])).filter(
    lambda w: w[0] < w[1]).map(lambda w: Window(time(w[0]), time(w[1] - 1, 59, 59) if w[1] == 24 else time(w[1]), w[2]))
dnc_lists = st.lists(st.tuples(st.sampled_from(PHONES), st.sampled_from([None, 7, 8])), max_size=6)
clocks = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(lead=lead_facts, window=windows, dnc=dnc_lists, now=clocks, max_attempts=st.integers(1, 5))
def test_property_never_outside_window_or_dnc(lead: LeadFacts, window: Window, dnc: list, now: datetime,
                                              max_attempts: int) -> None:
    r = CampaignRules(7, "running", window, max_attempts)
    if dial_refusal(lead, r, now, dnc, trading) is None:
        local = now.astimezone(ZoneInfo(lead.timezone))
        assert window.start <= local.time().replace(tzinfo=None) < window.end
        if window.days == "working":
            assert local.weekday() < 5
        if window.days == "trading":
            assert trading(local.date())
        assert not any(p == lead.phone and c in (None, 7) for p, c in dnc)
        assert lead.attempts < max_attempts
        assert lead.status in ("new", "retry", "in_progress")


@settings(max_examples=200, deadline=None)
@given(window=windows, now=clocks, tz=st.sampled_from(ZONES))
def test_property_next_opening_is_inside_the_window(window: Window, now: datetime, tz: str) -> None:
    opening = next_window_open(now, tz, window, trading)
    assert opening is not None and opening >= now
    assert in_window(opening, tz, window, trading)
