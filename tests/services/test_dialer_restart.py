"""Real-Asterisk finding 12 in the ordinary suite: the engine that starts after a dialler died mid-call, on a port
that reports what the PBX still has up (as ``AmiClient.recover`` does from ``CoreShowChannels``, proven live in
tests/live/test_live_engine.py and replayed from recovered_after_engine_restart.*.ami)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import time as dtime, timedelta

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.hopper import claim_leads, start_attempt
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.leases import heartbeat
from callcenter.services.dialer.campaigns import (
    agent_login,
    agent_ready,
    assign_campaign,
    change_agent_state,
    create_campaign,
    start_campaign,
)
from callcenter.parts.dialer import dialer_deps
from callcenter.ports.telephony import AgentJoined, Ended, EventStream, LiveCall, Recovered, TelephonyEvent
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.dialer import AgentSession, Attempt, Campaign, Lead
from tests.factories import make_staff

pytestmark = pytest.mark.db


class RecoveringPort:
    """A PBX port that, asked to ``recover``, reports the calls and agent legs a previous process left up."""

    def __init__(self, calls: tuple[LiveCall, ...], legs: tuple[str, ...]) -> None:
        self.stream = EventStream()
        self.left_up, self.legs = calls, legs
        self.originated: list[str] = []
        self.hung_up: list[str] = []
        self.logins: list[str] = []

    async def start(self) -> None: ...

    async def aclose(self) -> None:
        self.stream.close()

    async def recover(self) -> list[TelephonyEvent]:
        found: list[TelephonyEvent] = [Recovered("pbx", 0.0, self.left_up)]
        found += [AgentJoined(agent, 0.0, server="pbx") for agent in self.legs]
        for event in found:
            self.stream.publish(event)
        return found

    async def originate(self, call_id: str, number: str, caller_id: str, variables: Mapping[str, str],
                        timeout_s: float) -> None:
        self.originated.append(call_id)

    async def connect(self, call_id: str, agent_id: str) -> None: ...

    async def hangup(self, call_id: str) -> None:
        self.hung_up.append(call_id)

    async def play(self, call_id: str, prompt: str) -> None: ...

    async def agent_login(self, agent_id: str, phone: str) -> None:
        self.logins.append(agent_id)

    async def agent_logout(self, agent_id: str) -> None: ...

    def events(self):  # type: ignore[no-untyped-def]
        return self.stream.__aiter__()

    def end(self, event: TelephonyEvent) -> None:
        self.stream.publish(event)


async def until(what, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_call_left_talking_by_a_dead_dialler_is_adopted_and_ends_human(core: App) -> None:
    cid = create_campaign(core, name="重启", kind="cold_leads", script_id="cold_call", window_start=dtime(0),
                          window_end=dtime(23, 59, 59), days="every")
    agent = make_staff(core, "agent-restart", "pw-agent-123456", "agent")
    assign_campaign(core, cid, staff_ids=[agent])
    add_leads(core, cid, [LeadRow(0, "+8613900000006", "客户"), LeadRow(0, "+8613900000007", "客户")])
    start_campaign(core, cid)
    agent_login(core, agent, campaign_id=cid, phone="Local/1@sim-agent-phones")
    agent_ready(core, agent)
    t0 = core.clock()

    def dead_dialler_mid_call(s):  # type: ignore[no-untyped-def]
        heartbeat(s, "dead", t0, timedelta(seconds=1))
        campaign = s.get(Campaign, cid)
        talking, other = claim_leads(s, campaign, "dead", 2, t0, lambda d: True)
        attempt = start_attempt(s, talking, campaign, "dead", t0, mode="progressive", agent_id=agent)
        attempt.answered_at = attempt.connected_at = t0
        session = s.scalars(select(AgentSession).where(AgentSession.staff_id == agent)).one()
        change_agent_state(s, session, "reserve", t0, attempt_id=attempt.id)
        change_agent_state(s, session, "connect", t0, attempt_id=attempt.id)
        session.dialer_id, session.lease_until = "dead", t0 + timedelta(minutes=10)
        over = start_attempt(s, other, campaign, "dead", t0, mode="progressive")
        over.ended_at, over.outcome = t0, "busy"  # its channel lingers on the PBX: nobody records it any more
        other.status, other.claimed_by, other.claimed_until = "done", None, None
        return attempt.call_id, over.call_id

    call_id, over_id = run_in_transaction(core.sessions, dead_dialler_mid_call)
    port = RecoveringPort((LiveCall(call_id, True, str(agent)), LiveCall(over_id, True)), (str(agent),))
    started = time.monotonic()
    wall = lambda: t0 + timedelta(seconds=5 + time.monotonic() - started)  # noqa: E731  # 5 s after the crash
    engine = DialerEngine(replace(dialer_deps(core), wall=wall), port, dialer_id="new",  # type: ignore[arg-type]
                          sync_s=0.2, tick_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        await until(lambda: call_id in engine.calls)
        assert port.hung_up == [over_id]  # up with our id, its attempt over: hung up
        with transaction(core.sessions) as s:
            attempt = s.scalars(select(Attempt).where(Attempt.call_id == call_id)).one()
            session = s.scalars(select(AgentSession).where(AgentSession.staff_id == agent)).one()
            assert attempt.ended_at is None and attempt.dialer_id == "new"
            assert (session.state, session.dialer_id) == ("talking", "new")
        assert engine.agents[agent].phone_up and engine.agents[agent].call_id == call_id
        await asyncio.sleep(0.5)
        port.end(Ended(call_id, 0.0, 16, "Normal Clearing", None))  # the customer hangs up
        await until(lambda: call_id not in engine.calls)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert port.originated == [] and port.logins == []  # nothing re-dialled; its phone was up already
    with transaction(core.sessions) as s:
        attempt = s.scalars(select(Attempt).where(Attempt.call_id == call_id)).one()
        assert attempt.outcome == "human" and attempt.talk_s is not None and attempt.talk_s >= 5.5
        session = s.scalars(select(AgentSession).where(AgentSession.staff_id == agent)).one()
        assert session.state == "wrap_up"
        lead = s.get(Lead, attempt.lead_id)
        assert lead is not None and lead.status != "retry" and lead.claimed_by is None
