"""Sending the day's reminders and greetings: once per client per subject, whatever the re-runs.

Each message is first CLAIMED by inserting its delivery row (INSERT ... ON CONFLICT DO NOTHING on the unique
(client, subject) pair) in its own committed transaction, and only the run whose insert went in sends it.
Two runs of the same day, a restart, or two processes at once therefore send it once. A row left "pending"
by a crash between the claim and the send is retried after ``lease`` (at-least-once for that narrow window:
a missed warrant reminder costs the client more than a repeated one).

Channels: ``sms`` is sent here; ``notify_call`` rows stay pending for ``notify_calls.NotificationCaller``;
``agent_call`` rows become a call-back for the agents (``status='queued'``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.care.messages import sms_text
from callcenter.services.care.planner import PlanItem, plan_day
from callcenter.domain.reminders import QuietHours
from callcenter.services.care.sms import TWILIO_STATUS
from callcenter.ports.sms import SmsReceipt, SmsSender
from callcenter.domain.masking import mask_phone
from callcenter.services.deps import Deps
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models.care import CareCallback, CareDelivery

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)


@dataclass
class RunReport:
    day: date
    sent: int = 0
    failed: int = 0
    queued_calls: int = 0  # notification calls waiting for the caller
    agent_callbacks: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # verdict -> count (opted_out, quiet_hours, ...)
    lost_race: int = 0  # claimed by another run first

    def count_skip(self, verdict: str) -> None:
        self.skipped[verdict] = self.skipped.get(verdict, 0) + 1


def _insert(s: Session) -> Any:
    return pg_insert(CareDelivery) if dialect_name(s) == "postgresql" else sqlite_insert(CareDelivery)


def claim(s: Session, item: PlanItem, day: date, now: datetime) -> int | None:
    """Insert the delivery row; its id, or None when another run (or an earlier one) has it."""
    status = "queued" if item.channel == "agent_call" else "pending"
    stmt = _insert(s).values(
        client_id=item.client_id, subject=item.subject, event_id=item.event_id, rule_id=item.rule_id,
        channel=item.channel, planned_for=day, reason=item.reason[:255], language=item.language,
        message=item.message, status=status, attempts=0, provider_ref="", detail="", claimed_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["client_id", "subject"]).returning(CareDelivery.id)
    return s.execute(stmt).scalar_one_or_none()


def _record_sms(s: Session, delivery_id: int, status: str, ref: str, error: str, now: datetime) -> None:
    s.execute(update(CareDelivery).where(CareDelivery.id == delivery_id).values(
        status=status, provider_ref=ref, detail=error[:255], attempts=CareDelivery.attempts + 1, updated_at=now))


def _send_sms(sessions: sessionmaker[Session], sms: SmsSender, delivery_id: int, to: str, body: str, now: datetime,
              kind: str = "") -> str:
    result = sms.send(to, body, reference=f"care-{delivery_id}", kind=kind)
    run_in_transaction(sessions, lambda s: _record_sms(s, delivery_id, result.status, result.provider_ref,
                                                       result.error, now))
    if result.status == "failed":
        log.warning("care SMS %s to %s failed: %s", delivery_id, mask_phone(to), result.error)
    return result.status


def _queue_agent_call(s: Session, delivery_id: int, item: PlanItem, day: date, now: datetime) -> None:
    dedupe = f"event:{item.event_id}:{item.client_id}" if item.event_id else f"care:{delivery_id}"
    if s.scalar(select(CareCallback.id).where(CareCallback.dedupe == dedupe)) is None:
        s.add(CareCallback(dedupe=dedupe, client_id=item.client_id, purpose="reminder", script_id="reminder",
                           event_id=item.event_id, not_before=day, due_on=day, status="scheduled", created_at=now))


def run_daily_reminders(
    core: Deps, day: date, *, sms: SmsSender, now: datetime | None = None, quiet: QuietHours = QuietHours()
) -> RunReport:
    """Send what the plan of ``day`` says, now. Idempotent and safe to run again or concurrently.
    Messages held back by quiet hours are not claimed; a later run inside the window sends them."""
    now = now or core.clock()
    tz: ZoneInfo = core.settings.tz
    report = RunReport(day)
    plan = run_in_transaction(core.sessions, lambda s: plan_day(s, day, core.calendar, now=now, tz=tz, quiet=quiet))
    for item in plan:
        if not item.will_send:
            report.count_skip(item.verdict)
            continue

        def take(s: Session, item: PlanItem = item) -> int | None:
            delivery_id = claim(s, item, day, now)
            if delivery_id is not None and item.channel == "agent_call":
                _queue_agent_call(s, delivery_id, item, day, now)
            return delivery_id

        delivery_id = run_in_transaction(core.sessions, take)
        if delivery_id is None:
            report.lost_race += 1
            continue
        if item.channel == "sms":
            status = _send_sms(core.sessions, sms, delivery_id, item.mobile, sms_text(item.message, item.language), now,
                               kind=item.subject.split(":", 1)[0])
            if status == "failed":
                report.failed += 1
            else:
                report.sent += 1
        elif item.channel == "notify_call":
            report.queued_calls += 1
        else:
            report.agent_callbacks += 1
    report.sent += resend_stale(core, sms, now)
    return report


def resend_stale(core: Deps, sms: SmsSender, now: datetime) -> int:
    """SMS rows a crashed run claimed but never recorded: take them over (one taker, by a conditional
    update of ``claimed_at``) and send."""
    from callcenter.store.models import Client

    stale = run_in_transaction(core.sessions, lambda s: list(s.execute(
        select(CareDelivery.id, CareDelivery.claimed_at, CareDelivery.message, CareDelivery.language, Client.mobile,
               CareDelivery.subject)
        .join(Client, Client.id == CareDelivery.client_id)
        .where(CareDelivery.channel == "sms", CareDelivery.status == "pending",
               CareDelivery.claimed_at < now - LEASE))))
    sent = 0
    for delivery_id, claimed_at, message, lang, mobile, subject in stale:
        def take_over(s: Session, delivery_id: int = delivery_id, claimed_at: datetime = claimed_at) -> bool:
            res = cast("CursorResult[Any]", s.execute(update(CareDelivery).where(
                CareDelivery.id == delivery_id, CareDelivery.status == "pending",
                CareDelivery.claimed_at == claimed_at).values(claimed_at=now, updated_at=now)))
            return res.rowcount == 1

        if run_in_transaction(core.sessions, take_over):
            if _send_sms(core.sessions, sms, delivery_id, mobile, sms_text(message, lang), now,
                         kind=subject.split(":", 1)[0]) != "failed":
                sent += 1
    return sent


def apply_sms_status(core: Deps, provider_ref: str, twilio_status: str) -> bool:
    """A delivery report (Twilio status callback): update the delivery it names. Returns False if unknown.
    A final status is never moved back (a late 'sent' after 'delivered' is ignored)."""
    status = TWILIO_STATUS.get(twilio_status)
    if status is None or not provider_ref:
        return False
    now = core.clock()

    def work(s: Session) -> bool:
        row = s.scalars(select(CareDelivery).where(CareDelivery.provider_ref == provider_ref)).one_or_none()
        if row is None:
            return False
        if row.status in ("delivered", "failed") and status == "sent":
            return True
        row.status, row.updated_at = status, now
        if status == "failed":
            row.detail = f"twilio {twilio_status}"
        return True

    return run_in_transaction(core.sessions, work)


def apply_sms_receipts(core: Deps, receipts: list[SmsReceipt]) -> int:
    """Delivery receipts of any gateway (Aliyun's push or poll): each names its message by the provider
    reference; a final status is kept (a repeated receipt changes nothing). Returns how many rows moved."""
    now = core.clock()

    def work(s: Session) -> int:
        moved = 0
        for r in receipts:
            row = s.scalars(select(CareDelivery).where(CareDelivery.provider_ref == r.provider_ref,
                                                       CareDelivery.channel == "sms")).one_or_none()
            if row is None or row.status in ("delivered", "failed"):
                continue
            row.status, row.updated_at = r.status, now
            if r.status == "failed":
                row.detail = f"receipt {r.detail}"[:255]
            moved += 1
        return moved

    return run_in_transaction(core.sessions, work)


def deliveries_of_day(core: Deps, day: date) -> list[CareDelivery]:
    """What was recorded for ``day`` (for the supervisor pages)."""
    return run_in_transaction(core.sessions, lambda s: list(s.scalars(
        select(CareDelivery).where(CareDelivery.planned_for == day).order_by(CareDelivery.id))))
