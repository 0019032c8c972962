"""Staff login sessions: argon2 passwords, opaque tokens (only their hash is stored), idle and absolute expiry,
throttled failures. Used by the web screens (cookie + CSRF token) and the JSON API (bearer token)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.auth import dummy_hash, verify_secret
from callcenter.store.db import run_in_transaction
from callcenter.store.models import LoginFailure, ServiceGroup, Staff, WebSession

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffSessions:
    def __init__(self, sessions: sessionmaker[Session], idle: timedelta, absolute: timedelta) -> None:
        self._sessions = sessions
        self._idle = idle
        self._absolute = absolute

    def login(self, username: str, password: str, now: datetime) -> tuple[str, Principal] | None:
        """A new session token on success (a fresh one every login), None on bad credentials."""
        username = username.strip()[:64]

        def check(s: Session) -> tuple[Staff | None, int]:
            fail = s.get(LoginFailure, username)
            if fail and fail.failures >= MAX_FAILURES and now - fail.last_failure_at < LOCKOUT:
                return None, int((LOCKOUT - (now - fail.last_failure_at)).total_seconds()) + 1
            staff = s.execute(select(Staff).where(Staff.username == username, Staff.active.is_(True))).scalar_one_or_none()
            return staff, 0

        staff, wait = run_in_transaction(self._sessions, check)
        if wait:
            raise LoginThrottled(wait)
        ok = verify_secret(staff.password_hash if staff else dummy_hash(), password)
        if not ok or staff is None:
            run_in_transaction(self._sessions, lambda s: self._record_failure(s, username, now))
            return None
        token = secrets.token_urlsafe(32)

        def create(s: Session) -> Principal:
            s.execute(delete(LoginFailure).where(LoginFailure.username == username))
            csrf = secrets.token_urlsafe(24)
            s.add(WebSession(token_hash=_digest(token), staff_id=staff.id, csrf_token=csrf, created_at=now, last_seen_at=now))
            return self._principal(s, staff, csrf)

        return token, run_in_transaction(self._sessions, create)

    def _record_failure(self, s: Session, username: str, now: datetime) -> None:
        fail = s.get(LoginFailure, username)
        if fail is None:
            s.add(LoginFailure(username=username, failures=1, last_failure_at=now))
        else:
            if now - fail.last_failure_at >= LOCKOUT:
                fail.failures = 0
            fail.failures += 1
            fail.last_failure_at = now

    def resolve(self, token: str, now: datetime) -> Principal | None:
        """The principal of a live session (and touch it), or None when unknown or expired (then deleted)."""
        if not token or len(token) > 200:
            return None

        def work(s: Session) -> Principal | None:
            ws = s.get(WebSession, _digest(token))
            if ws is None:
                return None
            if now - ws.last_seen_at > self._idle or now - ws.created_at > self._absolute:
                s.delete(ws)
                return None
            staff = s.get(Staff, ws.staff_id)
            if staff is None or not staff.active:
                s.delete(ws)
                return None
            if now - ws.last_seen_at > timedelta(seconds=30):  # avoid a write on every request
                ws.last_seen_at = now
            return self._principal(s, staff, ws.csrf_token)

        return run_in_transaction(self._sessions, work)

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
