"""Client care: corporate events, reminder rules and deliveries, subscriptions and opt-outs, complaints and
call-backs (回访). The rules themselves are pure (callcenter.domain.reminders); these tables hold what happened."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, UtcDateTime

EVENT_KINDS = ("rights_issue", "placing", "warrant_last_trading", "warrant_exercise", "ipo_subscription", "dividend")
CHANNELS = ("sms", "notify_call", "agent_call")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


class CareEvent(Base):
    """A corporate event worth a reminder (配股, 增发, 权证最后交易日/行权, 新股申购, 分红).

    ``event_date`` is the date reminders count back from: the rights-issue payment deadline, the placing's
    subscription deadline, the warrant's last trading day or last exercise day, the subscription day, the
    dividend record day. ``start_date``/``end_date`` are the period shown to the client when there is one."""

    __tablename__ = "care_events"
    __table_args__ = (
        UniqueConstraint("kind", "code", "event_date", name="uq_care_events_kind_code_date"),
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        CheckConstraint("start_date is null or end_date is null or start_date <= end_date", name="period"),
        Index("ix_care_events_event_date", "event_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    code: Mapped[str] = mapped_column(String(6), index=True)
    security_name: Mapped[str] = mapped_column(String(32), default="")
    event_date: Mapped[date] = mapped_column(Date)
    start_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 4), nullable=True)  # yuan
    ratio: Mapped[str] = mapped_column(String(32), default="")  # e.g. 10配3, 10派2.5
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32), default="manual")  # manual / csv:<file name>
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CareRule(Base):
    """"N trading days before <event date>, tell holders of <code> by <channel>" or a birthday greeting."""

    __tablename__ = "care_rules"
    __table_args__ = (
        CheckConstraint("kind in ('event','birthday')", name="kind"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint("days_before >= 0", name="days_nonneg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="event")
    event_kind: Mapped[str | None] = mapped_column(String(24), nullable=True)  # None: every kind
    code: Mapped[str | None] = mapped_column(String(6), nullable=True)  # None: every security
    days_before: Mapped[int] = mapped_column(Integer, default=0)  # trading days
    channel: Mapped[str] = mapped_column(String(12), default="sms")
    template: Mapped[str] = mapped_column(String(64), default="")  # key under care.templates; "" = by kind
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower wins when several rules match
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CareDelivery(Base):
    """One message to one client about one subject, ever: the unique (client, subject) pair is what makes
    re-runs, restarts and concurrent runs send once. Subjects: ``event:<id>``, ``birthday:<year>``,
    ``bulletin:<key>``, ``market_close:<date>``."""

    __tablename__ = "care_deliveries"
    __table_args__ = (
        UniqueConstraint("client_id", "subject", name="uq_care_deliveries_client_subject"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(
            "status in ('pending','sent','delivered','failed','answered','to_agent','queued','unknown')",
            name="status",
        ),
        Index("ix_care_deliveries_day_status", "planned_for", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    subject: Mapped[str] = mapped_column(String(48))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("care_events.id"), nullable=True, index=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("care_rules.id"), nullable=True)
    channel: Mapped[str] = mapped_column(String(12))
    planned_for: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(255), default="")
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_ref: Mapped[str] = mapped_column(String(64), default="", index=True)
    detail: Mapped[str] = mapped_column(String(255), default="")  # failure reason, call outcome
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CareSubscription(Base):
    """财经秘书: whether a client gets one kind of alert. No row means the topic's default."""

    __tablename__ = "care_subscriptions"

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(24), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))  # ivr / agent / sms / web
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CareOptOut(Base):
    """The client asked for no more messages on a channel (``sms``, ``call``) or at all (``all``)."""

    __tablename__ = "care_optouts"
    __table_args__ = (CheckConstraint("channel in ('sms','call','all')", name="channel"),)

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


COMPLAINT_STATUSES = ("open", "in_progress", "resolved", "closed")


class Complaint(Base):
    __tablename__ = "care_complaints"
    __table_args__ = (
        CheckConstraint(_in("status", COMPLAINT_STATUSES), name="status"),
        Index("ix_care_complaints_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8))  # agent / ivr / web
    call_ref: Mapped[str] = mapped_column(String(64), default="")  # the call it was raised on
    opened_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(12), default="open")
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolution: Mapped[str] = mapped_column(Text, default="")


class ComplaintHistory(Base):
    __tablename__ = "care_complaint_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("care_complaints.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(16))  # opened / assigned / status / note
    from_status: Mapped[str] = mapped_column(String(12), default="")
    to_status: Mapped[str] = mapped_column(String(12), default="")
    note: Mapped[str] = mapped_column(Text, default="")


CALLBACK_PURPOSES = ("satisfaction", "regulatory_new", "regulatory_annual", "reminder")


class CareCallback(Base):
    """A call an agent must make: satisfaction survey after a complaint, regulatory 回访, reminder call.
    ``dedupe`` (``complaint:<id>``, ``new:<client>``, ``annual:<year>:<client>``, ``event:<id>:<client>``)
    makes building them idempotent. ``campaign_ref`` names the dialler campaign it was handed to."""

    __tablename__ = "care_callbacks"
    __table_args__ = (
        CheckConstraint(_in("purpose", CALLBACK_PURPOSES), name="purpose"),
        CheckConstraint("status in ('scheduled','done','unreachable','cancelled')", name="status"),
        Index("ix_care_callbacks_status_due", "status", "due_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe: Mapped[str] = mapped_column(String(48), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    script_id: Mapped[str] = mapped_column(String(48))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("care_complaints.id"), nullable=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("care_events.id"), nullable=True)
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    not_before: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="scheduled")
    campaign_ref: Mapped[str] = mapped_column(String(48), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="")
    answers: Mapped[str] = mapped_column(Text, default="")  # JSON of the recorded answers
    # the recording of the call the answers were given on (the regulator's record of the 回访)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), nullable=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
