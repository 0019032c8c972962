"""Outbound dialler: campaigns, leads, do-not-call entries, attempts, agent sessions, callbacks, the abandon
budget per campaign and day, and the dialler processes' leases.

Times are UTC (``UtcDateTime``); a campaign's calling window is in local hours of the LEAD's time zone
(``Lead.timezone``, falling back to ``Campaign.timezone``).  Retry delays are minutes per outcome.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from callcenter.store.models.base import Base, UtcDateTime

CAMPAIGN_KINDS = ("former_clients", "cold_leads", "dormant", "reminder", "callback")
DIAL_MODES = ("preview", "progressive", "ratio", "predictive")
CAMPAIGN_STATES = ("draft", "scheduled", "running", "paused", "finished")
CALLING_DAYS = ("trading", "working", "every")
LEAD_STATUSES = ("new", "in_progress", "retry", "done", "dnc", "exhausted")
ATTEMPT_OUTCOMES = ("human", "machine", "busy", "no_answer", "failed", "abandoned", "lost", "skipped")
AGENT_STATES = ("logged_out", "ready", "reserved", "talking", "wrap_up", "paused")
CALLBACK_STATUSES = ("pending", "placed", "done", "missed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in (" + ",".join(f"'{v}'" for v in values) + ")"


# Partial indexes of the hot queries: the same predicate on both databases (a query uses the index when its
# WHERE repeats the predicate with literal values: ``hopper.DIALABLE``, ``Attempt.ended_at IS NULL``).
DIALABLE_STATUSES = ("new", "retry")
DIALABLE_WHERE = "status IN (" + ", ".join(f"'{v}'" for v in DIALABLE_STATUSES) + ")"
OPEN_WHERE = "ended_at IS NULL"


class AscNullsFirst(UnaryExpression[Any]):
    """An index column in ascending order with NULLs first: PostgreSQL is told (its default puts them last);
    SQLite sorts them first already and refuses the words in an index."""

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column, modifier=operators.nulls_first_op)


@compiles(AscNullsFirst)
def _nulls_first(element: AscNullsFirst, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_unary(element, **kw))


@compiles(AscNullsFirst, "sqlite")
def _nulls_first_sqlite(element: AscNullsFirst, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.element, **kw))


def _partial(where: str) -> dict[str, Any]:
    return {"sqlite_where": text(where), "postgresql_where": text(where)}


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("kind", CAMPAIGN_KINDS), name="kind"),
        CheckConstraint(_in("dial_mode", DIAL_MODES), name="dial_mode"),
        CheckConstraint(_in("state", CAMPAIGN_STATES), name="state"),
        CheckConstraint(_in("days", CALLING_DAYS), name="days"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_pos"),
        Index("ix_campaigns_state_priority", "state", "priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    script_id: Mapped[str] = mapped_column(String(64))  # scripts_templates/<id>.yaml
    dial_mode: Mapped[str] = mapped_column(String(12), default="progressive")
    ratio: Mapped[float] = mapped_column(Float, default=2.0)  # calls per idle agent (mode "ratio")
    target_abandon: Mapped[float] = mapped_column(Float, default=0.03)
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    window_start: Mapped[time] = mapped_column(Time, default=time(9, 0))  # local time of the lead
    window_end: Mapped[time] = mapped_column(Time, default=time(20, 0))
    days: Mapped[str] = mapped_column(String(8), default="working")  # trading | working | every
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_delays: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # outcome -> minutes
    recycle: Mapped[bool] = mapped_column(Boolean, default=False)  # exhausted leads may be recycled by hand
    amd_policy: Mapped[str] = mapped_column(String(8), default="human")  # how AMD NOTSURE is treated
    leave_message: Mapped[bool] = mapped_column(Boolean, default=False)  # on a machine: play a message
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(10), default="draft")
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # start when scheduled
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    groups: Mapped[list["CampaignGroup"]] = relationship(cascade="all, delete-orphan")
    agents: Mapped[list["CampaignAgent"]] = relationship(cascade="all, delete-orphan")


class CampaignGroup(Base):
    """A service group assigned to a campaign (all its agents may take its calls)."""

    __tablename__ = "campaign_groups"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    service_group_id: Mapped[int] = mapped_column(ForeignKey("service_groups.id"), primary_key=True)


class CampaignAgent(Base):
    """One agent assigned to a campaign by name."""

    __tablename__ = "campaign_agents"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        CheckConstraint(_in("status", LEAD_STATUSES), name="status"),
        UniqueConstraint("campaign_id", "phone", name="uq_leads_campaign_phone"),
        # the hopper: dialable leads of one campaign in priority order
        Index("ix_leads_hopper", "campaign_id", "status", "priority", "next_attempt_at"),
        Index("ix_leads_phone", "phone"),
        Index("ix_leads_claimed_until", "claimed_until"),
        # expired claims of a campaign (a dead dialler's leads, ``hopper.expired_claims_query``)
        Index("ix_leads_in_flight", "campaign_id", "claimed_until", **_partial("status = 'in_progress'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first
    status: Mapped[str] = mapped_column(String(12), default="new")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(12), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # dialler id
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. {"met_at": "某银行网点"}
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


# the hopper's claim (``hopper.dialable_query``): the dialable leads of a campaign already in the claim's order,
# so ``LIMIT`` stops the scan after the batch (no sort of the list)
Index("ix_leads_dialable", Lead.campaign_id, Lead.priority.desc(), AscNullsFirst(Lead.next_attempt_at), Lead.id,
      **_partial(DIALABLE_WHERE))


class DncEntry(Base):
    """Do not call: ``campaign_id`` NULL means every campaign (the global list)."""

    __tablename__ = "dnc_entries"
    __table_args__ = (Index("ix_dnc_entries_phone_campaign", "phone", "campaign_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True)
    reason: Mapped[str] = mapped_column(String(64), default="")
    added_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Attempt(Base):
    """One dial attempt; ``call_id`` is the id the PBX knows the call by (our ChannelId): ``telephony.variables.attempt_call_id(id)``."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_campaign_dialled", "campaign_id", "dialled_at"),
        Index("ix_attempts_lead", "lead_id"),
        Index("ix_attempts_agent_dialled", "agent_id", "dialled_at"),
        # calls in flight: only the open attempts are in them; per campaign (metrics, pacing) and by the time
        # they were dialled (the wall board's counts; SQLite, without statistics, takes the day index otherwise)
        Index("ix_attempts_open", "campaign_id", "dialled_at", **_partial(OPEN_WHERE)),
        Index("ix_attempts_open_dialled", "dialled_at", **_partial(OPEN_WHERE)),
        # attempts by day (the wall board's today, reports over a range) across campaigns
        Index("ix_attempts_dialled_campaign", "dialled_at", "campaign_id", "connected_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    attempt_no: Mapped[int] = mapped_column(Integer, default=1)  # 1 for the lead's first attempt
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id", use_alter=True), nullable=True)
    call_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    dialer_id: Mapped[str] = mapped_column(String(64), default="")
    server: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(12), default="progressive")  # dial mode, or "callback"
    dialled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(12), nullable=True)  # ATTEMPT_OUTCOMES
    hangup_cause: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hangup_text: Mapped[str] = mapped_column(String(64), default="")
    amd: Mapped[str | None] = mapped_column(String(8), nullable=True)  # human | machine | notsure
    amd_cause: Mapped[str] = mapped_column(String(64), default="")
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False)
    talk_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    script_run: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AgentSession(Base):
    """An agent's dialler shift: current state (the row) and every change (``AgentStateChange``).

    ``dialer_id``/``lease_until``: the dialler process driving this agent's phone; a crashed dialler's lease runs out.
    ``preview_lead_id``/``preview_action``: preview mode, the lead shown and the agent's choice (dial | skip).
    """

    __tablename__ = "agent_sessions"
    __table_args__ = (
        CheckConstraint(_in("state", AGENT_STATES), name="state"),
        Index("ix_agent_sessions_campaign_state", "campaign_id", "state", "state_since"),
        Index("ix_agent_sessions_staff_ended", "staff_id", "ended_at"),
        Index("ix_agent_sessions_open", "state", **_partial(OPEN_WHERE)),  # agents by state (wall board)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True)
    phone: Mapped[str] = mapped_column(String(64), default="")  # dial string, e.g. PJSIP/1001
    state: Mapped[str] = mapped_column(String(12), default="logged_out")
    reason: Mapped[str] = mapped_column(String(32), default="")  # pause reason
    state_since: Mapped[datetime] = mapped_column(UtcDateTime)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"), nullable=True)  # reserved/talking/wrap-up
    preview_lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"), nullable=True)
    preview_action: Mapped[str | None] = mapped_column(String(8), nullable=True)
    dialer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AgentStateChange(Base):
    __tablename__ = "agent_state_changes"
    __table_args__ = (Index("ix_agent_state_changes_staff_at", "staff_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("agent_sessions.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    from_state: Mapped[str] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(32), default="")
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class Callback(Base):
    """A call back booked at ``due_at``: by its owner only (``agent_only``) or by anyone on the campaign."""

    __tablename__ = "callbacks"
    __table_args__ = (
        CheckConstraint(_in("status", CALLBACK_STATUSES), name="status"),
        Index("ix_callbacks_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), nullable=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True, index=True)
    phone: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    agent_only: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    note: Mapped[str] = mapped_column(Text, default="")
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id", use_alter=True), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    placed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AbandonDay(Base):
    """The abandon budget: per campaign and local day (the settings time zone), the live answers that reached
    the connect decision (``humans``), those left waiting past the grace period (``abandoned``) and those
    that reached an agent (``connected``).  Incremented by ``hopper.finish_attempt`` in the transaction that
    closes the attempt (an upsert, so diallers sharing a campaign add up); read by ``dialer.budget``."""

    __tablename__ = "abandon_days"
    __table_args__ = (
        CheckConstraint("abandoned <= humans AND connected <= humans", name="counts"),
        Index("ix_abandon_days_day", "day"),
    )

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    humans: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    connected: Mapped[int] = mapped_column(Integer, default=0)


class AttemptDay(Base):
    """The reports' rollup: per local day the attempts were DIALLED on (the settings time zone), campaign, agent
    (0: none) and disposition ('': none), the closed attempts, those that reached an agent (``connected_at`` set)
    and their talk time (whole seconds, each attempt's truncated).  Kept by ``dialer.rollups`` in the transaction
    that closes an attempt (and that changes a closed attempt's disposition), by an atomic upsert; read by
    ``services.kpis.report`` for long ranges, so a month's report reads a month of rows per campaign and agent,
    not every attempt of the month.  Open attempts are not in it (the report counts them from
    ``ix_attempts_open_dialled``)."""

    __tablename__ = "attempt_days"
    __table_args__ = (Index("ix_attempt_days_campaign", "campaign_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # staff id, 0 when no agent took it
    disposition: Mapped[str] = mapped_column(String(32), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[int] = mapped_column(Integer, default=0)


class DialerProcess(Base):
    """A running dialler process and its lease (``dialer.leases``): renewed by ``heartbeat`` at every sync; when
    ``lease_until`` has passed, a live dialler takes over its agents, attempts and leads and deletes the row."""

    __tablename__ = "dialer_processes"

    dialer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
