"""Staff login sessions: argon2 passwords, opaque tokens (only their hash is stored), idle and absolute expiry,
failures throttled per username and per client IP (``services/throttles.py``). Used by the web screens (cookie +
CSRF token) and the JSON API (bearer token)."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services import throttles
from callcenter.services.auth import dummy_hash, verify_secret
from callcenter.services.throttles import Scope, ThrottlePolicies, subject_of
from callcenter.store.db import read_only, run_in_transaction
from callcenter.store.models import ServiceGroup, Staff, WebSession


@dataclass(frozen=True)
class Principal:
    staff_id: int
    username: str
    display_name: str
    role: str  # agent / supervisor / admin
    group_ids: frozenset[int]  # agent: own group; supervisor: supervised groups (callcenter.domain.access decides)
    csrf_token: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class LoginThrottled(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after_s}s")
        self.retry_after_s = retry_after_s


class _NeedsWrite:
    """``resolve``'s read found the session to touch or delete: done in a write transaction."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffSessions:
    def __init__(self, sessions: sessionmaker[Session], idle: timedelta, absolute: timedelta,
                 policies: ThrottlePolicies | None = None,
                 verify: Callable[[str, str], bool] = verify_secret) -> None:
        self._sessions = sessions
        self._idle = idle
        self._absolute = absolute
        self._policies = policies or ThrottlePolicies.defaults()
        self._verify = verify  # the argon2 check (injectable: tests count the checks)

    def login(self, username: str, password: str, now: datetime, source: str = "") -> tuple[str, Principal] | None:
        """A new session token on success (a fresh one every login), None on bad credentials; LoginThrottled
        while the username's or the source's (client IP's) backoff runs. The attempt is admitted by the
        throttles under their row locks *before* the password is checked, so simultaneous guesses beyond the
        free allowance are never checked at all."""
        username = username.strip()[:64]
        keys = [(Scope.LOGIN_USER, username), (Scope.LOGIN_IP, subject_of(Scope.LOGIN_IP, source))]

        def admit(s: Session) -> tuple[Staff | None, int]:
            admission = throttles.admit(s, keys, self._policies, now)
            if not admission.admitted:
                return None, max(1, math.ceil(admission.retry_after.total_seconds()))
            staff = s.execute(select(Staff).where(Staff.username == username, Staff.active.is_(True))).scalar_one_or_none()
            return staff, 0

        staff, wait = run_in_transaction(self._sessions, admit)
        if wait:
            raise LoginThrottled(wait)
        ok = self._verify(staff.password_hash if staff else dummy_hash(), password)
        if not ok or staff is None:
            return None  # the failure was counted when the attempt was admitted
        token = secrets.token_urlsafe(32)

        def create(s: Session) -> Principal:
            throttles.succeeded(s, keys)
            throttles.prune(s, self._policies, now)
            csrf = secrets.token_urlsafe(24)
            s.add(WebSession(token_hash=_digest(token), staff_id=staff.id, csrf_token=csrf, created_at=now, last_seen_at=now))
            return self._principal(s, staff, csrf)

        return token, run_in_transaction(self._sessions, create)

    def resolve(self, token: str, now: datetime) -> Principal | None:
        """The principal of a live session (and touch it), or None when unknown or expired (then deleted)."""
        if not token or len(token) > 200:
            return None

        def work(s: Session, writing: bool) -> Principal | None | _NeedsWrite:
            ws = s.get(WebSession, _digest(token))
            if ws is None:
                return None
            staff = s.get(Staff, ws.staff_id)
            expired = now - ws.last_seen_at > self._idle or now - ws.created_at > self._absolute
            stale = now - ws.last_seen_at > timedelta(seconds=30)  # touched at most every 30 s
            if not writing and (expired or staff is None or not staff.active or stale):
                return _NeedsWrite()
            if expired or staff is None or not staff.active:
                s.delete(ws)
                return None
            if stale:
                ws.last_seen_at = now
            return self._principal(s, staff, ws.csrf_token)

        # most requests only read (a snapshot, no wait for the write lock behind the dialler on SQLite); the
        # touch or the deletion of an expired session is a write transaction of its own
        seen = read_only(self._sessions, lambda s: work(s, False))
        if not isinstance(seen, _NeedsWrite):
            return seen
        again = run_in_transaction(self._sessions, lambda s: work(s, True))
        assert not isinstance(again, _NeedsWrite)
        return again

    def logout(self, token: str) -> None:
        run_in_transaction(self._sessions, lambda s: s.execute(delete(WebSession).where(WebSession.token_hash == _digest(token))))

    @staticmethod
    def _principal(s: Session, staff: Staff, csrf: str) -> Principal:
        if staff.role == "supervisor":
            groups = frozenset(s.execute(select(ServiceGroup.id).where(ServiceGroup.supervisor_id == staff.id)).scalars())
        elif staff.service_group_id is not None:
            groups = frozenset({staff.service_group_id})
        else:
            groups = frozenset()
        return Principal(staff.id, staff.username, staff.display_name, staff.role, groups, csrf)


def staff_principal(sessions: sessionmaker[Session], username: str) -> Principal | None:
    """The principal of an active staff member by username (for commands run on the server, e.g. ``callcenter
    admin``), or None."""

    def work(s: Session) -> Principal | None:
        staff = s.execute(select(Staff).where(Staff.username == username.strip()[:64],
                                              Staff.active.is_(True))).scalar_one_or_none()
        return None if staff is None else StaffSessions._principal(s, staff, "")

    return run_in_transaction(sessions, work)
