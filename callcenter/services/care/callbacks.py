"""Care call-backs (satisfaction surveys after complaints, regulatory 回访, reminder calls): the list agents
work from, their results, and the hand-over to the dialler as campaigns of leads.

Each call-back row is kept in ``care_callbacks`` (its own record, answers included). ``hand_over`` puts the due
ones into one draft dialler campaign per purpose and month (kind ``callback``/``reminder``, the call-back's
script), as leads carrying ``extra.care_callback_id`` so the agent screen can report back with
``record_callback_result``. Idempotent: a call-back is handed over once (``campaign_ref`` set in the same
transaction as its lead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.services.deps import Deps
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareCallback
from callcenter.store.models.recordings import Recording
from callcenter.domain.recordings import expires_at, stronger_class

PURPOSE_NAMES = {
    "satisfaction": "投诉后满意度回访",
    "regulatory_new": "新开户回访",
    "regulatory_annual": "存量客户年度回访",
    "reminder": "持仓事项电话提醒",
}
REGULATORY_TOPICS = ("identity", "account_changes", "operator", "risk_disclosure", "discretionary_trading")


@dataclass(frozen=True)
class CallbackView:
    id: int
    client_id: int
    purpose: str
    script_id: str
    not_before: date
    due_on: date
    status: str
    campaign_ref: str
    complaint_id: int | None
    event_id: int | None


def _view(cb: CareCallback) -> CallbackView:
    return CallbackView(cb.id, cb.client_id, cb.purpose, cb.script_id, cb.not_before, cb.due_on, cb.status,
                        cb.campaign_ref, cb.complaint_id, cb.event_id)


def due_callbacks(core: Deps, day: date, *, purpose: str | None = None) -> list[CallbackView]:
    """Scheduled call-backs that may be made on ``day`` (not_before <= day), earliest due first."""
    def work(s: Session) -> list[CallbackView]:
        stmt = select(CareCallback).where(CareCallback.status == "scheduled", CareCallback.not_before <= day)
        if purpose:
            stmt = stmt.where(CareCallback.purpose == purpose)
        return [_view(cb) for cb in s.scalars(stmt.order_by(CareCallback.due_on, CareCallback.id))]

    return run_in_transaction(core.sessions, work)


def callbacks_of(core: Deps, client_id: int) -> list[CallbackView]:
    return run_in_transaction(core.sessions, lambda s: [_view(cb) for cb in s.scalars(
        select(CareCallback).where(CareCallback.client_id == client_id).order_by(CareCallback.id))])


def record_callback_result(core: Deps, callback_id: int, outcome: str, answers: dict[str, object],
                           *, staff_id: int | None, recording_id: int | None = None) -> None:
    """The agent made (``done``) or gave up on (``unreachable``) a call-back. A regulatory call-back marked
    done must answer every topic of ``REGULATORY_TOPICS``. A done call-back is linked to the recording of the
    call it was made on (``recording_id``, else the latest recording of this client by this agent over the last
    day: ``services.care.regulator.find_call_recording``), which is kept as a call-back record from then on."""
    if outcome not in ("done", "unreachable"):
        raise ValueError("outcome must be 'done' or 'unreachable'")
    now = core.clock()

    def work(s: Session) -> None:
        cb = s.get(CareCallback, callback_id)
        if cb is None:
            raise ValueError(f"no call-back {callback_id}")
        if cb.status != "scheduled":
            raise ValueError(f"call-back {callback_id} is {cb.status}")
        if outcome == "done" and cb.purpose.startswith("regulatory"):
            missing = [tp for tp in REGULATORY_TOPICS if tp not in answers]
            if missing:
                raise ValueError("regulatory call-back lacks answers for: " + ", ".join(missing))
        cb.status, cb.outcome, cb.staff_id, cb.completed_at = outcome, outcome, staff_id, now
        cb.answers = json.dumps(answers, ensure_ascii=False, sort_keys=True, default=str)
        if outcome == "done":
            cb.recording_id = link_call_recording(s, cb, recording_id, now, core.settings.retention_years())

    run_in_transaction(core.sessions, work)


def link_call_recording(s: Session, cb: CareCallback, recording_id: int | None, now: datetime,
                        years: dict[str, int]) -> int | None:
    """The recording a done call-back was made on (refused: one of another client), raised to the ``callback``
    retention class; None when there is none."""
    from callcenter.services.care.regulator import find_call_recording

    rec = s.get(Recording, recording_id) if recording_id is not None else find_call_recording(s, cb, now)
    if rec is None:
        if recording_id is not None:
            raise ValueError(f"no recording {recording_id}")
        return None
    if rec.client_id != cb.client_id:
        raise ValueError(f"recording {rec.id} is not of this call-back's client")
    rec.retention_class = stronger_class(rec.retention_class, "callback")
    if rec.expires_at is not None:
        rec.expires_at = expires_at(rec.started_at, rec.retention_class, years)
    return rec.id


def hand_over(core: Deps, day: date) -> dict[str, int]:
    """Put every scheduled call-back due for calling by ``day`` and not yet handed over into the dialler
    (one draft campaign per purpose and month). Returns {purpose: leads added}."""
    from callcenter.services.dialer.leads import LeadRow, save_leads
    from callcenter.services.dialer.campaigns import create_campaign
    from callcenter.store.models.dialer import Campaign

    now = core.clock()
    pending = run_in_transaction(core.sessions, lambda s: sorted({(cb.purpose, cb.script_id) for cb in s.scalars(
        select(CareCallback).where(CareCallback.status == "scheduled", CareCallback.campaign_ref == "",
                                   CareCallback.not_before <= day))}))
    added: dict[str, int] = {}
    for purpose, script_id in pending:
        name = f"{PURPOSE_NAMES[purpose]} {day:%Y-%m} [{script_id}]"
        kind = "reminder" if purpose == "reminder" else "callback"
        campaign_id = run_in_transaction(core.sessions, lambda s: s.scalar(
            select(Campaign.id).where(Campaign.name == name, Campaign.state != "finished").order_by(Campaign.id)))
        if campaign_id is None:
            campaign_id = create_campaign(core, name=name, kind=kind, script_id=script_id, dial_mode="preview",
                                          days="trading")

        def work(s: Session, purpose: str = purpose, script_id: str = script_id, campaign_id: int = campaign_id) -> int:
            stmt = select(CareCallback).where(
                CareCallback.status == "scheduled", CareCallback.campaign_ref == "", CareCallback.purpose == purpose,
                CareCallback.script_id == script_id, CareCallback.not_before <= day).order_by(CareCallback.id)
            if dialect_name(s) == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            cbs = list(s.scalars(stmt))
            if not cbs:
                return 0
            clients = {c.id: c for c in s.scalars(select(Client).where(Client.id.in_([cb.client_id for cb in cbs])))}
            phones: set[str] = set()
            taken = []
            for cb in cbs:  # a campaign holds one lead per phone; a second call-back for it waits for the next run
                phone = clients[cb.client_id].mobile
                if phone and phone not in phones:
                    phones.add(phone)
                    taken.append(cb)
            rows = [LeadRow(i + 1, clients[cb.client_id].mobile, clients[cb.client_id].name,
                            priority=max(0, 100 - (cb.due_on - day).days), client_id=cb.client_id,
                            extra={"care_callback_id": cb.id, "purpose": purpose, "due_on": cb.due_on.isoformat()})
                    for i, cb in enumerate(taken)]
            save_leads(s, s.get_one(Campaign, campaign_id), rows, now)
            for cb in taken:
                cb.campaign_ref = f"campaign:{campaign_id}"
            return len(taken)

        added[purpose] = added.get(purpose, 0) + run_in_transaction(core.sessions, work)
    return added

