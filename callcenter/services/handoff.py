"""IVR hand-offs to agents: the client who pressed "agent" in the IVR pops on one agent's screen with what they
just did there (``ivr_sessions.summary``, ``ivr_steps``; the desk card reads them).

* Simulated telephony (the default): ``StoreIvrBackend.record_event(step="handoff")`` publishes ``wallboard``
  ``{"type": "ivr_handoff", "ivr_session_id"}``; ``handoff_runner`` routes it by the dialler's rules — the
  longest-idle READY agent (an agent reserved for or talking to an outbound call is not available) — moves the
  agent ``ready -> reserved -> talking`` with the dialler's state machine, records an ``agent_connected`` IVR
  step, and publishes ``agent:<staff id>`` ``{"type": "call_connected", "ivr_session_id", "client_id"}``.
  With nobody ready the hand-off waits (oldest first) and is routed when an agent becomes ready.
* Asterisk: the dialplan queues the caller to ``Queue(hotline-agents)`` with ``CC_CLIENT_ID`` inherited; the
  queue's ``AgentConnect`` AMI event (``ChanVariable: CC_CLIENT_ID=<id>`` when manager.conf lists the variable
  in ``channelvars``) is mapped by the pure ``pop_from_agent_connect`` and carried out by ``ami_agent_connected``
  (same screen pop). ``watch_agent_connects`` hands ``observe`` to the AMI adapter's ``AmiPool.add_observer``
  (the dialler engine does so when it starts on Asterisk), so every AgentConnect reaches it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.bootstrap import App
from callcenter.dialer.service import change_agent_state, open_session
from callcenter.domain.campaigns import AgentFacts, RuleError, longest_idle
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models import Staff
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.telephony import variables as V

log = logging.getLogger(__name__)

ROUTED_STEP = "agent_connected"


@dataclass(frozen=True)
class Pop:
    staff_id: int
    ivr_session_id: int | None
    client_id: int | None

    def event(self) -> dict[str, Any]:
        return {"type": "call_connected", "ivr_session_id": self.ivr_session_id, "client_id": self.client_id}


class HandoffGone(Exception):
    """The IVR session is unknown, over, or already with an agent: nothing to route."""


def _ivr_row(s: Session, ivr_session_id: int) -> IvrSession:
    q = select(IvrSession).where(IvrSession.id == ivr_session_id)
    if dialect_name(s) == "postgresql":
        q = q.with_for_update()  # two routers (two engine processes) route a hand-off once
    row = s.scalars(q).first()
    if row is None or row.ended_at is not None:
        raise HandoffGone(ivr_session_id)
    routed = s.scalars(select(IvrStep.id).where(IvrStep.session_id == row.id, IvrStep.step == ROUTED_STEP)).first()
    if routed is not None:
        raise HandoffGone(ivr_session_id)
    return row


def _connect(s: Session, session: AgentSession, row: IvrSession | None, now: datetime, via: str) -> None:
    if session.state == "ready":
        change_agent_state(s, session, "reserve", now, reason="ivr_handoff")
    change_agent_state(s, session, "connect", now, reason="ivr_handoff")
    if row is not None:
        s.add(IvrStep(session_id=row.id, at=now, step=ROUTED_STEP,
                      detail=json.dumps({"staff_id": session.staff_id, "via": via})))


def route_handoff(core: App, ivr_session_id: int) -> Pop | None:
    """Give the hand-off to the longest-idle ready agent (one transaction); None when nobody is ready.
    Raises HandoffGone when there is nothing (more) to route. The caller publishes ``pop.event()``."""
    now = core.clock()

    def work(s: Session) -> Pop | None:
        row = _ivr_row(s, ivr_session_id)
        ready = list(s.scalars(select(AgentSession).where(AgentSession.ended_at.is_(None),
                                                          AgentSession.state == "ready")))
        staff_id = longest_idle(AgentFacts(a.staff_id, a.state, a.state_since) for a in ready)
        if staff_id is None:
            return None
        session = open_session(s, staff_id)  # locked on PostgreSQL; re-checked below
        if session is None or session.state != "ready":
            return None
        _connect(s, session, row, now, "simulated")
        return Pop(staff_id, row.id, row.client_id)

    return run_in_transaction(core.sessions, work)


def publish_pop(core: App, pop: Pop) -> None:
    core.bus.publish(f"agent:{pop.staff_id}", pop.event())
    core.bus.publish("wallboard", {"type": "ivr_handoff_connected", "ivr_session_id": pop.ivr_session_id,
                                   "staff_id": pop.staff_id})


async def handoff_runner(core: App, stop: asyncio.Event, *, retry_s: float = 1.0) -> None:
    """Route IVR hand-offs (``wallboard`` ``ivr_handoff`` events) to agents until ``stop``; waiting hand-offs are
    retried every ``retry_s`` seconds and given up when their IVR session ends."""
    waiting: deque[int] = deque()
    async with core.bus.subscribe("wallboard") as sub:
        while not stop.is_set():
            try:
                _topic, event = await asyncio.wait_for(sub.__anext__(), retry_s)
                if event.get("type") == "ivr_handoff" and isinstance(event.get("ivr_session_id"), int):
                    if event["ivr_session_id"] not in waiting:
                        waiting.append(event["ivr_session_id"])
            except TimeoutError:
                pass
            while waiting:
                try:
                    pop = await asyncio.to_thread(route_handoff, core, waiting[0])
                except HandoffGone:
                    waiting.popleft()
                    continue
                except RuleError as exc:  # the agent moved meanwhile: try again next round
                    log.info("hand-off %s not routed: %s", waiting[0], exc)
                    break
                if pop is None:
                    break
                waiting.popleft()
                publish_pop(core, pop)


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


def ami_agent_connected(core: App, message: Mapping[str, Any]) -> Pop | None:
    """Carry out an AgentConnect: the agent goes talking (dialler state machine), the IVR session of that call
    (by the caller's Uniqueid) is marked, and the screen pop is published. None when it is not ours."""
    ami = pop_from_agent_connect(message)
    if ami is None:
        return None
    now = core.clock()

    def work(s: Session) -> Pop | None:
        staff_id = _staff_of(s, ami)
        if staff_id is None:
            return None
        session = open_session(s, staff_id)
        row = s.scalars(select(IvrSession).where(IvrSession.call_id == ami.uniqueid)).first() if ami.uniqueid else None
        if session is not None and session.state in ("ready", "reserved"):
            _connect(s, session, row, now, "asterisk")
        return Pop(staff_id, row.id if row is not None else None,
                   ami.client_id if ami.client_id is not None else (row.client_id if row is not None else None))

    pop = run_in_transaction(core.sessions, work)
    if pop is not None:
        publish_pop(core, pop)
    return pop


def watch_agent_connects(core: App, add_observer: Callable[[Callable[[dict[str, Any]], None]], None]) -> set[Any]:
    """On Asterisk: pop the client on the agent's screen when the hotline queue connects a caller to an agent.
    ``add_observer`` is the AMI adapter's (AmiPool.add_observer). The database work runs in a worker thread;
    the returned set holds the futures still running (so none is lost, and errors are logged)."""
    loop = asyncio.get_running_loop()
    running: set[Any] = set()

    def done(future: Any) -> None:
        running.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("AgentConnect pop failed: %r", future.exception())

    def observe(message: dict[str, Any]) -> None:
        if pop_from_agent_connect(message) is None:
            return
        future = loop.run_in_executor(None, ami_agent_connected, core, message)
        running.add(future)
        future.add_done_callback(done)

    add_observer(observe)
    return running
