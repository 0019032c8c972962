"""Durable call commands: the agent screen asks the dialler process that owns a call to act on it (hang up
now; transfer and hold later) through a ``call_commands`` row, never through the bus alone.

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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.events import CALLS, CommandQueued
from callcenter.services import desk
from callcenter.services.bus import EventBus
from callcenter.services.handoff import queued_by
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models.commands import CallCommand
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import Attempt

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
    owner = ""
    if contact.attempt_id is not None:
        attempt = s.get(Attempt, contact.attempt_id)
        owner = (attempt.dialer_id or "") if attempt is not None else ""
    elif contact.ivr_session_id is not None:
        owner = queued_by(s, contact.ivr_session_id) or ""
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
                                  row.requested_at))
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
                       execute: Callable[[ClaimedCommand], Awaitable[bool]], stop: asyncio.Event,
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
                        ok = bool(await execute(cmd))
                        result = "" if ok else "no such call"
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
