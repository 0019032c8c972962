"""Dialler processes and their leases (table ``dialer_processes``): a dead dialler's work is taken over.

Every dialler process renews its row at each sync; when a row's ``lease_until`` has passed, the process is
dead (crashed, killed, cut off) and the first live dialler to sync takes over what it left:

(a) its agent sessions are freed (``dialer_id``/``lease_until`` cleared) so the live dialler adopts them at
    its next sync; an agent left ``reserved`` goes back to ``ready`` (its preview lead dropped), one left
    ``talking`` goes to ``wrap_up`` (the agent records the outcome) unless its call is adopted (b);
(b) its open attempts (no ``ended_at``): one whose call is still up on the PBX (``alive``: the taker saw it
    in ``CoreShowChannels``) is ADOPTED -- the attempt and its lead become the taker's, and the agent talking
    on it stays ``talking`` -- so it ends normally; one that reached an agent (``connected_at``) and is gone
    is closed ``human`` with its talk time (to when the taker saw it end, ``ended``, else now): it talked
    to a person and is never dialled again as lost; any other is closed as ``lost`` through
    ``hopper.finish_attempt`` -- lost does not use up one of the lead's attempts, and the lead goes back to
    ``retry`` (due after the campaign's ``lost`` delay) so it is dialled again.  Never twice at once: a lead
    another dialler holds now (its own claim, after the dead one's expired) is left alone and only the dead
    attempt is closed;
(c) the leads it had claimed without an attempt (previews) are released;
(d) its row is deleted (a dialler that was only stalled finds its row gone: ``heartbeat`` returns False).

PostgreSQL: the dead rows are read ``FOR UPDATE SKIP LOCKED``, so two live diallers never take over the same
one; SQLite: one writer at a time (``BEGIN IMMEDIATE``).  Everything runs in the caller's transaction, which
commits.  Taking over is idempotent: a second call finds nothing left.

Wiring in the engine (``DialerEngine``), each in the engine's own transaction::

    # at every _sync, first thing:
    heartbeat(s, self.dialer_id, now, PROCESS_LEASE)   # False after the first call: we were taken over
    take_over_dead(s, self.dialer_id, now)
    # at shutdown, after the engine's own clean-up:
    retire(s, self.dialer_id, now)

The process lease should be a few syncs long (``PROCESS_LEASE``, 30 s), far shorter than the claim lease
of leads and agent sessions (``hopper.DEFAULT_LEASE``, 10 min), which stays the fallback for diallers that
never registered here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from callcenter.services.dialer import rollups
from callcenter.services.dialer.hopper import DEFAULT_LEASE, finish_attempt, release_lead
from callcenter.services.dialer.campaigns import change_agent_state
from callcenter.store.db import dialect_name
from callcenter.store.models.dialer import AgentSession, Attempt, Callback, DialerProcess, Lead

__all__ = ["PROCESS_LEASE", "TakeOver", "adopt_attempt", "heartbeat", "retire", "take_over_dead"]

PROCESS_LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class TakeOver:
    """What was handed back: the dead diallers, and the agent sessions, attempts and leads of theirs."""

    dialers: tuple[str, ...] = ()
    agent_sessions: tuple[int, ...] = ()
    attempts: tuple[int, ...] = ()  # closed (lost, or human when it had reached an agent)
    leads: tuple[int, ...] = ()  # claims cleared: back to new / retry (or done / dnc by an agent's disposition)
    adopted: tuple[int, ...] = ()  # still up on the PBX: now the taker's, to re-attach to its call core

    def __bool__(self) -> bool:
        return bool(self.dialers)


def _check(dialer_id: str, now: datetime) -> None:
    if not isinstance(dialer_id, str) or not dialer_id or len(dialer_id) > 64:
        raise ValueError(f"dialer_id must be a non-empty string of at most 64 characters, got {dialer_id!r}")
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")


def heartbeat(s: Session, dialer_id: str, now: datetime, lease: timedelta = PROCESS_LEASE) -> bool:
    """Register or renew ``dialer_id``'s lease until ``now + lease``.

    Returns True when the row was there (renewed), False when it was created: at a process's first heartbeat,
    or because it was taken over (its lease ran out and another dialler handed its work back) -- then the
    calls it still tracks are no longer its own in the database.
    """
    _check(dialer_id, now)
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise ValueError(f"lease must be a positive timedelta, got {lease!r}")
    query = select(DialerProcess).where(DialerProcess.dialer_id == dialer_id)
    if dialect_name(s) == "postgresql":
        query = query.with_for_update()
    row = s.scalars(query).first()
    if row is not None:
        row.heartbeat_at = now
        row.lease_until = now + lease
        s.flush()
        return True
    s.add(DialerProcess(dialer_id=dialer_id, started_at=now, heartbeat_at=now, lease_until=now + lease))
    s.flush()
    return False


def take_over_dead(s: Session, dialer_id: str, now: datetime, *, alive: Collection[str] = (),
                   ended: Mapping[str, datetime] | None = None) -> TakeOver:
    """Hand back the work of every dialler (other than ``dialer_id``) whose lease has expired (module doc).

    ``alive``: call ids the PBX still has up (``dialer_id`` adopts their attempts); ``ended``: call ids it saw
    end meanwhile, with when (the talk time of a call that had reached an agent)."""
    _check(dialer_id, now)
    query = select(DialerProcess.dialer_id).where(DialerProcess.lease_until < now, DialerProcess.dialer_id != dialer_id)
    if dialect_name(s) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    dead = sorted(s.scalars(query))
    return _hand_back(s, dead, now, taker=dialer_id, alive=frozenset(alive), ended=ended or {})


def adopt_attempt(s: Session, attempt: Attempt, dialer_id: str, now: datetime, lease: timedelta = DEFAULT_LEASE) -> None:
    """``attempt``'s call is still up on the PBX: it and its lead become ``dialer_id``'s (it ends through them)."""
    attempt.dialer_id = dialer_id
    lead = s.get(Lead, attempt.lead_id)
    if lead is not None and lead.status == "in_progress":
        lead.claimed_by, lead.claimed_until = dialer_id, now + lease


def retire(s: Session, dialer_id: str, now: datetime) -> TakeOver:
    """A clean stop: hand back this dialler's own work as a take-over would, and delete its row.

    Call it last, after the engine has hung up or finished the calls it could; an attempt still open is
    closed as ``lost`` (nobody would record its outcome) and its lead dialled again later.
    """
    _check(dialer_id, now)
    return _hand_back(s, [dialer_id], now, own=True)


def _hand_back(s: Session, dialers: list[str], now: datetime, *, own: bool = False, taker: str | None = None,
               alive: frozenset[str] = frozenset(), ended: Mapping[str, datetime] | None = None) -> TakeOver:
    if not dialers:
        return TakeOver()
    reason = "dialler_stopped" if own else "dialler_lost"
    sessions: list[int] = []
    attempts: list[int] = []
    released: list[int] = []
    open_attempts = s.scalars(
        select(Attempt).where(Attempt.dialer_id.in_(dialers), Attempt.ended_at.is_(None)).order_by(Attempt.id)
    ).all()
    adopted = [a for a in open_attempts if taker is not None and a.call_id is not None and a.call_id in alive]
    talking_on = {a.agent_id for a in adopted if a.agent_id is not None and a.connected_at is not None}
    # (a) agent sessions: out of the states that belong to a call the dead dialler drove, then freed
    for session in s.scalars(
        select(AgentSession).where(AgentSession.dialer_id.in_(dialers)).order_by(AgentSession.id)
    ).all():
        sessions.append(session.id)
        if session.ended_at is None and session.state == "reserved":
            session.preview_lead_id = None
            session.preview_action = None
            change_agent_state(s, session, "release", now, reason=reason)
        elif session.ended_at is None and session.state == "talking" and session.staff_id in talking_on:
            pass  # its call is still up and adopted: it stays talking, with the taker
        elif session.ended_at is None and session.state == "talking":
            change_agent_state(s, session, "hangup", now, reason=reason, attempt_id=session.attempt_id)
        session.dialer_id = None
        session.lease_until = None
    # (b) open attempts: adopted when still up; human when they reached an agent; else lost, their leads back to
    # retry unless somebody else holds them now
    for attempt in open_attempts:
        if attempt in adopted:
            assert taker is not None
            adopt_attempt(s, attempt, taker, now)
            continue
        lead = s.get(Lead, attempt.lead_id)
        held_elsewhere = lead is not None and lead.claimed_by is not None and lead.claimed_by not in dialers
        if attempt.connected_at is not None:  # it talked to an agent: its outcome is human, never lost
            end = max((ended or {}).get(attempt.call_id or "", now), attempt.connected_at)
            talk = (end - attempt.connected_at).total_seconds()
            if held_elsewhere:
                attempt.ended_at, attempt.outcome, attempt.talk_s = end, "human", talk
                attempt.hangup_text = "ended while the dialler was away"
                rollups.add_share(s, attempt)
            else:
                lead = finish_attempt(s, attempt, "human", end, cause_text="ended while the dialler was away",
                                      talk_s=talk)
                released.append(lead.id)
        elif held_elsewhere:
            attempt.ended_at, attempt.outcome, attempt.hangup_text = now, "lost", "dialler lost the call"
            rollups.add_share(s, attempt)
        else:
            lead = finish_attempt(s, attempt, "lost", now, cause_text="dialler lost the call")
            released.append(lead.id)
        attempts.append(attempt.id)
        if attempt.callback_id is not None:
            # placed but lost: due again (or done if it reached an agent)
            status = "done" if attempt.connected_at is not None else "pending"
            s.execute(update(Callback).where(Callback.id == attempt.callback_id, Callback.status == "placed")
                      .values(status=status))
    # (c) leads claimed without an open attempt (previews, claims between claim and dial)
    for lead in s.scalars(
        select(Lead).where(Lead.claimed_by.in_(dialers), Lead.status == "in_progress").order_by(Lead.id)
    ).all():
        release_lead(s, lead, now)
        released.append(lead.id)
    # (d) the rows
    s.execute(delete(DialerProcess).where(DialerProcess.dialer_id.in_(dialers)))
    s.flush()
    return TakeOver(tuple(dialers), tuple(sessions), tuple(attempts), tuple(sorted(set(released))),
                    tuple(a.id for a in adopted))
