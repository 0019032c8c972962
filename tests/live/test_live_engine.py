"""The whole dialler (``DialerEngine``: the call core, its database, the AMI adapter) against a real Asterisk 22
running the shipped dialplan and the simulated parties of tests/live/sim-parties.conf: agent phones that never
answer (finding 4), two Asterisk servers (finding 7) and an engine that dies mid-call (finding 12).

The adapter facts these runs rest on (no AgentJoined for a phone that rings unanswered, the server on every
event, the calls and legs a dead process left up found by CoreShowChannels) are recorded by test_live_ami.py and
replayed in the ordinary suite; the decisions on them are the call core's (tests/unit/test_call_core.py)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, time as dtime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, create_campaign, start_campaign
from callcenter.parts.dialer import dialer_deps
from callcenter.store.db import transaction
from callcenter.store.models.dialer import AgentSession, Attempt, Lead
from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiPool, AmiServer
from tests.adapters.ami_scenarios import crash
from tests.factories import make_staff
from tests.live.asterisk import SECOND, LiveAsterisk, live_binary
from tests.live.capture import RecordingProxy, render

pytestmark = pytest.mark.db

OPTIONS = AmiOptions(dial_template="Local/{digits}@sim-customers", heartbeat_s=0, backoff_initial_s=0.5,
                     agent_ring_timeout_s=3)


class Wall:
    """The engine's wall clock: the tests' fixed clock, moving on in real time from when it is made."""

    def __init__(self, start: datetime) -> None:
        self.start, self.t0 = start, time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


def engine_for(core: App, telephony: object, dialer_id: str, wall: Callable[[], datetime]) -> DialerEngine:
    deps = replace(dialer_deps(core), wall=wall, process_lease=timedelta(seconds=2))
    return DialerEngine(deps, telephony, dialer_id=dialer_id, sync_s=0.5, tick_s=0.2,  # type: ignore[arg-type]
                        wallboard_s=5.0, abandon_after_s=2.0, originate_timeout_s=15)


def campaign(core: App, phones: Mapping[str, str], numbers: list[str]) -> tuple[int, dict[str, int]]:
    """A running campaign with ``numbers`` as leads and one ready agent per entry of ``phones`` (name -> dial
    string, ``{staff}`` replaced by the agent's staff id). No answering-machine detection (``amd_policy``
    ``off``): the simulated customers answer in silence, which AMD would take seconds to judge, while these tests
    are about reaching agents; AMD has its own live tests (``test_live_prompts``, ``test_live_ami``)."""
    cid = create_campaign(core, name="实机", kind="cold_leads", script_id="cold_call", window_start=dtime(0),
                          window_end=dtime(23, 59, 59), days="every", amd_policy="off")
    staff = {name: make_staff(core, name, "pw-agent-123456", "agent") for name in phones}
    assign_campaign(core, cid, staff_ids=list(staff.values()))
    add_leads(core, cid, [LeadRow(0, number, "客户") for number in numbers])
    start_campaign(core, cid)
    for name, sid in staff.items():
        agent_login(core, sid, campaign_id=cid, phone=phones[name].format(staff=sid))
        agent_ready(core, sid)
    return cid, staff


def attempts(core: App) -> list[Attempt]:
    with transaction(core.sessions) as s:
        rows = list(s.scalars(select(Attempt).order_by(Attempt.id)))
        s.expunge_all()
        return rows


def session_of(core: App, staff_id: int) -> AgentSession:
    with transaction(core.sessions) as s:
        row = s.scalars(select(AgentSession).where(AgentSession.staff_id == staff_id)).one()
        s.expunge(row)
        return row


async def until(what: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


class Running:
    """An engine's ``run`` in a task; ``stop()`` ends it cleanly, ``crash()`` as a killed process would."""

    def __init__(self, engine: DialerEngine) -> None:
        self.engine, self.stopping = engine, asyncio.Event()
        self.task = asyncio.create_task(engine.run(self.stopping))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, 30)

    async def crash(self) -> None:
        async def no_shutdown() -> None:  # a killed process gives nothing back
            return None

        self.engine.shutdown = no_shutdown  # type: ignore[method-assign]
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def text_of(proxy: RecordingProxy, session: int = 0) -> str:
    return render(proxy.sessions[session]).decode(errors="replace")


