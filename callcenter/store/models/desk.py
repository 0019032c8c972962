"""Agent desk and supervisor records: calls handled at the desk (contacts), monthly group assignments and KPI
snapshots (callbacks are the dialler's ``callbacks`` table), and the claims that make every scheduled run happen once.

Campaign and attempt ids are plain integers here (the dialler owns those tables); clients and staff are keys.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, Fen, UtcDateTime


class DeskContact(Base):
    """One call handled by an agent (outbound attempt or inbound hand-off): the screen's state while it lasts,
    then the record of the contact (script path and answers, note, disposition)."""

    __tablename__ = "desk_contacts"
    __table_args__ = (
        Index("ix_desk_contacts_client_started", "client_id", "started_at"),
        Index("ix_desk_contacts_agent_started", "agent_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True)
    direction: Mapped[str] = mapped_column(String(8), default="outbound")  # outbound / inbound
    attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    lead_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    attempt_no: Mapped[int] = mapped_column(Integer, default=1)
    ivr_session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    hung_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # disposition set
    script_id: Mapped[str] = mapped_column(String(64), default="")
    script_state: Mapped[str] = mapped_column(Text, default="")  # ScriptRun.to_dict() as JSON
    note: Mapped[str] = mapped_column(Text, default="")
    disposition: Mapped[str] = mapped_column(String(32), default="")
    complaint: Mapped[bool] = mapped_column(default=False)


class GroupAssignment(Base):
    """Monthly assignment of an important off-site client to a service group, by contribution rank."""

    __tablename__ = "group_assignments"
    __table_args__ = (UniqueConstraint("month", "client_id", name="uq_group_assignments_month_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("service_groups.id"))
    rank: Mapped[int] = mapped_column(Integer)
    contribution_fen: Mapped[int] = mapped_column(Fen)


class ClientAssetSnapshot(Base):
    """A client's total assets at a month's close, the base of the next month's growth figures."""

    __tablename__ = "client_asset_snapshots"
    __table_args__ = (UniqueConstraint("month", "client_id", name="uq_client_asset_snapshots_month_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    assets_fen: Mapped[int] = mapped_column(Fen)


class GroupKpi(Base):
    """Monthly KPIs of one service group (考核): asset growth = net deposits + investment gain."""

    __tablename__ = "group_kpis"
    __table_args__ = (UniqueConstraint("month", "group_id", name="uq_group_kpis_month_group"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
    group_id: Mapped[int] = mapped_column(ForeignKey("service_groups.id"))
    clients: Mapped[int] = mapped_column(Integer, default=0)
    assets_start_fen: Mapped[int] = mapped_column(Fen, default=0)
    assets_end_fen: Mapped[int] = mapped_column(Fen, default=0)
    net_deposits_fen: Mapped[int] = mapped_column(Fen, default=0)
    investment_gain_fen: Mapped[int] = mapped_column(Fen, default=0)
    trade_volume_fen: Mapped[int] = mapped_column(Fen, default=0)
    turnover_bp: Mapped[int] = mapped_column(Integer, default=0)  # trade volume / average assets, basis points
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    complaints: Mapped[int] = mapped_column(Integer, default=0)
    qa_score_pct: Mapped[float | None] = mapped_column(Float, nullable=True)  # mean 质检 score of the month
    qa_evaluations: Mapped[int] = mapped_column(Integer, default=0)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ScheduledRunClaim(Base):
    """One row per (job, scheduled fire time) that ran: a second scheduler or a restart cannot run it again."""

    __tablename__ = "scheduled_run_claims"
    __table_args__ = (UniqueConstraint("job_id", "run_at", name="uq_scheduled_run_claims_job_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(191))
    run_at: Mapped[str] = mapped_column(String(40))  # scheduled fire time, ISO 8601 UTC
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
