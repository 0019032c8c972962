"""Throttles on the store: the counters of ``callcenter.domain.throttle`` kept in ``auth_throttles``, read and
written under a row lock, and the administrator's unlock (audit-logged).

``admit`` runs inside the caller's transaction, *before* the secret is checked: it locks the rows of every
counter the attempt touches (PostgreSQL ``SELECT … FOR UPDATE`` after creating missing rows with
``INSERT … ON CONFLICT DO NOTHING``, always in key order so two attempts cannot deadlock; SQLite transactions
are ``BEGIN IMMEDIATE``, holding the write lock from their first statement), asks the pure rule and writes the
counted attempt back. So of N simultaneous wrong guesses only the free allowance is ever checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain import throttle
from callcenter.domain.masking import mask_account, mask_phone
from callcenter.domain.throttle import Admission, Backoff, Counter
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models import AuditLog, AuthThrottle, FundAccount


class Scope(StrEnum):
    LOGIN_USER = "login_user"  # staff username (known or not)
    LOGIN_IP = "login_ip"  # the client's IP address
    IVR_ACCOUNT = "ivr_account"  # the fund account number typed (known or not)
    IVR_CALLER = "ivr_caller"  # caller ID / Twilio From / AGI callerid ("" when withheld)
    TRADING_PWD = "trading_pwd"  # a fund account's trading password (交易密码): its own counter, the IVR policy


ACCOUNT_SCOPES = frozenset({Scope.LOGIN_USER, Scope.IVR_ACCOUNT, Scope.TRADING_PWD})  # cleared by a success


@dataclass(frozen=True)
class ThrottlePolicies:
    login_user: Backoff
    login_ip: Backoff
    ivr_account: Backoff
    ivr_caller: Backoff

    def of(self, scope: Scope) -> Backoff:
        return {Scope.LOGIN_USER: self.login_user, Scope.LOGIN_IP: self.login_ip,
                Scope.IVR_ACCOUNT: self.ivr_account, Scope.IVR_CALLER: self.ivr_caller,
                Scope.TRADING_PWD: self.ivr_account}[scope]

    @classmethod
    def from_settings(cls, settings: Any) -> "ThrottlePolicies":
        """From ``callcenter.settings.Settings`` (the ``# throttles`` group)."""
        s = settings

        def policy(area: str, free: int) -> Backoff:
            return Backoff(free, getattr(s, f"{area}_backoff_base_s"), getattr(s, f"{area}_backoff_max_s"),
                           getattr(s, f"{area}_backoff_forget_minutes") * 60.0)

        return cls(policy("login", s.login_free_attempts_per_user), policy("login", s.login_free_attempts_per_ip),
                   policy("ivr", s.ivr_free_attempts_per_account), policy("ivr", s.ivr_free_attempts_per_caller))

    @classmethod
    def defaults(cls) -> "ThrottlePolicies":
        from callcenter.settings import Settings

        return cls.from_settings(Settings.model_construct())


Key = tuple[Scope, str]


def subject_of(scope: Scope, raw: str) -> str:
    """The stored subject: trimmed and bounded like the input it comes from."""
    return raw.strip()[:20 if scope in (Scope.IVR_ACCOUNT, Scope.TRADING_PWD) else 64]


def _locked_rows(s: Session, keys: Sequence[Key]) -> dict[Key, AuthThrottle]:
    pg = dialect_name(s) == "postgresql"
    insert = postgresql.insert if pg else sqlite.insert
    rows: dict[Key, AuthThrottle] = {}
    for scope, subject in sorted(set(keys)):
        s.execute(insert(AuthThrottle).values(scope=scope.value, subject=subject, failures=0, last_failure_at=None)
                  .on_conflict_do_nothing())
        q = select(AuthThrottle).where(AuthThrottle.scope == scope.value, AuthThrottle.subject == subject)
        rows[(scope, subject)] = s.execute(q.with_for_update() if pg else q).scalar_one()
    return rows


def admit(s: Session, keys: Sequence[Key], policies: ThrottlePolicies, now: datetime) -> Admission:
    """Admit one attempt (counted as a failure on every key) or refuse it, under the rows' locks. The returned
    counters are in the order of ``keys``."""
    rows = _locked_rows(s, keys)
    pairs = [(Counter(rows[k].failures, rows[k].last_failure_at), policies.of(k[0])) for k in keys]
    result = throttle.admit(pairs, now)
    if result.admitted:
        for key, counter in zip(keys, result.counters):
            rows[key].failures, rows[key].last_failure_at = counter.failures, counter.last_failure_at
    return result


def succeeded(s: Session, keys: Sequence[Key]) -> None:
    """The admitted attempt was right: clear the account counters, give the sources their attempt back."""
    rows = _locked_rows(s, keys)
    for (scope, _), row in sorted(rows.items()):
        refunded = throttle.refunded(Counter(row.failures, row.last_failure_at))
        if scope in ACCOUNT_SCOPES or refunded.failures == 0:
            s.delete(row)  # nothing left to count (an account's counter is cleared)
        else:
            row.failures, row.last_failure_at = refunded.failures, refunded.last_failure_at


def prune(s: Session, policies: ThrottlePolicies, now: datetime) -> int:
    """Delete the counters whose failures are forgotten already (they would count as zero anyway)."""
    removed = 0
    for scope in Scope:
        cutoff = now - timedelta(seconds=policies.of(scope).forget_s)
        result = cast(CursorResult[Any], s.execute(delete(AuthThrottle).where(
            AuthThrottle.scope == scope.value,
            (AuthThrottle.last_failure_at < cutoff) | AuthThrottle.last_failure_at.is_(None))))
        removed += result.rowcount or 0
    return removed


# ------------------------------------------------------------------ reading and unlocking (administrators)
@dataclass(frozen=True)
class ThrottleView:
    scope: Scope
    subject: str  # masked for fund accounts and caller IDs
    failures: int
    last_failure_at: datetime | None
    blocked_until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {"scope": self.scope.value, "subject": self.subject, "failures": self.failures,
                "last_failure_at": iso(self.last_failure_at), "blocked_until": iso(self.blocked_until)}


def masked(scope: Scope, subject: str) -> str:
    if scope in (Scope.IVR_ACCOUNT, Scope.TRADING_PWD):
        return mask_account(subject)
    if scope is Scope.IVR_CALLER:
        return mask_phone(subject) if subject else "(withheld)"
    return subject


def _view(scope: Scope, subject: str, row: AuthThrottle | None, policies: ThrottlePolicies,
          now: datetime) -> ThrottleView:
    policy = policies.of(scope)
    counter = throttle.current(Counter(row.failures, row.last_failure_at) if row else Counter(), now, policy)
    return ThrottleView(scope, masked(scope, subject), counter.failures, counter.last_failure_at,
                        throttle.blocked_until(counter, now, policy))


class NotAllowed(Exception):
    """Only an administrator may do this."""


class UnlockRefused(ValueError):
    def __init__(self, code: str) -> None:  # reason_required | unknown_scope
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class UnlockResult:
    audit_id: int
    before: ThrottleView
    after: ThrottleView


class Throttles:
    """The administrators' side: list counters, clear one (with a reason, audit-logged)."""

    def __init__(self, sessions: sessionmaker[Session], policies: ThrottlePolicies,
                 clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._policies = policies
        self._clock = clock

    def counting(self, principal: Any) -> list[ThrottleView]:
        """Every counter that counts at the moment (failures not yet forgotten), blocked ones first."""
        _require_admin(principal)
        now = self._clock()

        def work(s: Session) -> list[ThrottleView]:
            rows = s.execute(select(AuthThrottle).where(AuthThrottle.failures > 0)).scalars()
            views = [_view(Scope(r.scope), r.subject, r, self._policies, now) for r in rows]
            return [v for v in views if v.failures > 0]

        views = run_in_transaction(self._sessions, work)
        return sorted(views, key=lambda v: (v.blocked_until is None, -v.failures, v.scope, v.subject))

    def unlock(self, principal: Any, scope: Scope | str, subject: str, reason: str) -> UnlockResult:
        """Clear one counter: who (the principal), what (scope + subject), when and the before/after go to the
        audit log with the reason."""
        _require_admin(principal)
        try:
            scope = Scope(scope)
        except ValueError:
            raise UnlockRefused("unknown_scope") from None
        reason = " ".join(reason.split())[:500]
        if not reason:
            raise UnlockRefused("reason_required")
        subject = subject_of(scope, subject)
        now = self._clock()

        def work(s: Session) -> UnlockResult:
            row = _locked_rows(s, [(scope, subject)])[(scope, subject)]
            before = _view(scope, subject, row, self._policies, now)
            s.delete(row)
            after = _view(scope, subject, None, self._policies, now)
            client_id = None
            if scope in (Scope.IVR_ACCOUNT, Scope.TRADING_PWD):
                client_id = s.execute(select(FundAccount.client_id).where(FundAccount.account_no == subject)
                                      ).scalar_one_or_none()
            entry = AuditLog(at=now, staff_id=principal.staff_id, action=f"unlock_{scope.value}"[:32],
                             client_id=client_id,
                             detail=json.dumps({"by": principal.username, "scope": scope.value,
                                                "subject": before.subject, "reason": reason,
                                                "before": before.as_dict(), "after": after.as_dict()},
                                               ensure_ascii=False))
            s.add(entry)
            s.flush()
            return UnlockResult(entry.id, before, after)

        return run_in_transaction(self._sessions, work)


def _require_admin(principal: Any) -> None:
    if principal is None or getattr(principal, "role", None) != "admin":
        raise NotAllowed("an administrator is required")
