"""预约服务: the appointment use case the hotline, the agent card, the supervisor page and the reminders call.

    free_slots(kind)        the next slots with room (the hotline offers them; the card's form lists them)
    book(BookAppointment)   the rules of ``domain/appointments.py`` under the client's lock and the slot's row lock,
                            idempotent per actor and key (``<call id>:<step>`` on the hotline)
    cancel(id, actor)       the client until ``cancel_until_minutes`` before; staff until it starts
    mark(id, actor, status) a supervisor closes a begun one as done / missed
    of_client / listing     the client's upcoming ones (card, hotline); a supervisor's groups' by day
    send_reminders(sms)     one SMS per appointment ``reminder_minutes`` before it (care_deliveries subject
                            ``appt:<id>``: re-runs and concurrent runs send once), inside quiet hours only

Capacity holds under concurrency: a booking raises ``appointment_slots.booked`` of its (kind, slot) under that
row's lock (``INSERT ... ON CONFLICT DO NOTHING`` then ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), a cancel lowers it.
"""

from __future__ import annotations

import json

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.access import Actor, may_read_client
from callcenter.domain.appointments import (
    OPEN_STATUSES,
    AppointmentError,
    Booked,
    Rule,
    SlotRules,
    KINDS,
    decide,
    free_slots,
    may_cancel,
    reminder_due,
    slot_capacity,
    slot_starts,
)
from callcenter.i18n import t
from callcenter.ports.calendar import Calendar
from callcenter.store.db import dialect_name, read_only, run_in_transaction
from callcenter.store.models import Appointment, AppointmentSlot, Client
from callcenter.store.models.core import AuditLog

if TYPE_CHECKING:
    from callcenter.settings import Settings

BOOKING_ROLES = ("client", "agent", "supervisor", "back_office")


@dataclass(frozen=True)
class BookAppointment:
    key: str  # idempotency key, per actor
    client_id: int
    kind: str
    slot_start: datetime  # aware
    channel: str  # ivr / twilio / text / agent / api
    actor: Actor
    note: str = ""
    ivr_session_id: int | None = None


@dataclass(frozen=True)
class AppointmentView:
    id: int
    client_id: int
    client_name: str
    kind: str
    slot_start: datetime
    status: str
    channel: str
    service_group_id: int | None
    note: str
    replayed: bool = False


@dataclass(frozen=True)
class SlotView:
    """One slot on the supervisor's grid."""

    start: datetime  # local time
    booked: int
    capacity: int
    own: bool  # a capacity set for this slot (else the setting's for the kind)


def rules_from(settings: "Settings") -> SlotRules:
    return SlotRules(
        slot_minutes=settings.appointment_slot_minutes,
        min_lead_minutes=settings.appointment_min_lead_minutes,
        horizon_trading_days=settings.appointment_horizon_trading_days,
        capacity={"group_callback": settings.appointment_capacity_group_callback,
                  "analyst_callback": settings.appointment_capacity_analyst_callback,
                  "branch_visit": settings.appointment_capacity_branch_visit},
        max_open_per_client=settings.appointment_max_open_per_client,
        reminder_minutes=settings.appointment_reminder_minutes,
    )


def slot_label(start: datetime, tz: ZoneInfo, lang: str) -> str:
    """A slot as the caller hears it and the screens show it: '12月3日 星期四 10:00' / 'Thu 3 Dec 10:00'."""
    local = start.astimezone(tz)
    weekday = t(f"appointments.weekday.{local.isoweekday()}", lang)
    return t("appointments.slot_label", lang, month=local.month, day=local.day, weekday=weekday,
             month_name=t(f"appointments.month.{local.month}", lang), time=local.strftime("%H:%M"))


