"""IVR hand-offs to agents, the database side: the client who pressed "agent" in the IVR is an inbound call of
the dialler's call core (``callcenter.services.dialer.core``: one routing model for outbound and inbound calls), which
routes it to the longest-idle ready agent, connects it into the agent's room through the telephony port, opens
the desk contact with the agent's move to talking and moves the agent to wrap-up when the call ends. This module
holds what the engine (``DialerEngine``) does in the database for those calls; it routes nothing itself.

The waiting hand-off is a fact in the database, not a message: an IVR session with ``handed_off`` set (its
``handoff`` step recorded), not ended, and no ``agent_connected`` step yet. No extra table: those rows already
say everything a queue row would (who, since when — the ``handoff`` step orders them — and whether it is over),
are written by the IVR in its own transaction, and survive a restart of the engine. A hand-off older than
``MAX_WAIT`` is not loaded (its IVR process died before recording the end: nobody is on the line).

* ``load_waiting`` — at every sync of the engine: the waiting hand-offs as ``HandoffFacts``, oldest first, each
  claimed for the loading dialler by a ``handoff_queued`` step (``{"dialer": id}``) in the same transaction; a
  hand-off queued by another dialler whose process lease (``dialer_processes``) is still running is left to it
  (on PostgreSQL the IVR session row is locked ``FOR UPDATE SKIP LOCKED`` while it is claimed), so two engines
  never both connect one caller; a dead dialler's hand-offs are loaded by the next.
* ``record_step`` — ``agent_connected`` (with the staff id), in the transaction that moves the agent to talking
  and opens the desk contact (``desk.open_contact(..., ContactFacts(client_id, ivr_session_id=...))``).
* ``end_handoff`` — the call is over: the IVR session gets its end (``completed`` after an agent,
  ``caller_hangup`` while waiting, ``handoff_timeout`` after the sorry prompt), unless it already has one.
* ``book_callback`` — nobody took the call within the setting ``handoff_wait_s`` (default 120 s): the caller
  hears ``cc/<lang>/handoff_sorry`` and a pending ``Callback`` row is booked, due at once, with no campaign (a
  supervisor gives it to a campaign or an agent; the client and the caller's number are on it), and the step
  ``handoff_timeout`` recorded.

``HandoffWaiting`` (``StoreIvrBackend.record_event(step="handoff")``) is a nudge for the wall board only.

The wall board reads (``services.kpis.wallboard``):

* ``waiting_summary`` — how many hand-offs wait for an agent now and since when the longest has waited (the
  same facts ``waiting_handoffs`` loads), on ``ix_ivr_sessions_open`` (only the open IVR sessions are in it);
* ``service_level`` — today's hand-offs answered by an agent within the threshold, over those whose wait is
  decided (answered, or waited longer than the threshold; a caller who hung up before it is not counted), on
  ``ix_ivr_steps_handoffs`` (today's ``handoff`` and ``agent_connected`` steps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, text
from sqlalchemy.orm import Session, aliased

from callcenter.services.dialer.core import HandoffFacts
from callcenter.store.db import dialect_name
from callcenter.store.models.dialer import Callback, DialerProcess
from callcenter.store.models.ivr import HANDOFF_STEPS, HANDOFF_STEPS_WHERE, IvrSession, IvrStep

HANDOFF_STEP = "handoff"
QUEUED_STEP = "handoff_queued"
ROUTED_STEP = "agent_connected"
TIMEOUT_STEP = "handoff_timeout"
assert (HANDOFF_STEP, ROUTED_STEP) == HANDOFF_STEPS  # the steps of the partial index ix_ivr_steps_handoffs
MAX_WAIT = timedelta(minutes=30)  # an older hand-off is a call whose end was never recorded, not a caller waiting
CALLBACK_NOTE = "IVR 转人工等待超时，请回电"


def waiting_handoffs(s: Session, since: datetime | None = None, limit: int = 50) -> list[int]:
    """The IVR sessions waiting for an agent, oldest hand-off first; with ``since``, only hand-offs asked for
    from then on (an IVR session whose end was never recorded — its process died — is not loaded forever)."""
    step, routed = aliased(IvrStep), aliased(IvrStep)
    first_handoff = (select(step.id).where(step.session_id == IvrSession.id, step.step == HANDOFF_STEP)
                     .order_by(step.id).limit(1).correlate(IvrSession).scalar_subquery())
    q = (select(IvrSession.id).where(IvrSession.handed_off.is_(True), IvrSession.ended_at.is_(None),
                                     ~exists().where(routed.session_id == IvrSession.id, routed.step == ROUTED_STEP))
         .order_by(first_handoff, IvrSession.id).limit(limit))
    if since is not None:
        recent = aliased(IvrStep)
        q = q.where(exists().where(recent.session_id == IvrSession.id, recent.step == HANDOFF_STEP,
                                   recent.at >= since))
    return list(s.scalars(q))


def waiting_since(s: Session, now: datetime, max_wait: timedelta = MAX_WAIT) -> list[tuple[int | None, datetime]]:
    """(the caller's client id or None, when they asked for an agent) of each hand-off waiting for an agent now,
    hand-offs older than ``max_wait`` left out (nobody is on the line)."""
    step, routed = aliased(IvrStep), aliased(IvrStep)
    asked = (select(func.min(step.at)).where(step.session_id == IvrSession.id, step.step == HANDOFF_STEP)
             .correlate(IvrSession).scalar_subquery())
    rows = s.execute(select(IvrSession.client_id, asked, IvrSession.started_at)
                     .where(IvrSession.handed_off.is_(True), IvrSession.ended_at.is_(None),
                            ~exists().where(routed.session_id == IvrSession.id, routed.step == ROUTED_STEP))).all()
    return [(client_id, at or started) for client_id, at, started in rows if (at or started) >= now - max_wait]


def waiting_summary(s: Session, now: datetime, max_wait: timedelta = MAX_WAIT) -> tuple[int, datetime | None]:
    """(hand-offs waiting for an agent now, when the longest-waiting one asked), hand-offs older than
    ``max_wait`` left out (nobody is on the line)."""
    since = [at for _, at in waiting_since(s, now, max_wait)]
    return len(since), min(since, default=None)


@dataclass(frozen=True)
class ServiceLevel:
    threshold_s: float
    offered: int  # hand-offs whose wait is decided: answered, or waited past the threshold
    met: int  # answered within the threshold

    @property
    def rate(self) -> float | None:
        return self.met / self.offered if self.offered else None


def service_level(s: Session, since: datetime, now: datetime, threshold_s: float) -> ServiceLevel:
    """The hand-offs asked for from ``since`` on: answered within ``threshold_s`` over those decided."""
    def first_of(name: str) -> dict[int, datetime]:
        return {sid: at for sid, at in s.execute(
            select(IvrStep.session_id, func.min(IvrStep.at))
            .where(text("ivr_steps." + HANDOFF_STEPS_WHERE), IvrStep.step == name, IvrStep.at >= since)  # the index's words
            .group_by(IvrStep.session_id))}

    asked, answered = first_of(HANDOFF_STEP), first_of(ROUTED_STEP)
    unanswered = [sid for sid in asked if sid not in answered]
    ended = dict(s.execute(select(IvrSession.id, IvrSession.ended_at).where(IvrSession.id.in_(unanswered))).all()) \
        if unanswered else {}
    limit = timedelta(seconds=threshold_s)
    offered = met = 0
    for sid, at in asked.items():
        if sid in answered:
            offered += 1
            met += int(answered[sid] - at <= limit)
        elif (ended.get(sid) or now) - at > limit:
            offered += 1  # waited past the threshold (still waiting, or gone after it)
    return ServiceLevel(threshold_s, offered, met)


def queued_by(s: Session, ivr_session_id: int) -> str | None:
    """The dialler that claimed the hand-off (its engine carries out the call's commands)."""
    return _queued_by(s, ivr_session_id)


def _queued_by(s: Session, ivr_session_id: int) -> str | None:
    detail = s.scalars(select(IvrStep.detail).where(IvrStep.session_id == ivr_session_id, IvrStep.step == QUEUED_STEP)
                       .order_by(IvrStep.id.desc()).limit(1)).first()
    if not detail:
        return None
    try:
        return str(json.loads(detail).get("dialer") or "") or None
    except (ValueError, AttributeError):
        return None


def load_waiting(s: Session, dialer_id: str, now: datetime, *, max_wait: timedelta = MAX_WAIT,
                 limit: int = 50) -> tuple[HandoffFacts, ...]:
    """The hand-offs waiting for an agent that this dialler may take, oldest first, claimed for it (in the
    caller's transaction)."""
    out: list[HandoffFacts] = []
    live = {d for d in s.scalars(select(DialerProcess.dialer_id).where(DialerProcess.lease_until >= now))}
    for ivr_session_id in waiting_handoffs(s, now - max_wait, limit):
        q = select(IvrSession).where(IvrSession.id == ivr_session_id, IvrSession.ended_at.is_(None))
        if dialect_name(s) == "postgresql":
            q = q.with_for_update(skip_locked=True)
        row = s.scalars(q).first()
        if row is None:
            continue  # ended meanwhile, or another dialler is claiming it right now
        owner = _queued_by(s, row.id)
        if owner is not None and owner != dialer_id and owner in live:
            continue  # another live dialler has it
        if owner != dialer_id:
            s.add(IvrStep(session_id=row.id, at=now, step=QUEUED_STEP, detail=json.dumps({"dialer": dialer_id})))
        since = s.scalars(select(IvrStep.at).where(IvrStep.session_id == row.id, IvrStep.step == HANDOFF_STEP)
                          .order_by(IvrStep.id).limit(1)).first() or row.started_at
        out.append(HandoffFacts(row.id, row.client_id, since, row.lang or "zh-CN", row.caller or ""))
    return tuple(out)


def record_step(s: Session, ivr_session_id: int, step: str, now: datetime, **detail: object) -> None:
    s.add(IvrStep(session_id=ivr_session_id, at=now, step=step[:48],
                  detail=json.dumps(detail, ensure_ascii=False, default=str)))


def end_handoff(s: Session, ivr_session_id: int, reason: str, now: datetime, talk_s: float | None = None) -> None:
    row = s.get(IvrSession, ivr_session_id)
    if row is None or row.ended_at is not None:
        return
    row.ended_at, row.end_reason = now, reason[:32]
    record_step(s, ivr_session_id, "end", now, reason=reason, talk_s=talk_s)


def book_callback(s: Session, ivr_session_id: int, client_id: int | None, caller: str, now: datetime) -> int | None:
    """A pending call back to the caller (no campaign: a supervisor hands it on), once per IVR session."""
    row = s.get(IvrSession, ivr_session_id)
    if row is None:
        return None
    done = s.scalars(select(IvrStep.id).where(IvrStep.session_id == ivr_session_id,
                                              IvrStep.step == TIMEOUT_STEP)).first()
    if done is not None:
        return None
    cb = Callback(campaign_id=None, lead_id=None, client_id=client_id, phone=(caller or row.caller or "")[:20],
                  due_at=now, agent_only=False, status="pending", note=CALLBACK_NOTE, created_at=now)
    s.add(cb)
    s.flush()
    record_step(s, ivr_session_id, TIMEOUT_STEP, now, callback_id=cb.id)
    return cb.id
