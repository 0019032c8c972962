"""The one throttle rule (callcenter/domain/throttle.py): a free allowance, then exponential backoff, capped;
a refused attempt changes nothing; failures are forgotten after a quiet period; account and source together."""

from datetime import datetime, timedelta, timezone

import pytest

from callcenter.domain.throttle import Backoff, Counter, admit, blocked_until, cleared, refunded, wait_after

T0 = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)
POLICY = Backoff(free_attempts=3, base_s=10, max_s=60, forget_s=3600)


def test_waits_start_after_the_free_allowance_double_and_are_capped():
    assert [wait_after(n, POLICY).total_seconds() for n in range(8)] == [0, 0, 0, 10, 20, 40, 60, 60]
    assert wait_after(10_000, POLICY) == timedelta(seconds=60)  # no overflow for a long attack


def test_each_attempt_past_the_allowance_must_wait_and_a_refusal_does_not_extend_the_wait():
    counter, now, admitted = Counter(), T0, 0
    for _ in range(3):  # the free allowance, back to back
        a = admit([(counter, POLICY)], now)
        assert a.admitted
        counter, admitted = a.counters[0], admitted + 1
    refused = admit([(counter, POLICY)], now + timedelta(seconds=9))
    assert not refused.admitted and refused.retry_after == timedelta(seconds=1)
    assert refused.counters == (counter,)  # hammering during the wait changes nothing
    a = admit([(counter, POLICY)], now + timedelta(seconds=10))
    assert a.admitted and a.counters[0].failures == 4
    assert blocked_until(a.counters[0], now + timedelta(seconds=10), POLICY) == now + timedelta(seconds=30)


def test_failures_are_forgotten_after_a_quiet_period():
    c = Counter(failures=40, last_failure_at=T0)
    assert blocked_until(c, T0 + timedelta(seconds=59), POLICY) == T0 + timedelta(seconds=60)
    a = admit([(c, POLICY)], T0 + timedelta(hours=1))
    assert a.admitted and a.counters[0] == Counter(1, T0 + timedelta(hours=1))


def test_an_attempt_needs_every_counter_and_a_refusal_touches_none():
    blocked_source = Counter(failures=5, last_failure_at=T0)  # waiting 40 s
    fresh_account = Counter()
    a = admit([(fresh_account, POLICY), (blocked_source, POLICY)], T0 + timedelta(seconds=5))
    assert not a.admitted and a.retry_after == timedelta(seconds=35)
    assert a.counters == (fresh_account, blocked_source)
    ok = admit([(fresh_account, POLICY), (Counter(), POLICY)], T0)
    assert ok.admitted and [c.failures for c in ok.counters] == [1, 1]


def test_a_success_clears_the_account_and_refunds_the_source_one_attempt():
    assert cleared() == Counter()
    assert refunded(Counter(4, T0)) == Counter(3, T0)
    assert refunded(Counter(0, T0)) == Counter(0, T0)


@pytest.mark.parametrize("args", [(0, 1, 2, 3), (1, 0, 1, 1), (1, 5, 2, 10), (1, 5, 10, 9)])
def test_nonsense_policies_are_refused(args):
    with pytest.raises(ValueError):
        Backoff(*args)


@pytest.mark.parametrize("bad", [{"ivr_backoff_base_s": 60, "ivr_backoff_max_s": 30},
                                 {"login_backoff_max_s": 7200, "login_backoff_forget_minutes": 60},
                                 {"ivr_free_attempts_per_caller": 0}])
def test_throttle_settings_are_checked(bad):
    from callcenter.settings import SettingsError, load_settings

    with pytest.raises(SettingsError):
        load_settings(**bad)
