"""Call recordings (their metadata; the audio is in a ``RecordingStore``) and quality inspection (质检): forms,
the weekly samples and the evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, UtcDateTime

RECORDING_STATES = ("recording", "paused", "stopped", "failed", "purged")
RETENTION = ("callback", "complaint", "order", "ordinary")
EVALUATION_STATUSES = ("final", "disputed", "upheld", "revised")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in (" + ",".join(f"'{v}'" for v in values) + ")"


class Recording(Base):
    """One recording per call leg an agent was on (``parent_id`` links the legs of a transferred call); or of an
    IVR session. ``paused_spans``: [[start_s, end_s], ...] offsets from ``started_at`` — silence in the file."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(_in("state", RECORDING_STATES), name="state"),
        CheckConstraint(_in("retention_class", RETENTION), name="retention_class"),
        Index("ix_recordings_agent_started", "agent_id", "started_at"),
        Index("ix_recordings_state_expires", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_ref: Mapped[str] = mapped_column(String(64), index=True)  # the telephony's call id (uniqueid, CallSid)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), nullable=True)
    attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    desk_contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    ivr_session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True, index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(10), default="recording")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    paused_spans: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # why each stretch is what it is: [{"kind": "agent"|"pin"|"hold", "start": s, "end": s}, ...] (a pause's
    # reason: the agent's button, digits the client typed, the call on hold); offsets from ``started_at``
    marks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    retention_class: Mapped[str] = mapped_column(String(10), default="ordinary")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    legal_hold_reason: Mapped[str] = mapped_column(Text, default="")
    legal_hold_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    legal_hold_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class QaForm(Base):
    """An evaluation form defined by a supervisor; ``items``: ``callcenter.domain.quality.FormItem`` dicts. A form
    in use is never edited (a new one is made), so every evaluation is read against the items it was made on."""

    __tablename__ = "qa_forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    items: Mapped[list[Any]] = mapped_column(JSON, default=list)
    pass_pct: Mapped[float] = mapped_column(Float, default=80.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QaSample(Base):
    """A recording picked for inspection in an agent's ISO week: at random or because of a complaint."""

    __tablename__ = "qa_samples"
    __table_args__ = (CheckConstraint("reason in ('random','complaint')", name="reason"),
                      Index("ix_qa_samples_week_agent", "week", "agent_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    week: Mapped[str] = mapped_column(String(8))  # 2026-W48
    reason: Mapped[str] = mapped_column(String(10))
    picked_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QaEvaluation(Base):
    """A QA evaluation of one recording; ``group_id`` and ``month`` (local month of the call) are the agent's at
    the time, for the scores by agent, group and month. The agent may dispute it once; a supervisor upholds it
    or revises the score."""

    __tablename__ = "qa_evaluations"
    __table_args__ = (CheckConstraint(_in("status", EVALUATION_STATUSES), name="status"),
                      Index("ix_qa_evaluations_month_group", "month", "group_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("qa_forms.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("service_groups.id"), nullable=True)
    evaluator_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    month: Mapped[str] = mapped_column(String(7))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    score_pct: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    critical_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default="final")
    dispute_text: Mapped[str] = mapped_column(Text, default="")
    disputed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolution: Mapped[str] = mapped_column(Text, default="")
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
