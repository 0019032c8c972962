"""IVR hand-offs to agents: the client who pressed "agent" in the IVR pops on one agent's screen with what they
just did there (``ivr_sessions.summary``, ``ivr_steps``; the desk card reads them).

The waiting hand-off is a fact in the database, not a message: an IVR session with ``handed_off`` set (its
``handoff`` step recorded), not ended, and no ``agent_connected`` step yet. No extra table: those rows already
say everything a queue row would (who, since when — the ``handoff`` step's id orders them — and whether it is
over), are written by the IVR in its own transaction, and stop waiting by themselves when the caller hangs up
(``ended_at``); a second record could only disagree with them. A hand-off older than ``MAX_WAIT`` is not routed
(its IVR process died before recording the end: nobody is on the line).

* Simulated telephony (the default): ``StoreIvrBackend.record_event(step="handoff")`` emits
  ``HandoffWaiting(ivr_session_id)`` (a nudge). ``handoff_runner`` routes the waiting hand-offs from the
  database, oldest first, on every nudge and every ``retry_s`` — so one recorded while no router ran is routed
  when one starts — by the dialler's rules: the longest-idle READY agent (an agent reserved for or talking to an
  outbound call is not available). In one transaction it moves the agent ``ready -> reserved -> talking`` with
  the dialler's state machine, records the ``agent_connected`` IVR step and opens the agent's desk contact
  (``desk.open_contact``); after commit it emits ``ContactOpened`` and ``AgentStateChanged``. On PostgreSQL the
  IVR session row is locked ``FOR UPDATE SKIP LOCKED`` (and the agent's session row by ``open_session``), so
  two routers (two engine processes) route each hand-off once. The database work runs in worker threads.
* Asterisk: the dialplan queues the caller to ``Queue(hotline-agents)`` with ``CC_CLIENT_ID`` inherited; the
  queue's ``AgentConnect`` AMI event (``ChanVariable: CC_CLIENT_ID=<id>`` when manager.conf lists the variable
  in ``channelvars``) is mapped by the pure ``pop_from_agent_connect`` and carried out by ``ami_agent_connected``
  (the agent goes talking and the desk contact is opened in one transaction). ``watch_agent_connects`` hands
  ``observe`` to the AMI adapter's ``AmiPool.add_observer`` (the dialler part does so when it starts on
  Asterisk); the work runs in a worker thread and the events are emitted back on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from callcenter.dialer.service import change_agent_state, open_session
from callcenter.domain.campaigns import AgentFacts, RuleError, longest_idle
from callcenter.domain.events import AgentStateChanged, ContactOpened, Event, HandoffWaiting
from callcenter.services import desk
from callcenter.services.bus import EventBus
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models import Staff
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.telephony import variables as V

log = logging.getLogger(__name__)

HANDOFF_STEP = "handoff"
ROUTED_STEP = "agent_connected"
MAX_WAIT = timedelta(minutes=30)  # an older hand-off is a call whose end was never recorded, not a caller waiting
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Pop:
    """A hand-off given to an agent: their desk contact is open (committed)."""

    staff_id: int
    contact_id: int
    ivr_session_id: int
    client_id: int | None
    at: datetime

    def events(self) -> list[Event]:
        return [ContactOpened(staff_id=self.staff_id, contact_id=self.contact_id, client_id=self.client_id,
                              ivr_session_id=self.ivr_session_id),
                AgentStateChanged(staff_id=self.staff_id, state="talking", since=self.at.isoformat())]


def _connect(s: Session, staff_id: int, session: AgentSession | None, row: IvrSession, now: datetime,
             via: str, scripts_dir: Path | None, client_id: int | None) -> Pop:
    """The call reached ``staff_id``: the agent goes talking, the IVR session is marked routed, the desk contact
    is opened (all in the caller's transaction)."""
    if session is not None and session.state == "ready":
        change_agent_state(s, session, "reserve", now, reason="ivr_handoff")
    if session is not None and session.state == "reserved":
        change_agent_state(s, session, "connect", now, reason="ivr_handoff")
    s.add(IvrStep(session_id=row.id, at=now, step=ROUTED_STEP, detail=json.dumps({"staff_id": staff_id, "via": via})))
    contact_id = desk.open_contact(s, staff_id, desk.ContactFacts(client_id=client_id, ivr_session_id=row.id),
                                   now, scripts_dir)
    return Pop(staff_id, contact_id, row.id, client_id, now)


def waiting_handoffs(s: Session, since: datetime | None = None, limit: int = 50) -> list[int]:
    """The IVR sessions waiting for an agent, oldest hand-off first; with ``since``, only hand-offs asked for
    from then on (an IVR session whose end was never recorded — its process died — is not routed forever)."""
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


def _lock_waiting(s: Session, ivr_session_id: int) -> IvrSession | None:
    """The IVR session, locked on PostgreSQL (skipped when another router holds it), if it still waits."""
    q = select(IvrSession).where(IvrSession.id == ivr_session_id, IvrSession.ended_at.is_(None))
    if dialect_name(s) == "postgresql":
        q = q.with_for_update(skip_locked=True)
    row = s.scalars(q).first()
    if row is None:
        return None
    if s.scalars(select(IvrStep.id).where(IvrStep.session_id == row.id, IvrStep.step == ROUTED_STEP)).first():
        return None  # routed meanwhile (by another router)
    return row


def route_waiting(sessions: sessionmaker[Session], clock: Clock, scripts_dir: Path | None = None, *,
                  max_wait: timedelta = MAX_WAIT) -> list[Pop]:
    """Route the waiting hand-offs (asked for within ``max_wait``), oldest first, each to the longest-idle ready
    agent, one transaction each; stops at the first that finds nobody ready (later ones wait behind it).
    Returns the pops committed."""
    pops: list[Pop] = []
    since = clock() - max_wait
    for ivr_session_id in run_in_transaction(sessions, lambda s: waiting_handoffs(s, since)):
        now = clock()

        def work(s: Session, ivr_session_id: int = ivr_session_id, now: datetime = now) -> Pop | None | bool:
            row = _lock_waiting(s, ivr_session_id)
            if row is None:
                return False  # gone, routed, or another router has it: the next one
            ready = list(s.scalars(select(AgentSession).where(AgentSession.ended_at.is_(None),
                                                              AgentSession.state == "ready")))
            staff_id = longest_idle(AgentFacts(a.staff_id, a.state, a.state_since) for a in ready)
            if staff_id is None:
                return None
            session = open_session(s, staff_id)  # locked on PostgreSQL; re-checked below
            if session is None or session.state != "ready":
                return None
            return _connect(s, staff_id, session, row, now, "simulated", scripts_dir, row.client_id)

        try:
            pop = run_in_transaction(sessions, work)
        except (RuleError, desk.DeskError) as exc:  # the agent moved meanwhile: try again next round
            log.info("hand-off %s not routed: %s", ivr_session_id, exc)
            break
        if pop is None:
            break  # nobody ready: the rest wait (oldest first)
        if isinstance(pop, Pop):
            pops.append(pop)  # else (False): gone, routed, or another router's: the next one
    return pops


async def handoff_runner(sessions: sessionmaker[Session], bus: EventBus, clock: Clock, stop: asyncio.Event, *,
                         scripts_dir: Path | None = None, retry_s: float = 1.0,
                         max_wait: timedelta = MAX_WAIT) -> None:
    """Route the waiting IVR hand-offs (from the database) to agents until ``stop``: at start, on every
    ``HandoffWaiting`` nudge and every ``retry_s`` seconds (an agent became ready, a nudge was lost)."""
    wake = asyncio.Event()
    async with bus.subscribe("wallboard") as sub:
        async def listen() -> None:
            async for _topic, payload in sub:
                if payload.get("type") == HandoffWaiting.type:
                    wake.set()

        listener = asyncio.create_task(listen())
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    pops = await asyncio.to_thread(lambda: route_waiting(sessions, clock, scripts_dir, max_wait=max_wait))
                except Exception:  # a database hiccup: log, try again at the next round
                    log.exception("routing hand-offs failed")
                    pops = []
                for pop in pops:
                    for ev in pop.events():
                        bus.emit(ev)
                await _first(wake, stop, retry_s)  # the next round: at a nudge, at stop, or in retry_s
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


# --- Asterisk: Queue(hotline-agents) -> AgentConnect ------------------------------------------------------

@dataclass(frozen=True)
class AmiPop:
    """What an AgentConnect tells us: who took the call, the client, the caller's channel id."""

    member: str  # MemberName, else Interface
    interface: str
    client_id: int | None
    uniqueid: str


def _channel_vars(message: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    raw = message.get("ChanVariable")
    for item in raw if isinstance(raw, list) else [raw] if raw else []:
        name, _, value = str(item).partition("=")
        out[name.strip()] = value.strip()
    for key, value in message.items():  # the older form: "ChanVariable(NAME): value"
        m = re.fullmatch(r"ChanVariable\((\w+)\)", str(key))
        if m:
            out[m.group(1)] = str(value).strip()
    return out


def pop_from_agent_connect(message: Mapping[str, Any]) -> AmiPop | None:
    """Pure: an AMI ``AgentConnect`` of the hotline queue -> the pop to show; anything else -> None."""
    if str(message.get("Event", "")).lower() != "agentconnect":
        return None
    if str(message.get("Queue", "")) != "hotline-agents":
        return None
    client = _channel_vars(message).get(V.CC_CLIENT_ID, "")
    return AmiPop(member=str(message.get("MemberName") or message.get("Interface") or ""),
                  interface=str(message.get("Interface") or ""),
                  client_id=int(client) if client.isdigit() else None, uniqueid=str(message.get("Uniqueid") or ""))


def _staff_of(s: Session, pop: AmiPop) -> int | None:
    m = re.fullmatch(r"Local/(\d+)@cc-agents(?:/n)?", pop.interface)
    if m:
        return int(m.group(1))
    ext = pop.interface.rpartition("/")[2] or pop.member
    return s.scalars(select(Staff.id).where(Staff.extension == ext)).first()


def ami_agent_connected(sessions: sessionmaker[Session], clock: Clock, message: Mapping[str, Any],
                        scripts_dir: Path | None = None) -> Pop | None:
    """Carry out an AgentConnect in one transaction: the agent goes talking (dialler state machine), the IVR
    session of that call (by the caller's Uniqueid) is marked, and the agent's desk contact is opened. Returns
    the pop (the caller emits ``pop.events()``); None when it is not ours (another queue, an unknown agent or
    call). A second AgentConnect of the same call opens no second contact (``open_contact`` is idempotent)."""
    ami = pop_from_agent_connect(message)
    if ami is None:
        return None
    now = clock()

    def work(s: Session) -> Pop | None:
        staff_id = _staff_of(s, ami)
        if staff_id is None:
            return None
        row = s.scalars(select(IvrSession).where(IvrSession.call_id == ami.uniqueid)).first() if ami.uniqueid else None
        if row is None:  # not a hotline call we recorded: nothing to open the desk contact on
            log.warning("AgentConnect for unknown call %r (agent %s)", ami.uniqueid, staff_id)
            return None
        session = open_session(s, staff_id)  # None: not logged in at the desk; the call reached them all the same
        client_id = ami.client_id if ami.client_id is not None else row.client_id
        return _connect(s, staff_id, session, row, now, "asterisk", scripts_dir, client_id)

    return run_in_transaction(sessions, work)


def watch_agent_connects(sessions: sessionmaker[Session], bus: EventBus, clock: Clock,
                         add_observer: Callable[[Callable[[dict[str, Any]], None]], None], *,
                         scripts_dir: Path | None = None) -> set[Any]:
    """On Asterisk: pop the client on the agent's screen when the hotline queue connects a caller to an agent.
    ``add_observer`` is the AMI adapter's (AmiPool.add_observer); call this on the event loop. The database work
    runs in a worker thread; its events are emitted on the loop (the future's done callback runs there). The
    returned set holds the futures still running (so none is lost, and errors are logged)."""
    loop = asyncio.get_running_loop()
    running: set[Any] = set()

    def done(future: Any) -> None:
        running.discard(future)
        if future.cancelled():
            return
        if future.exception() is not None:
            log.error("AgentConnect pop failed: %r", future.exception())
            return
        pop = future.result()
        if pop is not None:
            for ev in pop.events():
                bus.emit(ev)

    def start(message: dict[str, Any]) -> None:
        future = loop.run_in_executor(None, ami_agent_connected, sessions, clock, message, scripts_dir)
        running.add(future)
        future.add_done_callback(done)

    def observe(message: dict[str, Any]) -> None:
        if pop_from_agent_connect(message) is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            start(message)
        else:  # the AMI reader calls from another thread: hand the work to the loop
            loop.call_soon_threadsafe(start, message)

    add_observer(observe)
    return running