async def test_no_lead_is_dialled_for_an_agent_phone_until_it_has_joined_its_room(core: App,
                                                                                   asterisk: LiveAsterisk) -> None:
    """Finding 4: an agent whose phone rings unanswered gets no call (the engine used to dial a lead every 30 s);
    an agent whose phone answers gets one, dialled only after its leg's ConfbridgeJoin."""
    asterisk.cli("channel request hangup all")
    _, staff = campaign(core, {"away": "Local/{staff}@sim-agent-noanswer", "here": "Local/{staff}@sim-agent-phones"},
                        ["+8613900000001"])
    with transaction(core.sessions) as s:  # "here" starts paused: first only the phone nobody answers is up
        row = s.scalars(select(AgentSession).where(AgentSession.staff_id == staff["here"])).one()
        row.state = "paused"
    proxy = await RecordingProxy(asterisk.ami_address).start()
    client = AmiClient(AmiServer(*proxy.address, "callcenter", asterisk.ami_secret), OPTIONS)
    await client.start()
    run = Running(engine_for(core, client, "live-4", Wall(core.clock())))
    try:
        await until(lambda: f"Uniqueid: agent-{staff['away']}-leg" in text_of(proxy))  # its phone rings...
        await asyncio.sleep(5.0)  # ...past the ring timeout (3 s): the login failed, nothing was dialled
        assert attempts(core) == []
        assert "Context: cc-outbound" not in text_of(proxy)
        with transaction(core.sessions) as s:
            s.scalars(select(AgentSession).where(AgentSession.staff_id == staff["here"])).one().state = "ready"
        await until(lambda: len(attempts(core)) == 1)
        await until(lambda: attempts(core)[0].ended_at is not None)
    finally:
        await run.stop()
        await client.aclose()
        await proxy.aclose()
    seen = text_of(proxy)
    joined = seen.index(f"Conference: agent-{staff['here']}")
    dialled = seen.index(">>> Context: cc-outbound")
    assert joined < dialled  # the lead was dialled after the agent's phone joined its room, not when it was dialled
    assert f"Conference: agent-{staff['away']}" not in seen
    [attempt] = attempts(core)
    assert attempt.outcome == "human" and attempt.agent_id == staff["here"]


class Steered(AmiPool):
    """The pool with agent phones on chosen servers and every call placed on one server (a real site: phones
    registered on one Asterisk, a carrier trunk on another)."""

    def __init__(self, servers: list[AmiServer], rooms: dict[str, int], calls_on: int) -> None:
        super().__init__(servers, OPTIONS)
        self.rooms, self.calls_on = rooms, calls_on

    async def agent_login(self, agent_id: str, phone: str, server: str | None = None) -> None:
        await super().agent_login(agent_id, phone, server=self.clients[self.rooms[agent_id]].name)

    async def originate(self, call_id: str, number: str, caller_id: str, variables: Mapping[str, str],
                        timeout_s: float) -> None:
        client = self.clients[self.calls_on]
        await client.originate(call_id, number, caller_id, variables, timeout_s)
        self._calls[call_id] = client


