"""Staff login throttles (hardening findings 5 and 6): admitted under a row lock before the password is checked,
so N simultaneous wrong passwords get at most the free allowance of argon2 checks; per username and per client
IP, with exponential backoff instead of a 15-minute lock anyone could set; a success clears the username."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.domain.throttle import Backoff
from callcenter.services.auth import dummy_hash, verify_secret
from callcenter.services.staff_sessions import LoginThrottled, StaffSessions
from callcenter.services.throttles import ThrottlePolicies
from callcenter.store.db import transaction
from callcenter.store.models import AuthThrottle
from tests.conftest import FixedClock
from tests.factories import make_staff


class CountingVerifier:
    """The verifier the service is given; counts every check, computes only those against a real hash."""

    def __init__(self) -> None:
        self.hashes: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, stored_hash: str, secret: str) -> bool:
        with self._lock:
            self.hashes.append(stored_hash)
        return False if stored_hash == dummy_hash() else verify_secret(stored_hash, secret)


def service(core: App, policies: ThrottlePolicies | None = None) -> tuple[StaffSessions, CountingVerifier]:
    verifier = CountingVerifier()
    return StaffSessions(core.sessions, timedelta(minutes=30), timedelta(hours=12),
                         policies=policies or ThrottlePolicies.from_settings(core.settings), verify=verifier), verifier


def attempt(sessions: StaffSessions, user: str, password: str, now: datetime, ip: str = "10.0.0.1") -> str:
    try:
        return "ok" if sessions.login(user, password, now, ip) else "bad"
    except LoginThrottled:
        return "throttled"


@pytest.mark.parametrize("n", [50])
def test_parallel_wrong_passwords_get_at_most_the_free_allowance_of_checks(core: App, clock: FixedClock, n: int) -> None:
    make_staff(core, "admin", "pw-admin-1", "admin")
    sessions, verifier = service(core)
    barrier = threading.Barrier(n)

    def one(i: int) -> str:
        barrier.wait()
        return attempt(sessions, "admin", f"guess-{i}", clock.now, ip=f"10.0.{i // 250}.{i % 250}")

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    assert len(verifier.hashes) == 5  # login_free_attempts_per_user, however many arrive at once
    assert results.count("bad") == 5 and results.count("throttled") == n - 5


def test_a_hostile_stranger_cannot_lock_an_account_out_for_long(core: App, clock: FixedClock) -> None:
    make_staff(core, "admin", "pw-admin-1", "admin")
    sessions, _ = service(core)
    for _ in range(5):
        assert attempt(sessions, "admin", "fuzz", clock.now, ip="203.0.113.9") == "bad"
    with pytest.raises(LoginThrottled) as exc:
        sessions.login("admin", "pw-admin-1", clock.now, "10.0.0.7")
    assert exc.value.retry_after_s == 2  # the first wait is 2 s, not 15 minutes
    clock.now += timedelta(seconds=2)
    assert attempt(sessions, "admin", "fuzz", clock.now, ip="203.0.113.9") == "bad"
    with pytest.raises(LoginThrottled) as exc:
        sessions.login("admin", "pw-admin-1", clock.now, "10.0.0.7")
    assert exc.value.retry_after_s == 4  # each further failure doubles it...
    for _ in range(8):  # ...up to the cap, however long the attack goes on
        clock.now += timedelta(seconds=300)
        attempt(sessions, "admin", "fuzz", clock.now, ip="203.0.113.9")
    with pytest.raises(LoginThrottled) as exc:
        sessions.login("admin", "pw-admin-1", clock.now, "10.0.0.7")
    assert exc.value.retry_after_s == 300
    clock.now += timedelta(seconds=300)
    assert attempt(sessions, "admin", "pw-admin-1", clock.now, ip="10.0.0.7") == "ok"
    assert attempt(sessions, "admin", "typo", clock.now, ip="10.0.0.7") == "bad"  # the success cleared the count
    assert attempt(sessions, "admin", "pw-admin-1", clock.now, ip="10.0.0.7") == "ok"


def test_one_password_sprayed_over_many_usernames_from_one_ip_is_slowed(core: App, clock: FixedClock) -> None:
    small = Backoff(free_attempts=3, base_s=2, max_s=300, forget_s=3600)
    policies = ThrottlePolicies(login_user=small, login_ip=Backoff(8, 2, 300, 3600), ivr_account=small,
                                ivr_caller=small)
    make_staff(core, "ag1", "pw-agent-1", "agent")
    sessions, verifier = service(core, policies)
    results = [attempt(sessions, f"user{i}", "Spring2026!", clock.now, ip="198.51.100.4") for i in range(30)]
    assert results.count("bad") == 8 and results.count("throttled") == 22 and len(verifier.hashes) == 8
    # unknown usernames count like known ones, and another address is not slowed
    assert attempt(sessions, "ag1", "pw-agent-1", clock.now, ip="10.0.0.2") == "ok"
    # a good login from the sprayer's address does not buy it a fresh allowance
    clock.now += timedelta(seconds=2)
    assert attempt(sessions, "ag1", "pw-agent-1", clock.now, ip="198.51.100.4") == "ok"
    assert attempt(sessions, "user99", "Spring2026!", clock.now, ip="198.51.100.4") == "throttled"


def test_forgotten_counters_are_pruned(core: App, clock: FixedClock) -> None:
    make_staff(core, "ag1", "pw-agent-1", "agent")
    sessions, _ = service(core)
    for i in range(3):
        attempt(sessions, f"ghost{i}", "x", clock.now)
    clock.now += timedelta(hours=2)  # past login_backoff_forget_minutes
    attempt(sessions, "recent", "x", clock.now, ip="10.0.0.4")
    count = select(func.count()).select_from(AuthThrottle)
    with transaction(core.sessions) as s:
        assert s.execute(count).scalar_one() == 6  # 3 ghosts + their address, "recent" + its address
    assert attempt(sessions, "ag1", "pw-agent-1", clock.now, ip="10.0.0.3") == "ok"
    with transaction(core.sessions) as s:
        rows = s.execute(select(AuthThrottle.scope, AuthThrottle.subject).order_by(AuthThrottle.scope)).all()
    assert [tuple(r) for r in rows] == [("login_ip", "10.0.0.4"), ("login_user", "recent")]
