"""Failed-login and PIN throttles: exponential backoff per counter, as pure functions (time passed in).

One rule for every throttle in the engine — staff logins per username and per client IP, IVR PINs per fund
account and per caller ID — and for every implementation (the store's, the in-memory IVR fake's), so they
cannot drift:

* A counter holds the failures so far and the time of the last one. The first ``free_attempts`` failures cost
  nothing; from then on each failure makes the next attempt wait ``base_s``, doubling per further failure, never
  more than ``max_s``. There is no hard lock an outsider can set for long: the wait is at most ``max_s`` and
  only grows while failures keep coming. Failures older than ``forget_s`` are forgotten.
* An attempt is *admitted* before the secret is checked, and admitting it already counts it as a failure
  (``admit``): whoever checks the secret does it only after the counters said yes, inside the same database
  transaction that holds their rows, so N simultaneous wrong guesses cannot all be checked. A success then
  clears the account's counter (``cleared``) and gives the source back the one attempt it counted
  (``refunded``); a source's counter is never cleared by a success (one good login must not buy a sprayer a
  fresh allowance), it is forgotten after ``forget_s``.
* An attempt is admitted only when every counter it touches (account and source) admits it; a refused attempt
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Backoff:
    free_attempts: int  # failures in a row before the first wait
    base_s: float  # the first wait; each further failure doubles it
    max_s: float  # the cap of the wait
    forget_s: float  # failures older than this (since the last one) are forgotten

    def __post_init__(self) -> None:
        if self.free_attempts < 1 or self.base_s <= 0 or self.max_s < self.base_s or self.forget_s < self.max_s:
            raise ValueError("need free_attempts >= 1, 0 < base_s <= max_s <= forget_s")


@dataclass(frozen=True)
class Counter:
    failures: int = 0
    last_failure_at: datetime | None = None


@dataclass(frozen=True)
class Admission:
    admitted: bool
    counters: tuple[Counter, ...]  # the counters to store (unchanged when refused)
    retry_after: timedelta  # how long the refused caller must wait (zero when admitted)


def wait_after(failures: int, policy: Backoff) -> timedelta:
    """The wait before the next attempt once ``failures`` failures are counted."""
    if failures < policy.free_attempts:
        return timedelta(0)
    doublings = failures - policy.free_attempts
    if doublings > 60:  # 2**60 * any base is far past any cap
        return timedelta(seconds=policy.max_s)
    return timedelta(seconds=min(policy.base_s * 2**doublings, policy.max_s))


def current(counter: Counter, now: datetime, policy: Backoff) -> Counter:
    """The counter as it stands at ``now``: forgotten when its last failure is older than ``forget_s``."""
    if counter.last_failure_at is None or now - counter.last_failure_at >= timedelta(seconds=policy.forget_s):
        return Counter()
    return counter


def blocked_until(counter: Counter, now: datetime, policy: Backoff) -> datetime | None:
    """When the next attempt may be made, or None when it may be made at ``now``."""
    c = current(counter, now, policy)
    if c.last_failure_at is None:
        return None
    until = c.last_failure_at + wait_after(c.failures, policy)
    return until if until > now else None


def admit(counters: Sequence[tuple[Counter, Backoff]], now: datetime) -> Admission:
    """Admit one attempt against every counter it touches, or refuse it. Admitting counts it as a failure on each
    counter (``cleared`` undoes that for the account on success)."""
    waits = [until - now for c, p in counters if (until := blocked_until(c, now, p)) is not None]
    if waits:
        return Admission(False, tuple(c for c, _ in counters), max(waits))
    counted = tuple(Counter(current(c, now, p).failures + 1, now) for c, p in counters)
    return Admission(True, counted, timedelta(0))


def refunded(counter: Counter) -> Counter:
    """A source's counter after the attempt it admitted turned out right: that attempt no longer counts."""
    return Counter(max(counter.failures - 1, 0), counter.last_failure_at)


def cleared() -> Counter:
    """The account's counter after a success (or an administrator's unlock)."""
    return Counter()
