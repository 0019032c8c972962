"""Complaints (投诉): opened by an agent or from the IVR, owned, due, tracked through a status history; the
overdue ones listed for supervisors; closing one schedules a satisfaction call-back (script
``satisfaction_callback``) automatically.

Life cycle (pure, ``next_status``)::

    open -> in_progress -> resolved -> closed
      \\______________________________/^      (an open complaint may be closed directly with a resolution)
    resolved/closed -> in_progress            (reopened: the client is not satisfied)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ports.calendar import Calendar
from callcenter.i18n import t
from callcenter.services.deps import Deps
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, ServiceGroup
from callcenter.store.models.care import CareCallback, Complaint, ComplaintHistory

CATEGORIES = ("service_attitude", "trading_system", "fund_transfer", "commission", "misleading_sales",
              "unauthorized_trading", "account", "other")
# Hours to resolve: money and conduct complaints within a day, the rest within three days.
DUE_HOURS = {"fund_transfer": 24, "misleading_sales": 24, "unauthorized_trading": 24, "trading_system": 24}
DEFAULT_DUE_HOURS = 72
TRANSITIONS = {
    "open": {"in_progress", "resolved", "closed"},
    "in_progress": {"resolved", "closed"},
    "resolved": {"closed", "in_progress"},
    "closed": {"in_progress"},
}
OPEN_STATUSES = ("open", "in_progress")
SATISFACTION_SCRIPT = "satisfaction_callback"
CALLBACK_WITHIN_TRADING_DAYS = 3


class ComplaintError(ValueError):
    pass


def next_status(current: str, wanted: str) -> str:
    """Pure: the status after a transition, or ComplaintError naming the forbidden move."""
    if wanted not in TRANSITIONS.get(current, set()):
        raise ComplaintError(t("care.errors.bad_transition", "zh-CN", from_status=current, to_status=wanted))
    return wanted


def due_at(category: str, opened_at: datetime) -> datetime:
    return opened_at + timedelta(hours=DUE_HOURS.get(category, DEFAULT_DUE_HOURS))


@dataclass(frozen=True)
class ComplaintView:
    id: int
    client_id: int
    category: str
    text: str
    channel: str
    call_ref: str
    owner_id: int | None
    status: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    resolution: str
    overdue: bool


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    staff_id: int | None
    action: str
    from_status: str
    to_status: str
    note: str


def _view(c: Complaint, now: datetime) -> ComplaintView:
    return ComplaintView(c.id, c.client_id, c.category, c.text, c.channel, c.call_ref, c.owner_id, c.status,
                         c.opened_at, c.due_at, c.closed_at, c.resolution,
                         c.status in OPEN_STATUSES and c.due_at < now)


class ComplaintService:
    """Use cases, one transaction each; ``staff_id`` None means the IVR or the system."""

    def __init__(self, sessions: sessionmaker[Session], calendar: Calendar, clock: Callable[[], datetime],
                 local_date: Callable[[datetime], date]) -> None:
        self.sessions = sessions
        self.calendar = calendar
        self.clock = clock
        self.local_date = local_date

    @classmethod
    def for_app(cls, core: Deps) -> "ComplaintService":
        tz = core.settings.tz
        return cls(core.sessions, core.calendar, core.clock, lambda dt: dt.astimezone(tz).date())

    def _get(self, s: Session, complaint_id: int, lock: bool = True) -> Complaint:
        stmt = select(Complaint).where(Complaint.id == complaint_id)
        row = s.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
        if row is None:
            raise ComplaintError(t("care.errors.unknown_complaint", "zh-CN", id=complaint_id))
        return row

    def open(self, client_id: int, category: str, text: str, *, channel: str, call_ref: str = "",
             staff_id: int | None = None, owner_id: int | None = None) -> int:
        """Open a complaint. Without an owner it goes to the supervisor of the client's service group."""
        if category not in CATEGORIES:
            raise ComplaintError(t("care.errors.unknown_category", "zh-CN", category=category))
        if not text.strip():
            raise ComplaintError(t("care.errors.empty_text", "zh-CN"))
        now = self.clock()

        def work(s: Session) -> int:
            owner = owner_id
            if owner is None:
                client = s.get(Client, client_id)
                if client is None:
                    raise ComplaintError(f"no client {client_id}")
                if client.service_group_id is not None:
                    owner = s.get_one(ServiceGroup, client.service_group_id).supervisor_id
            c = Complaint(client_id=client_id, category=category, text=text.strip(), channel=channel,
                          call_ref=call_ref[:64], opened_by=staff_id, owner_id=owner, status="open",
                          opened_at=now, due_at=due_at(category, now))
            s.add(c)
            s.flush()
            s.add(ComplaintHistory(complaint_id=c.id, at=now, staff_id=staff_id, action="opened", to_status="open",
                                   note=""))
            if owner is not None:
                s.add(ComplaintHistory(complaint_id=c.id, at=now, staff_id=staff_id, action="assigned",
                                       note=str(owner)))
            return c.id

        return run_in_transaction(self.sessions, work)

    def assign(self, complaint_id: int, owner_id: int, *, staff_id: int | None) -> None:
        now = self.clock()

        def work(s: Session) -> None:
            c = self._get(s, complaint_id)
            c.owner_id = owner_id
            s.add(ComplaintHistory(complaint_id=c.id, at=now, staff_id=staff_id, action="assigned", note=str(owner_id)))

        run_in_transaction(self.sessions, work)

    def note(self, complaint_id: int, text: str, *, staff_id: int | None) -> None:
        now = self.clock()

        def work(s: Session) -> None:
            c = self._get(s, complaint_id)
            s.add(ComplaintHistory(complaint_id=c.id, at=now, staff_id=staff_id, action="note", note=text))

        run_in_transaction(self.sessions, work)

    def move(self, complaint_id: int, to_status: str, *, staff_id: int | None, note: str = "",
             resolution: str | None = None) -> ComplaintView:
        """Change the status. Closing needs a resolution (given now or earlier) and schedules the
        satisfaction call-back; reopening cancels a call-back not yet made."""
        now = self.clock()

        def work(s: Session) -> ComplaintView:
            c = self._get(s, complaint_id)
            before = c.status
            c.status = next_status(before, to_status)
            if resolution is not None:
                c.resolution = resolution.strip()
            if to_status in ("resolved", "closed") and not c.resolution:
                raise ComplaintError(t("care.errors.resolution_required", "zh-CN"))
            if to_status == "closed":
                c.closed_at = now
                self._schedule_callback(s, c, now)
            elif before in ("resolved", "closed"):
                c.closed_at = None
                for cb in s.scalars(select(CareCallback).where(CareCallback.complaint_id == c.id,
                                                               CareCallback.status == "scheduled")):
                    cb.status = "cancelled"
            s.add(ComplaintHistory(complaint_id=c.id, at=now, staff_id=staff_id, action="status",
                                   from_status=before, to_status=c.status, note=note))
            return _view(c, now)

        return run_in_transaction(self.sessions, work)

    def _schedule_callback(self, s: Session, c: Complaint, now: datetime) -> None:
        today = self.local_date(now)
        not_before = self.calendar.add_trading_days(today, 1)
        due = self.calendar.add_trading_days(today, CALLBACK_WITHIN_TRADING_DAYS)
        existing = s.scalars(select(CareCallback).where(CareCallback.dedupe == f"complaint:{c.id}")).one_or_none()
        if existing is None:
            s.add(CareCallback(dedupe=f"complaint:{c.id}", client_id=c.client_id, purpose="satisfaction",
                               script_id=SATISFACTION_SCRIPT, complaint_id=c.id, not_before=not_before, due_on=due,
                               status="scheduled", created_at=now))
        elif existing.status == "cancelled":  # closed again after a reopening
            existing.status, existing.not_before, existing.due_on = "scheduled", not_before, due

    # --- reads ----------------------------------------------------------------------------------

    def get(self, complaint_id: int) -> ComplaintView:
        return run_in_transaction(self.sessions, lambda s: _view(self._get(s, complaint_id, lock=False), self.clock()))

    def history(self, complaint_id: int) -> list[HistoryEntry]:
        return run_in_transaction(self.sessions, lambda s: [
            HistoryEntry(h.at, h.staff_id, h.action, h.from_status, h.to_status, h.note)
            for h in s.scalars(select(ComplaintHistory).where(ComplaintHistory.complaint_id == complaint_id)
                               .order_by(ComplaintHistory.id))])

    def overdue(self, *, owner_id: int | None = None) -> list[ComplaintView]:
        """Open or in-progress complaints past their due time, most overdue first (supervisor pages)."""
        now = self.clock()

        def work(s: Session) -> list[ComplaintView]:
            stmt = select(Complaint).where(Complaint.status.in_(OPEN_STATUSES), Complaint.due_at < now)
            if owner_id is not None:
                stmt = stmt.where(Complaint.owner_id == owner_id)
            return [_view(c, now) for c in s.scalars(stmt.order_by(Complaint.due_at, Complaint.id))]

        return run_in_transaction(self.sessions, work)

    def list(self, *, status: str | None = None, client_id: int | None = None, limit: int = 200) -> list[ComplaintView]:
        now = self.clock()

        def work(s: Session) -> list[ComplaintView]:
            stmt = select(Complaint)
            if status:
                stmt = stmt.where(Complaint.status == status)
            if client_id is not None:
                stmt = stmt.where(Complaint.client_id == client_id)
            return [_view(c, now) for c in s.scalars(stmt.order_by(Complaint.id.desc()).limit(limit))]

        return run_in_transaction(self.sessions, work)