class AppointmentService:
    def __init__(self, sessions: sessionmaker[Session], calendar: Calendar, rules: SlotRules, tz: ZoneInfo,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._sessions = sessions
        self._calendar = calendar
        self.rules = rules
        self.tz = tz
        self._clock = clock
        self._pg = dialect_name(sessions) == "postgresql"

    # ------------------------------------------------------------------ reads
    def free_slots(self, kind: str, *, at: datetime | None = None, limit: int = 5) -> list[datetime]:
        """The next ``limit`` slots of ``kind`` with room, aware local datetimes in time order."""
        now = (at or self._clock()).astimezone(self.tz)

        def counts(s: Session) -> tuple[dict[datetime, int], dict[datetime, int]]:
            rows = s.execute(select(AppointmentSlot.slot_start, AppointmentSlot.booked, AppointmentSlot.capacity)
                             .where(AppointmentSlot.kind == kind, AppointmentSlot.slot_start >= now)).all()
            return ({start.astimezone(self.tz): int(n) for start, n, _ in rows},
                    {start.astimezone(self.tz): int(c) for start, _, c in rows if c is not None})

        booked, capacities = read_only(self._sessions, counts)
        return free_slots(kind, now, self._calendar.is_trading_day, booked, self.rules, limit, capacities)

    def slot_grid(self, kind: str, day: date) -> list[SlotView]:
        """Every slot of ``kind`` on ``day`` (none on a day the exchange is closed): booked, capacity, whether the
        capacity is the slot's own (a supervisor's) or the setting's."""
        if kind not in KINDS:
            raise AppointmentError(Rule.BAD_KIND, kind[:32])
        if not self._calendar.is_trading_day(day):
            return []
        starts = [datetime.combine(day, t_, tzinfo=self.tz) for t_ in slot_starts(day, self.rules)]

        def rows(s: Session) -> dict[datetime, tuple[int, int | None]]:
            got = s.execute(select(AppointmentSlot.slot_start, AppointmentSlot.booked, AppointmentSlot.capacity)
                            .where(AppointmentSlot.kind == kind,
                                   AppointmentSlot.slot_start.in_([x.astimezone(timezone.utc) for x in starts])))
            return {start.astimezone(self.tz): (int(n), c) for start, n, c in got}

        known = read_only(self._sessions, rows)
        out = []
        for start in starts:
            booked, own = known.get(start, (0, None))
            out.append(SlotView(start, booked, slot_capacity(kind, own, self.rules), own is not None))
        return out

    def set_capacity(self, actor: Actor, kind: str, start: datetime, capacity: int | None, reason: str = "", *,
                     at: datetime | None = None) -> SlotView:
        """A supervisor (or admin) gives one slot a capacity of its own (0 closes it; None gives it back the
        setting's), audited with before and after. Appointments already booked there stay booked: a capacity
        below them only stops new bookings. A slot off the grid or on a closed day is refused."""
        if actor.role not in ("supervisor", "admin"):
            raise AppointmentError(Rule.NOT_ALLOWED)
        if capacity is not None and not 0 <= capacity <= 100:
            raise AppointmentError(Rule.BAD_CAPACITY, str(capacity))
        local = start.astimezone(self.tz)
        if kind not in KINDS:
            raise AppointmentError(Rule.BAD_KIND, kind[:32])
        if not self._calendar.is_trading_day(local.date()):
            raise AppointmentError(Rule.NOT_TRADING_DAY)
        if local.timetz().replace(tzinfo=None) not in slot_starts(local.date(), self.rules):
            raise AppointmentError(Rule.OFF_GRID, local.time().isoformat("minutes"))
        now = at or self._clock()

        def work(s: Session) -> SlotView:
            slot = self._slot_row(s, kind, local.astimezone(timezone.utc))
            before = slot.capacity
            slot.capacity = capacity
            s.add(AuditLog(at=now, staff_id=actor.staff_id, action="appointment_capacity",
                           detail=json.dumps({"subject": f"{kind} {local.isoformat()}", "reason": reason[:200],
                                              "before": {"capacity": before}, "after": {"capacity": capacity}},
                                             ensure_ascii=False)))
            return SlotView(local, slot.booked, slot_capacity(kind, capacity, self.rules), capacity is not None)

        return run_in_transaction(self._sessions, work)

    def of_client(self, client_id: int, actor: Actor, *, at: datetime | None = None,
                  upcoming_only: bool = True) -> list[AppointmentView]:
        now = at or self._clock()

        def work(s: Session) -> list[AppointmentView]:
            client = self._visible(s, actor, client_id)
            q = select(Appointment).where(Appointment.client_id == client.id)
            if upcoming_only:
                q = q.where(Appointment.status.in_(OPEN_STATUSES), Appointment.slot_start >= now)
            return [self._view(a, client) for a in s.execute(q.order_by(Appointment.slot_start)).scalars()]

        return run_in_transaction(self._sessions, work)

    def listing(self, actor: Actor, day_from: date, day_to: date, *, kind: str | None = None,
                status: str | None = None) -> list[AppointmentView]:
        """A supervisor's groups' appointments (an admin's: all) from ``day_from`` to ``day_to`` (local days)."""
        if actor.role not in ("supervisor", "admin"):
            return []

        def work(s: Session) -> list[AppointmentView]:
            q = (select(Appointment, Client).join(Client, Client.id == Appointment.client_id)
                 .where(Appointment.slot_day >= day_from, Appointment.slot_day <= day_to))
            if actor.role == "supervisor":
                q = q.where(Client.service_group_id.in_(sorted(actor.group_ids) or [-1]))
            if kind:
                q = q.where(Appointment.kind == kind)
            if status:
                q = q.where(Appointment.status == status)
            return [self._view(a, c) for a, c in s.execute(q.order_by(Appointment.slot_start, Appointment.id)).all()]

        return run_in_transaction(self._sessions, work)

    # ------------------------------------------------------------------ book / cancel
    def book(self, cmd: BookAppointment, *, at: datetime | None = None) -> AppointmentView:
        """Raises AppointmentError. The same key from the same actor answers the first booking (``replayed``)."""
        now = at or self._clock()
        if not cmd.key or len(cmd.key) > 128 or cmd.slot_start.tzinfo is None:
            raise AppointmentError(Rule.OFF_GRID if cmd.key else Rule.UNKNOWN_APPOINTMENT)
        if cmd.actor.role not in BOOKING_ROLES:
            raise AppointmentError(Rule.UNKNOWN_CLIENT)
        for _ in range(5):
            try:
                return run_in_transaction(self._sessions, lambda s: self._book(s, cmd, now))
            except IntegrityError:
                continue  # a twin inserted the same key or the same slot row: look again
        raise RuntimeError("could not book the appointment")  # pragma: no cover

    def _book(self, s: Session, cmd: BookAppointment, now: datetime) -> AppointmentView:
        client = self._visible(s, cmd.actor, cmd.client_id)
        self._lock_client(s, client.id)
        existing = s.execute(select(Appointment).where(Appointment.idempotency_scope == cmd.actor.scope,
                                                       Appointment.idempotency_key == cmd.key)).scalar_one_or_none()
        if existing is not None:
            view = self._view(existing, client)
            return AppointmentView(**{**view.__dict__, "replayed": True})
        if cmd.kind in ("group_callback", "branch_visit") and client.service_group_id is None:
            raise AppointmentError(Rule.NO_SERVICE_GROUP)
        start = cmd.slot_start.astimezone(timezone.utc)
        local = start.astimezone(self.tz)
        slot = self._slot_row(s, cmd.kind, start)
        open_q = select(func.count(Appointment.id)).where(Appointment.client_id == client.id,
                                                          Appointment.status.in_(OPEN_STATUSES),
                                                          Appointment.slot_start >= now)
        booked = Booked(
            in_slot=slot.booked,
            capacity=slot.capacity,
            client_open=int(s.execute(open_q).scalar_one()),
            client_same_day_kind=int(s.execute(open_q.where(Appointment.kind == cmd.kind,
                                                            Appointment.slot_day == local.date())).scalar_one()),
        )
        decide(cmd.kind, local, now.astimezone(self.tz), self._calendar.is_trading_day, booked, self.rules)
        slot.booked += 1
        row = Appointment(client_id=client.id, service_group_id=client.service_group_id, kind=cmd.kind,
                          slot_start=start, slot_day=local.date(), status="booked", channel=cmd.channel[:16],
                          idempotency_scope=cmd.actor.scope, idempotency_key=cmd.key,
                          booked_by=cmd.actor.staff_id if cmd.actor.role in ("agent", "supervisor") else None,
                          ivr_session_id=cmd.ivr_session_id, note=cmd.note[:2000], created_at=now)
        s.add(row)
        s.flush()
        return self._view(row, client)

    def cancel(self, appointment_id: int, actor: Actor, *, at: datetime | None = None) -> AppointmentView:
        now = at or self._clock()

        def work(s: Session) -> AppointmentView:
            row = s.get(Appointment, appointment_id)
            if row is None:
                raise AppointmentError(Rule.UNKNOWN_APPOINTMENT)
            try:
                client = self._visible(s, actor, row.client_id)
            except AppointmentError:
                raise AppointmentError(Rule.UNKNOWN_APPOINTMENT) from None
            self._lock_client(s, client.id)
            s.refresh(row)
            if row.status == "cancelled":
                return self._view(row, client)
            may_cancel(row.status, row.slot_start.astimezone(self.tz), now.astimezone(self.tz), self.rules,
                       staff=actor.role != "client")
            row.status, row.cancelled_at = "cancelled", now
            slot = self._slot_row(s, row.kind, row.slot_start)
            slot.booked = max(0, slot.booked - 1)
            return self._view(row, client)

        return run_in_transaction(self._sessions, work)

    def mark(self, appointment_id: int, actor: Actor, status: str, *, at: datetime | None = None) -> AppointmentView:
        """A supervisor closes an appointment whose slot has begun: ``done`` or ``missed`` (the slot's count
        stays: the slot was used)."""
        now = at or self._clock()
        if status not in ("done", "missed") or actor.role not in ("supervisor", "admin"):
            raise AppointmentError(Rule.NOT_CANCELLABLE)

        def work(s: Session) -> AppointmentView:
            row = s.get(Appointment, appointment_id)
            if row is None:
                raise AppointmentError(Rule.UNKNOWN_APPOINTMENT)
            client = self._visible(s, actor, row.client_id)
            if row.status not in OPEN_STATUSES or row.slot_start > now:
                raise AppointmentError(Rule.NOT_CANCELLABLE)
            row.status = status
            return self._view(row, client)

        return run_in_transaction(self._sessions, work)

    # ------------------------------------------------------------------ reminders
    def send_reminders(self, sms: Any, *, now: datetime | None = None, quiet: Any = None) -> dict[str, int]:
        """One SMS per booked appointment once it is ``reminder_minutes`` away (and not started), for clients who
        did not opt out of SMS, inside quiet hours. Idempotent (care_deliveries subject ``appt:<id>``)."""
        from callcenter.domain.reminders import QuietHours
        from callcenter.services.care.dispatch import _send_sms, claim
        from callcenter.services.care.messages import sms_text
        from callcenter.services.care.planner import PlanItem
        from callcenter.services.care.subscriptions import optouts_of

        now = now or self._clock()
        local_now = now.astimezone(self.tz)
        quiet = quiet or QuietHours()
        report = {"sent": 0, "failed": 0, "held_quiet": 0, "skipped": 0}
        horizon = now + timedelta(minutes=self.rules.reminder_minutes)

        def due(s: Session) -> list[tuple[int, int, str, datetime, str, str]]:
            rows = s.execute(select(Appointment.id, Appointment.client_id, Appointment.kind, Appointment.slot_start,
                                    Client.mobile, Client.language).join(Client, Client.id == Appointment.client_id)
                             .where(Appointment.status == "booked", Appointment.reminded_at.is_(None),
                                    Appointment.slot_start > now, Appointment.slot_start <= horizon)
                             .order_by(Appointment.slot_start)).all()
            optouts = optouts_of(s, sorted({r[1] for r in rows}))
            return [(i, c, k, st, m or "", lang or "zh-CN") for i, c, k, st, m, lang in rows
                    if not optouts[c] & {"sms", "all"}]

        for appt_id, client_id, kind, start, mobile, lang in run_in_transaction(self._sessions, due):
            if not reminder_due("booked", start.astimezone(self.tz), local_now, False, self.rules) or not mobile:
                report["skipped"] += 1
                continue
            if not quiet.allows("sms", local_now):
                report["held_quiet"] += 1
                continue
            message = t("appointments.reminder_sms", lang, kind=t(f"appointments.kind.{kind}", lang),
                        slot=slot_label(start, self.tz, lang))
            item = PlanItem(client_id=client_id, client_no="", client_name="", mobile_masked="", language=lang,
                            channel="sms", subject=f"appt:{appt_id}", event_id=None, rule_id=None, rule_name="",
                            reason="appointment", verdict="send", verdict_text="", message=message, mobile=mobile)
            delivery_id = run_in_transaction(self._sessions, lambda s: claim(s, item, local_now.date(), now))

            def mark(s: Session, i: int = appt_id) -> None:
                s.get_one(Appointment, i).reminded_at = now

            run_in_transaction(self._sessions, mark)
            if delivery_id is None:
                continue  # sent before (or by a twin run)
            status = _send_sms(self._sessions, sms, delivery_id, mobile, sms_text(message, lang), now)
            report["failed" if status == "failed" else "sent"] += 1
        return report

    # ------------------------------------------------------------------ helpers
    def _visible(self, s: Session, actor: Actor, client_id: int) -> Client:
        client = s.get(Client, client_id)
        if client is None or not may_read_client(actor, client.id, client.service_group_id):
            raise AppointmentError(Rule.UNKNOWN_CLIENT)
        return client

    def _lock_client(self, s: Session, client_id: int) -> None:
        if self._pg:
            s.execute(select(Client.id).where(Client.id == client_id).with_for_update())

    def _slot_row(self, s: Session, kind: str, start: datetime) -> AppointmentSlot:
        if self._pg:
            from sqlalchemy.dialects.postgresql import insert

            s.execute(insert(AppointmentSlot).values(kind=kind, slot_start=start, booked=0)
                      .on_conflict_do_nothing())
            return s.execute(select(AppointmentSlot).where(AppointmentSlot.kind == kind,
                                                           AppointmentSlot.slot_start == start)
                             .with_for_update()).scalar_one()
        row = s.get(AppointmentSlot, (kind, start))
        if row is None:
            row = AppointmentSlot(kind=kind, slot_start=start, booked=0)
            s.add(row)
            s.flush()
        return row

    def _view(self, a: Appointment, client: Client) -> AppointmentView:
        return AppointmentView(a.id, a.client_id, client.name, a.kind, a.slot_start.astimezone(self.tz), a.status,
                               a.channel, a.service_group_id, a.note)
