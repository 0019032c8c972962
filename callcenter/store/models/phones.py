"""Agents' phones as Asterisk PJSIP endpoints (issue 18): a desk SIP phone or the browser softphone (WebRTC).

SIP digest authentication cannot use the argon2 hash of a login password: the server must be able to compute
the digest response. What is stored is the digest's HA1, ``MD5(endpoint:realm:password)``, which Asterisk's
``password_digest = MD5:<ha1>`` accepts and JsSIP's ``ha1`` option uses: it opens that one endpoint in that
one realm (not the staff member's login, not another phone), and the clear password is never stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, UtcDateTime

PHONE_KINDS = ("webrtc", "sip")


class AgentPhone(Base):
    """One PJSIP endpoint an agent may sit at: ``webrtc`` (the browser softphone) or ``sip`` (a desk phone).
    At most one of each kind per staff member; ``endpoint`` is the endpoint, auth and AOR name in Asterisk."""

    __tablename__ = "agent_phones"
    __table_args__ = (
        UniqueConstraint("endpoint", name="uq_agent_phones_endpoint"),
        UniqueConstraint("staff_id", "kind", name="uq_agent_phones_staff_kind"),
        CheckConstraint("kind in ('webrtc','sip')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    kind: Mapped[str] = mapped_column(String(8))
    endpoint: Mapped[str] = mapped_column(String(40))
    realm: Mapped[str] = mapped_column(String(64))
    ha1: Mapped[str] = mapped_column(String(32))  # MD5(endpoint:realm:password), hex
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # the phone's registration as last reported (the softphone page every few seconds, Asterisk's ContactStatus
    # over AMI): registered until then; None: not registered. The desk refuses "ready" past it.
    registered_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    registered_by: Mapped[str] = mapped_column(String(8), default="")  # page / asterisk