async def test_a_call_is_connected_only_to_an_agent_on_its_own_server(core: App, asterisk: LiveAsterisk,
                                                                      tmp_path: Path) -> None:
    """Finding 7: two Asterisks; agent "a" sits on server A, agent "b" on B, both calls are answered on B: one goes
    to "b", the other waits and is abandoned with the safe-harbour prompt -- never Redirected into a's room."""
    binary = live_binary()
    assert binary is not None
    asterisk.cli("channel request hangup all")
    b_pbx = LiveAsterisk(binary, tmp_path / "ast-b", bind=SECOND)
    b_pbx.start()
    proxies = [await RecordingProxy(p.ami_address).start() for p in (asterisk, b_pbx)]
    try:
        _, staff = campaign(core, {"a": "Local/{staff}@sim-agent-phones", "b": "Local/{staff}@sim-agent-phones"},
                            ["+8613900000001", "+8613900000005"])
        servers = [AmiServer(*p.address, "callcenter", asterisk.ami_secret) for p in proxies]
        pool = Steered(servers, {str(staff["a"]): 0, str(staff["b"]): 1}, calls_on=1)
        await pool.start()
        run = Running(engine_for(core, pool, "live-7", Wall(core.clock())))
        try:
            await until(lambda: len(attempts(core)) == 2 and all(a.ended_at is not None for a in attempts(core)))
        finally:
            await run.stop()
            await pool.aclose()
    finally:
        for proxy in proxies:
            await proxy.aclose()
        b_pbx.stop()
    outcomes = sorted((a.outcome, a.agent_id) for a in attempts(core))
    assert outcomes == sorted([("human", staff["b"]), ("abandoned", None)]), outcomes
    on_a, on_b = text_of(proxies[0]), text_of(proxies[1])
    assert "cc-agent-join" not in on_a and "Context: cc-outbound" not in on_a  # nothing was placed or moved on A
    assert re.findall(r">>> Context: cc-agent-join\n>>> Exten: (\S+)", on_b) == [str(staff["b"])]
    assert ">>> Context: cc-play" in on_b
    assert "cc/safe-harbour" in on_b  # the abandoned call heard the safe-harbour prompt
    assert session_of(core, staff["a"]).attempt_id is None


async def test_engine_restart_mid_call_adopts_the_call_and_its_agent(core: App, asterisk: LiveAsterisk) -> None:
    """Finding 12: a customer talking to an agent when the engine dies; the next engine adopts the call (it ends
    ``human`` with its whole talk time when the customer hangs up), the agent goes to wrap-up, nothing is
    re-dialled, and the agent's phone, still in its room, is not dialled again (no ChannelId collision)."""
    asterisk.cli("channel request hangup all")
    _, staff = campaign(core, {"agent": "Local/{staff}@sim-agent-phones"}, ["+8613900000006"])  # answers, stays 60 s
    agent = staff["agent"]
    wall = Wall(core.clock())
    proxy = await RecordingProxy(asterisk.ami_address).start()
    server = AmiServer(*proxy.address, "callcenter", asterisk.ami_secret)
    first = AmiClient(server, OPTIONS)
    await first.start()
    run = Running(engine_for(core, first, "live-12-a", wall))
    try:
        await until(lambda: bool(attempts(core)) and attempts(core)[0].connected_at is not None)
        assert session_of(core, agent).state == "talking"
        await asyncio.sleep(2.0)  # they talk
    finally:
        await run.crash()
        await crash(first)
    talked_before = (wall() - attempts(core)[0].connected_at).total_seconds()  # type: ignore[operator]
    second = AmiClient(server, OPTIONS)
    await second.start()
    run = Running(engine_for(core, second, "live-12-b", wall))
    try:
        # the dead engine's lease (2 s) runs out, the call still up on Asterisk is adopted, the agent stays talking
        await until(lambda: attempts(core)[0].dialer_id == "live-12-b")
        assert attempts(core)[0].ended_at is None and session_of(core, agent).state == "talking"
        call_id = attempts(core)[0].call_id
        assert call_id is not None and call_id in run.engine.calls
        await asyncio.sleep(1.0)
        channel = second.tracker.channel_of(call_id)
        assert channel is not None
        asterisk.cli(f"channel request hangup {channel}")  # the customer hangs up
        await until(lambda: attempts(core)[0].ended_at is not None)
        await until(lambda: session_of(core, agent).state == "wrap_up")
        await asyncio.sleep(1.0)  # a re-dial, had there been one, would come now
    finally:
        await run.stop()
        await second.aclose()
        await proxy.aclose()
    [attempt] = attempts(core)  # nothing re-dialled
    assert attempt.outcome == "human" and attempt.agent_id == agent
    assert attempt.talk_s is not None and attempt.talk_s > talked_before + 1.0  # the whole call, both engines' parts
    with transaction(core.sessions) as s:
        lead = s.scalars(select(Lead)).one()
        assert lead.status != "retry" and lead.claimed_by is None
    after = text_of(proxy, 1)  # the second engine's AMI session
    assert f"ChannelId: agent-{agent}-leg" not in after  # its phone was already in its room: not dialled again
    assert "already in use" not in asterisk.log()
