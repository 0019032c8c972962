"""Staff web sessions and login throttling (shared by every web process through the database)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, UtcDateTime


class WebSession(Base):
    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token; the token is never stored
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuthThrottle(Base):
    """Failed staff logins and IVR PINs, one counter per account and per source: ``login_user`` (username),
    ``login_ip`` (client IP), ``ivr_account`` (the fund account number typed, known or not), ``ivr_caller``
    (caller ID, "" when withheld) and ``trading_pwd`` (a fund account's trading password, 交易密码). The rule is
    ``callcenter.domain.throttle``; ``callcenter.services.throttles`` reads and writes the rows under a row lock."""

    __tablename__ = "auth_throttles"
    __table_args__ = (CheckConstraint("scope in ('login_user','login_ip','ivr_account','ivr_caller','trading_pwd')",
                                      name="scope"),)

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True, index=True)
