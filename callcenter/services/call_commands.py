"""Durable call commands: the agent screen asks the dialler process that owns a call to act on it (hang up
now, hand the caller to the IVR's order menu; transfer and hold later) through a ``call_commands`` row, never
through the bus alone.

* ``request_hangup`` (the web's hang-up button) does the desk's own hang-up bookkeeping (``desk.hang_up_in``)
  and inserts the command row in the same transaction; ``queue_hangup`` inserts it inside any transaction that
  closes a live call (the disposition route). The row names the call's owner at request time
  (``Attempt.dialer_id``).
* After commit the web emits ``CommandQueued(dialer_id, command_id)``: a nudge only. ``command_loop`` (one per
  dialler process) claims that dialler's pending rows at once on the nudge and otherwise every ``poll_s``, so a
  lost nudge (another process, a full queue) only delays a command.
* ``claim`` matches on the attempt's *current* ``dialer_id``: when a call's attempt has since moved to another
  dialler, the new owner claims the command. Rows are locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
  loops of one dialler (or a restart racing the old process) claim a row once; oldest first.
* ``command_loop`` awaits ``execute(cmd)`` outside any transaction, then ``finish`` records ``done`` /
  ``failed`` with a result text. ``expire_stale`` turns rows pending or claimed for too long into ``expired``
  (a dialler that died holding a claim, a call nobody owns).

A desk contact with no dialler attempt (an IVR hand-off) gets no command: no dialler owns that call (the
engine's ``hangup_requested`` only knows its own attempts); the desk's hang-up bookkeeping still happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
import json
from dataclasses import dataclass, field
from typing import Any
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.access import may_watch_agent
from callcenter.services.access import staff_actor
from callcenter.domain.events import CALLS, CommandQueued
from callcenter.services import desk
from callcenter.services.bus import EventBus
from callcenter.services.handoff import queued_by
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models.commands import CallCommand
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import Attempt
from callcenter.store.models.ivr import IvrStep
from callcenter.services.dialer.controls import CONTROL_KINDS, MONITOR_KINDS
from callcenter.store.models.core import AuditLog, Staff
from callcenter.services.handoff import QUEUED_STEP

log = logging.getLogger(__name__)

DEFAULT_EXPIRY = timedelta(minutes=5)


@dataclass(frozen=True)
class ClaimedCommand:
    """A command this dialler now carries out (``staff_id``: who asked)."""

    id: int
    kind: str
    contact_id: int
    attempt_id: int | None
    staff_id: int
    requested_at: datetime
    args: dict[str, Any] = field(default_factory=dict)  # a call control's target, digits, menu, phone


def queue_hangup(s: Session, contact: DeskContact, staff_id: int, now: datetime) -> CallCommand | None:
    """Insert a pending hang-up of ``contact``'s call, inside the caller's transaction; None when the contact has
    no dialler attempt (nothing a dialler can hang up)."""
    if contact.attempt_id is None:
        return None
    attempt = s.get(Attempt, contact.attempt_id)
    row = CallCommand(kind="hangup", contact_id=contact.id, attempt_id=contact.attempt_id,
                      dialer_id=(attempt.dialer_id or "") if attempt is not None else "", requested_by=staff_id,
                      requested_at=now, state="pending", claimed_by="", result="")
    s.add(row)
    s.flush()
    return row


def request_hangup(s: Session, who: Principal | int, contact_id: int, now: datetime) -> CallCommand | None:
    """The agent's hang-up button: the contact must be the agent's and open (``DeskError`` 404 / 409
    otherwise); the desk records the hang-up and, when the call was live until now, the command row is
    inserted in the same transaction. None when there is nothing to send (hung up already, or no attempt)."""
    staff_id = who.staff_id if isinstance(who, Principal) else int(who)
    contact, was_live = desk.hang_up_in(s, staff_id, contact_id, now)
    if not was_live:
        return None
    return queue_hangup(s, contact, staff_id, now)


def _args(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def command_owner(s: Session, contact: DeskContact) -> str:
    """The dialler that owns ``contact``'s call now: its attempt's, or for an IVR hand-off the dialler that
    queued it (the last ``handoff_queued`` step); "" when unknown."""
    if contact.attempt_id is not None:
        attempt = s.get(Attempt, contact.attempt_id)
        return (attempt.dialer_id or "") if attempt is not None else ""
    if contact.ivr_session_id is None:
        return ""
    detail = s.scalars(select(IvrStep.detail).where(IvrStep.session_id == contact.ivr_session_id,
                                                    IvrStep.step == QUEUED_STEP)
                       .order_by(IvrStep.id.desc()).limit(1)).first()
    return str(_args(detail).get("dialer", "")) if detail else ""


def queue_control(s: Session, contact: DeskContact, staff_id: int, kind: str, now: datetime,
                  args: dict[str, Any] | None = None) -> CallCommand:
    """Insert a pending call control (``services/dialer/controls.py`` kinds) of ``contact``'s call, inside the
    caller's transaction; the dialler owning the call claims it (an IVR hand-off's row names its dialler)."""
    if kind not in CONTROL_KINDS:
        raise ValueError(f"unknown call control {kind!r}")
    row = CallCommand(kind=kind, contact_id=contact.id, attempt_id=contact.attempt_id,
                      dialer_id=command_owner(s, contact), requested_by=staff_id, requested_at=now,
                      state="pending", claimed_by="", result="",
                      args=json.dumps(args or {}, ensure_ascii=False, sort_keys=True))
    s.add(row)
    s.flush()
    return row


RECORDING_ACTIONS = ("pause", "resume", "secure")  # secure: the client is about to key in a PIN (a pause "pin")


def request_recording(s: Session, who: Principal | int, contact_id: int, action: str, now: datetime) -> CallCommand:
    """The agent's recording buttons on their open, live contact: a ``record_<action>`` command for the dialler
    that owns the call (an outbound attempt's dialler, or the one that took the IVR hand-off). ``DeskError``
    404 / 409 when the contact is not theirs, closed or hung up."""
    if action not in RECORDING_ACTIONS:
        raise ValueError(f"unknown recording action {action!r}")
    staff_id = who.staff_id if isinstance(who, Principal) else int(who)
    contact = desk.open_contact_of(s, staff_id, contact_id)
    if contact.hung_up_at is not None:
        raise desk.DeskError("call_over")
    owner = command_owner(s, contact)
    row = CallCommand(kind=f"record_{action}", contact_id=contact.id, attempt_id=contact.attempt_id,
                      dialer_id=owner, requested_by=staff_id, requested_at=now, state="pending", claimed_by="",
                      result="")
    s.add(row)
    s.flush()
    return row


def claim(s: Session, dialer_id: str, now: datetime, limit: int = 20) -> list[ClaimedCommand]:
    """Claim up to ``limit`` pending commands whose call this dialler owns now (the attempt's current
    ``dialer_id``; a row with no attempt — none today — by its own ``dialer_id``), oldest first; they become
    ``claimed`` by ``dialer_id``. Rows another claimer holds locked are skipped (PostgreSQL)."""
    if not dialer_id:
        raise ValueError("claim needs a dialer id")
    q = (select(CallCommand).join(Attempt, Attempt.id == CallCommand.attempt_id, isouter=True)
         .where(CallCommand.state == "pending",
                or_(Attempt.dialer_id == dialer_id,
                    (CallCommand.attempt_id.is_(None)) & (CallCommand.dialer_id == dialer_id)))
         .order_by(CallCommand.requested_at, CallCommand.id).limit(limit))
    if dialect_name(s) == "postgresql":
        q = q.with_for_update(skip_locked=True, of=CallCommand)
    rows = list(s.scalars(q))
    out = []
    for row in rows:
        row.state, row.claimed_by, row.claimed_at = "claimed", dialer_id, now
        out.append(ClaimedCommand(row.id, row.kind, row.contact_id, row.attempt_id, row.requested_by,
                                  row.requested_at, _args(row.args)))
    s.flush()
    return out


def finish(s: Session, command_id: int, ok: bool, result: str, now: datetime) -> None:
    """Record the outcome of a claimed command (``done`` or ``failed``); a row no longer claimed (expired
    meanwhile) is left as it is."""
    s.execute(update(CallCommand).where(CallCommand.id == command_id, CallCommand.state == "claimed")
              .values(state="done" if ok else "failed", done_at=now, result=result[:2000]))


def expire_stale(s: Session, now: datetime, older_than: timedelta = DEFAULT_EXPIRY) -> int:
    """Rows pending or claimed since before ``now - older_than`` become ``expired``; returns how many."""
    cutoff = now - older_than
    res = s.execute(update(CallCommand)
                    .where(CallCommand.state.in_(("pending", "claimed")), CallCommand.requested_at < cutoff)
                    .values(state="expired", done_at=now, result="expired")
                    .execution_options(synchronize_session=False))
    return int(getattr(res, "rowcount", 0) or 0)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def command_loop(sessions: sessionmaker[Session], bus: EventBus, dialer_id: str,
                       execute: Callable[[ClaimedCommand], Awaitable[bool | tuple[bool, str]]], stop: asyncio.Event,
                       poll_s: float = 1.0, *, clock: Callable[[], datetime] = _utc_now, limit: int = 20,
                       expire_after: timedelta | None = DEFAULT_EXPIRY) -> None:
    """Carry out this dialler's call commands until ``stop``: claim (in a worker thread), await
    ``execute(cmd)`` (True: done, False: failed; an exception fails it too) outside any transaction, record the
    outcome. Wakes at once on a ``CommandQueued`` for ``dialer_id`` and otherwise every ``poll_s`` seconds;
    expires stale rows (``expire_after``) as it goes."""
    wake = asyncio.Event()

    async with bus.subscribe(CALLS) as sub:
        async def listen() -> None:
            async for _topic, event in sub:
                if event.get("type") == CommandQueued.type and event.get("dialer_id") == dialer_id:
                    wake.set()

        listener = asyncio.create_task(listen())
        try:
            while not stop.is_set():
                wake.clear()
                batch = await asyncio.to_thread(run_in_transaction, sessions,
                                                lambda s: claim(s, dialer_id, clock(), limit))
                for cmd in batch:
                    try:
                        answer = await execute(cmd)
                        ok, result = answer if isinstance(answer, tuple) else (bool(answer), "")
                        result = result if result or ok else "no such call"
                    except Exception as exc:  # a failed command is recorded, never kills the loop
                        log.exception("call command %s failed", cmd.id)
                        ok, result = False, f"error: {exc!r}"
                    await asyncio.to_thread(run_in_transaction, sessions,
                                            lambda s, c=cmd.id, o=ok, r=result: finish(s, c, o, r, clock()))
                if expire_after is not None:
                    await asyncio.to_thread(run_in_transaction, sessions,
                                            lambda s: expire_stale(s, clock(), expire_after))
                if len(batch) >= limit:
                    continue  # more may be waiting
                await _first(wake, stop, poll_s)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


async def _first(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


# --- call controls (issue 13): the agent's buttons and the supervisor's monitoring ------------------------------

AGENT_CONTROLS = tuple(k for k in CONTROL_KINDS if k not in MONITOR_KINDS)


def request_control(s: Session, who: Principal | int, contact_id: int, kind: str, now: datetime,
                    args: dict[str, Any] | None = None) -> CallCommand:
    """An agent's call-control button (hold, mute, keypad, transfer, consult, conference, back to the IVR) on
    their own live desk contact (``DeskError`` 404 when not theirs, 409 ``contact_closed`` / ``call_over``
    otherwise); the row is claimed by the dialler that owns the call, whose call core decides."""
    staff_id = who.staff_id if isinstance(who, Principal) else int(who)
    if kind not in AGENT_CONTROLS:
        raise desk.DeskError("unknown_control", 422)
    contact = s.get(DeskContact, contact_id)
    if contact is None or contact.agent_id != staff_id:
        raise desk.DeskError("not_found", 404)
    if contact.ended_at is not None:
        raise desk.DeskError("contact_closed")
    if contact.hung_up_at is not None:
        raise desk.DeskError("call_over")
    return queue_control(s, contact, staff_id, kind, now, args)


def live_contact_of(s: Session, agent_id: int) -> DeskContact | None:
    """The agent's desk contact whose call is live (not hung up, not closed), newest first."""
    return s.scalars(select(DeskContact).where(DeskContact.agent_id == agent_id, DeskContact.hung_up_at.is_(None),
                                               DeskContact.ended_at.is_(None))
                     .order_by(DeskContact.id.desc()).limit(1)).first()


def request_monitor(s: Session, who: Principal, agent_id: int, kind: str, phone: str, now: datetime) -> CallCommand:
    """A supervisor listens to, whispers to or barges into the live call of ``agent_id`` (``monitor_stop``
    ends it), from their own phone; audit-logged (``call_listen`` / ``call_whisper`` / ``call_barge`` /
    ``call_monitor_stop``) in the same transaction. ``DeskError`` ``no_live_call`` (409) when the agent has
    none, ``no_supervisor_phone`` (422) when the supervisor has no extension."""
    if kind not in MONITOR_KINDS:
        raise desk.DeskError("unknown_control", 422)
    if who.role not in ("supervisor", "admin"):
        raise desk.DeskError("forbidden", 403)
    if kind != "monitor_stop" and not phone:
        raise desk.DeskError("no_supervisor_phone", 422)
    if who.role == "supervisor":  # their groups' agents only (an admin any): access.may_watch_agent
        agent = s.get(Staff, agent_id)
        if agent is None or not may_watch_agent(staff_actor(who), agent.service_group_id):
            raise desk.DeskError("not_found", 404)
    contact = live_contact_of(s, agent_id)
    if contact is None:
        raise desk.DeskError("no_live_call")
    s.add(AuditLog(at=now, staff_id=who.staff_id, action=f"call_{kind}"[:32], client_id=contact.client_id,
                   detail=json.dumps({"agent_id": agent_id, "contact_id": contact.id, "mode": kind},
                                     ensure_ascii=False, sort_keys=True)))
    return queue_control(s, contact, who.staff_id, kind, now, {"phone": phone} if phone else {})
