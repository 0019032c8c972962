from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from callcenter.services.ivr.backend import FakeAccount, demo_backend

ACCOUNT = "1234567890123456"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_simultaneous_wrong_pins_cannot_race_the_throttle():
    backend = demo_backend(now=Clock())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: backend.authenticate(ACCOUNT, "000000", str(i), f"call-{i}").outcome,
                                range(8)))
    assert results.count("wrong_pin") == 5 and results.count("locked") == 3  # the free allowance, then backoff
    assert backend.authenticate(ACCOUNT, "123456", "1", "call-x").outcome == "locked"


def test_backoff_doubles_and_a_success_clears_the_account():
    clock = Clock()
    backend = demo_backend(now=clock)
    for i in range(5):
        assert backend.authenticate(ACCOUNT, "000000", f"+86139000000{i:02}", f"c{i}").outcome == "wrong_pin"
    locked = backend.authenticate(ACCOUNT, "123456", "+8613900000099", "c9")
    assert locked.outcome == "locked" and locked.locked_until == clock.now + timedelta(seconds=30)
    clock.now += timedelta(seconds=30)
    assert backend.authenticate(ACCOUNT, "000000", "+8613900000098", "c8").outcome == "wrong_pin"
    assert backend.locked_until[ACCOUNT] == clock.now + timedelta(seconds=60)  # doubled
    clock.now += timedelta(seconds=60)
    assert backend.authenticate(ACCOUNT, "123456", "+8613900000097", "c7").outcome == "ok"
    assert backend.failures[ACCOUNT] == 0 and ACCOUNT not in backend.locked_until


def test_one_pin_sprayed_over_many_accounts_from_one_caller_is_slowed():
    clock = Clock()
    backend = demo_backend(now=clock)
    numbers = [f"88000000{i:04}" for i in range(100)]
    for i, number in enumerate(numbers):
        backend.add_account(FakeAccount(number, f"FA-S{i}", "999999", f"C-S{i}", "icbc", "中国工商银行"))
    outcomes = [backend.authenticate(n, "123456", "+8613812345678", f"spray-{i}").outcome
                for i, n in enumerate(numbers)]
    assert outcomes.count("wrong_pin") == 10 and outcomes.count("locked") == 90  # the caller's free allowance
    # another caller is not slowed by it, and neither is any of the sprayed accounts
    assert backend.authenticate(numbers[-1], "999999", "+8613700000000", "other").outcome == "ok"


def test_transfer_is_applied_once_per_idempotency_key():
    backend = demo_backend()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: backend.transfer("C-1001", "FA-1", "broker_to_bank", 100, "call-1:12",
                                                           "ivr-agi", "1"), range(8)))
    assert len(backend.transfers) == 1 and len({r.reference for r in results}) == 1


def test_per_call_limit_in_the_backend_too():
    backend = demo_backend()
    for _ in range(3):
        backend.authenticate("999999", "000000", "1", "call-1")
    assert backend.authenticate(ACCOUNT, "123456", "1", "call-1").outcome == "call_limit"
