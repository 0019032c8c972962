"""IVR call records (every session and step), and bulletins that supervisors publish to the hotline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, UtcDateTime


class IvrSession(Base):
    __tablename__ = "ivr_sessions"
    __table_args__ = (
        Index("ix_ivr_sessions_client_started", "client_id", "started_at"),
        # sessions in progress (the wall board's hand-offs waiting): only the open ones are in it
        Index("ix_ivr_sessions_open", "handed_off", sqlite_where=text("ended_at IS NULL"),
              postgresql_where=text("ended_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)  # AGI uniqueid / Twilio CallSid
    channel: Mapped[str] = mapped_column(String(16))  # ivr-agi / ivr-twilio / ivr-text
    caller: Mapped[str] = mapped_column(String(32), default="")  # caller ID as received: shown to agents, never trusted
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True)
    masked_account: Mapped[str] = mapped_column(String(32), default="")
    lang: Mapped[str] = mapped_column(String(8), default="zh-CN")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_reason: Mapped[str] = mapped_column(String(32), default="")
    handed_off: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str] = mapped_column(Text, default="")  # what the client did, for the agent's screen pop
    transfer_refs: Mapped[str] = mapped_column(Text, default="")  # comma separated references


HANDOFF_STEPS = ("handoff", "agent_connected")  # a hand-off asked for, answered by an agent (services.handoff)
HANDOFF_STEPS_WHERE = "step IN (" + ", ".join(f"'{v}'" for v in HANDOFF_STEPS) + ")"


class IvrStep(Base):
    __tablename__ = "ivr_steps"
    # the day's hand-offs and their answers by step and time (the wall board's service level,
    # ``handoff.service_level``, whose WHERE repeats the predicate): its cost is the day's hand-offs, not the
    # history. Partial, so a lookup of one session's steps keeps ix_ivr_steps_session_id.  (migration 0020)
    __table_args__ = (Index("ix_ivr_steps_handoffs", "step", "at", sqlite_where=text(HANDOFF_STEPS_WHERE),
                            postgresql_where=text(HANDOFF_STEPS_WHERE)),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("ivr_sessions.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    step: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text, default="")  # JSON; never a PIN or a typed amount


class Bulletin(Base):
    """Company bulletins and market notices read on the hotline (menu 4), newest first."""

    __tablename__ = "bulletins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lang: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    audio_path: Mapped[str] = mapped_column(String(255), default="")
    published_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)


class TwilioCallState(Base):
    """Server-side state of a Twilio IVR call (one JSON document per CallSid, never holding a PIN)."""

    __tablename__ = "twilio_call_states"

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TwilioWebhook(Base):
    """One Twilio webhook of a call, claimed by the first process it reaches (the row's insert is the claim) and
    answered with the TwiML that process returned: a replay to any process returns that answer and does nothing."""

    __tablename__ = "twilio_webhooks"
    __table_args__ = (Index("ix_twilio_webhooks_token", "call_sid", "token"),)

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), primary_key=True)  # "start", the input step, "status:<status>"
    token: Mapped[str | None] = mapped_column(String(128), nullable=True)  # I-Twilio-Idempotency-Token
    response: Mapped[str | None] = mapped_column(Text, nullable=True)  # None while the claimant works on it
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
