"""End to end in one event loop: the real web app (uvicorn on 127.0.0.1, port 0), the dialler engine on the
simulated PBX at virtual time, the agent's SSE stream. An agent logs in through the pages (cookie + CSRF), goes
ready, gets the engine's call and its screen pop, hangs up (a call command the engine's ``command_loop``
carries out through the port), sets a disposition and books a callback; an IVR hand-off -- an inbound call of the
same engine -- pops on the longest-idle ready agent (not on one talking to an outbound call) and, when the caller
hangs up, leaves the agent in wrap-up like an outbound call; a contact opened while no browser was
connected is what the agent's stream says first."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta, timezone
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.parts.dialer import dialer_deps
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.services import desk
from callcenter.services.call_commands import command_loop
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models import CallCommand
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession, AgentStateChange, Attempt, Callback
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, build

pytestmark = pytest.mark.db
BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)
PHONE = "+8613900000009"
WAIT = 10.0  # a bound against hanging, never a timing assertion


class Stack:
    def __init__(self, core: App) -> None:
        self.core = core
        self.vclock = VirtualClock()
        core.clock = self.wall
        self.world = build(core)

    def wall(self) -> datetime:
        return BASE + timedelta(seconds=self.vclock.time())

    async def __aenter__(self) -> "Stack":
        self.core.bus.bind_loop(asyncio.get_running_loop())
        config = uvicorn.Config(create_app(self.core), host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        self.server = uvicorn.Server(config)
        self.server_task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)  # readiness only
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.server_task

    async def login(self, user: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
        c = httpx.AsyncClient(base_url=self.base, timeout=WAIT)
        page = await c.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = await c.post("/login", data={"username": user, "password": PASSWORDS[user], "csrf": token})
        assert r.status_code == 303, r.text
        home = await c.get(r.headers["location"])
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]
        return c, {"X-CSRF-Token": csrf}


async def sse_events(client: httpx.AsyncClient, out: asyncio.Queue[dict[str, Any]]) -> None:
    async with client.stream("GET", "/live/agent", timeout=None) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                await out.put(json.loads(line[6:]))


async def next_of(queue: asyncio.Queue[dict[str, Any]], kind: str) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            ev = await queue.get()
            if ev.get("type") == kind:
                return ev

    return await asyncio.wait_for(find(), WAIT)


async def drive(engine: DialerEngine, pbx: SimulatedPbx, vclock: VirtualClock, seconds: float,
                until: Any = None) -> None:
    """Virtual time: run the PBX's timers and the engine's deadlines, letting the loop (web, SSE) run between."""
    end = vclock.time() + seconds
    while vclock.time() < end and not (until and until()):
        targets = [engine.next_deadline(), end]
        nxt = vclock.next_time()
        if nxt is not None:
            targets.append(nxt)
        vclock.run_until(max(min(targets), vclock.time()))
        for event in pbx.stream.pending():
            await engine.handle(event)
        await engine.tick()
        await asyncio.sleep(0)


@pytest.fixture
async def stack(core: App) -> AsyncIterator[Stack]:
    st = Stack(core)
    async with st:
        yield st


async def test_agent_on_the_web_screen_gets_a_dialler_call_disposes_and_books_a_callback(stack: Stack) -> None:
    core, world = stack.core, stack.world
    ag1 = world.staff["ag1"]
    cid = dialer.create_campaign(core, name="流失客户挽回", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59), days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.mine)])
    pbx = SimulatedPbx(CustomerModel(talk_mean_s=60.0, talk_sd_s=5.0), clock=stack.vclock, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="it", clock=stack.vclock, campaign_ids={cid})
    await pbx.start()
    client, h = await stack.login("ag1")
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(sse_events(client, events))
    stop = asyncio.Event()  # the hang-up button's command, carried out by the engine that owns the call
    hangups = asyncio.create_task(command_loop(core.sessions, core.bus, engine.dialer_id,
                                               lambda c: engine.hangup_requested(c.contact_id, c.staff_id), stop,
                                               poll_s=0.05, clock=stack.wall))
    try:
        await next_of(events, "hello")
        r = await client.post("/api/desk/state", json={"state": "ready"}, headers=h)
        assert r.status_code == 200 and r.json()["state"] == "ready"
        await drive(engine, pbx, stack.vclock, 1)  # not started yet: nothing is dialled
        assert pbx.originated == 0
        r = await client.post(f"/supervisor/campaigns/{cid}/action", data={"action": "start", "csrf": h["X-CSRF-Token"]})
        assert r.status_code == 403  # agents do not run campaigns
        sup, sh = await stack.login("sup1")
        r = await sup.post(f"/supervisor/campaigns/{cid}/action", data={"action": "start", "csrf": sh["X-CSRF-Token"]})
        assert r.status_code == 303
        await drive(engine, pbx, stack.vclock, 30, until=lambda: any(c.connected for c in engine.calls.values()))
        assert pbx.originated == 1
        pop = await next_of(events, "call")  # the desk contact the engine opened with the call
        contact_id = pop["contact_id"]
        card = await client.get(f"/agent/contacts/{contact_id}/card")
        assert card.status_code == 200 and "流失客户挽回" in card.text and "测试" in card.text
        r = await client.post(f"/api/desk/contacts/{contact_id}/script", json={"action": "answer", "answer": "listening"},
                              headers=h)
        assert r.status_code == 200
        assert (await client.post(f"/api/desk/contacts/{contact_id}/hangup", headers=h)).status_code == 200
        await asyncio.wait_for(_until(lambda: not pbx.calls), WAIT)  # the engine hung up through the port
        await drive(engine, pbx, stack.vclock, 1)
        due = (stack.wall() + timedelta(days=2)).isoformat()
        r = await client.post(f"/api/desk/contacts/{contact_id}/dispose", headers=h,
                              json={"disposition": "callback", "note": "下周再谈", "callback_at": due,
                                    "callback_agent_only": True})
        assert r.status_code == 200, r.text
        cb_id = r.json()["callback_id"]
        r = await client.post("/api/desk/state", json={"state": "ready"}, headers=h)
        assert r.status_code == 200 and r.json()["state"] == "ready"
    finally:
        stop.set()
        reader.cancel()
        await asyncio.gather(reader, hangups, return_exceptions=True)
        await client.aclose()
    with transaction(core.sessions) as s:
        [att] = s.scalars(select(Attempt).where(Attempt.campaign_id == cid)).all()
        assert att.agent_id == ag1 and att.outcome == "human" and att.disposition == "callback"
        assert att.dialled_at <= att.answered_at <= att.connected_at <= att.ended_at
        assert att.notes == "下周再谈" and "listening" in json.dumps(att.script_run)
        cb = s.get(Callback, cb_id)
        assert cb.lead_id == att.lead_id and cb.agent_only and cb.owner_id == ag1 and cb.status == "pending"
        contact = s.get(DeskContact, contact_id)
        assert contact.attempt_id == att.id and contact.ended_at is not None
        [cmd] = s.scalars(select(CallCommand)).all()  # the hang-up, carried out by its dialler
        assert (cmd.kind, cmd.contact_id, cmd.attempt_id, cmd.state, cmd.claimed_by) == (
            "hangup", contact_id, att.id, "done", "it")
        changes = [(c.from_state, c.to_state) for c in s.scalars(
            select(AgentStateChange).where(AgentStateChange.staff_id == ag1).order_by(AgentStateChange.id))]
    assert changes == [("logged_out", "paused"), ("paused", "ready"), ("ready", "reserved"), ("reserved", "talking"),
                       ("talking", "wrap_up"), ("wrap_up", "ready")]


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0)


async def test_ivr_handoff_pops_on_the_longest_idle_ready_agent(stack: Stack) -> None:
    core, world = stack.core, stack.world
    ag1, bo1 = world.staff["ag1"], world.staff["bo1"]
    # bo1 has been ready longest but is talking to an outbound call: not available
    dialer.agent_login(core, bo1)
    dialer.agent_ready(core, bo1)
    with transaction(core.sessions) as s:
        row = s.scalars(select(AgentSession).where(AgentSession.staff_id == bo1)).one()
        dialer.change_agent_state(s, row, "reserve", core.clock())
        dialer.change_agent_state(s, row, "connect", core.clock())
    stack.vclock.advance(5)
    with transaction(core.sessions) as s:
        ivr = IvrSession(call_id="agi-1", channel="ivr-agi", caller="+8613900000001", client_id=world.mine,
                         started_at=core.clock())
        s.add(ivr)
        s.flush()
        ivr_id = ivr.id
    pbx = SimulatedPbx(CustomerModel(talk_mean_s=60.0, talk_sd_s=5.0), clock=stack.vclock)
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="it", clock=stack.vclock, auto_wrap_up_s=None)
    await pbx.start()
    client, h = await stack.login("ag1")
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(sse_events(client, events))
    try:
        await next_of(events, "hello")
        ivr_id2 = await asyncio.to_thread(core.ivr.record_event, "agi-1", "handoff", {"summary": "查询余额后转人工"})
        assert ivr_id2 == ivr_id
        r = await client.post("/api/desk/state", json={"state": "ready"}, headers=h)
        assert r.status_code == 200
        await drive(engine, pbx, stack.vclock, 5, until=lambda: any(
            c.state == "connected" for c in engine.core.inbound.values()))
        pop = await next_of(events, "call")
        card = await client.get(f"/agent/contacts/{pop['contact_id']}/card")
        assert card.status_code == 200 and "查询余额后转人工" in card.text and "测试" in card.text
        [call_id] = engine.core.inbound
        stack.vclock.advance(10)
        pbx.caller_hangs_up(call_id)  # the caller hangs up: the agent is freed like after an outbound call
        await drive(engine, pbx, stack.vclock, 1)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await client.aclose()
    with transaction(core.sessions) as s:
        contact = s.get(DeskContact, pop["contact_id"])
        assert contact.agent_id == ag1 and contact.ivr_session_id == ivr_id and contact.direction == "inbound"
        assert s.scalars(select(AgentSession.state).where(AgentSession.staff_id == ag1)).one() == "wrap_up"
        assert s.scalars(select(AgentSession.state).where(AgentSession.staff_id == bo1)).one() == "talking"
        steps = [st.step for st in s.scalars(select(IvrStep).where(IvrStep.session_id == ivr_id))]
        assert "agent_connected" in steps and steps[-1] == "end"
        assert s.get(IvrSession, ivr_id).end_reason == "completed"


async def test_preview_lead_shown_on_the_screen_then_dialled(stack: Stack) -> None:
    core, world = stack.core, stack.world
    cid = dialer.create_campaign(core, name="网点潜客", kind="cold_leads", script_id="cold_call", dial_mode="preview",
                                 window_start=time(0), window_end=time(23, 59, 59), days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "李先生")])
    dialer.start_campaign(core, cid)
    pbx = SimulatedPbx(clock=stack.vclock, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="it", clock=stack.vclock, campaign_ids={cid})
    await pbx.start()
    client, h = await stack.login("ag1")
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(sse_events(client, events))
    try:
        await next_of(events, "hello")
        assert (await client.post("/api/desk/preview", json={"action": "dial"}, headers=h)).status_code == 409
        assert (await client.post("/api/desk/state", json={"state": "ready"}, headers=h)).status_code == 200
        await drive(engine, pbx, stack.vclock, 2)
        shown = await next_of(events, "preview")
        assert shown["name"] == "李先生" and PHONE not in json.dumps(shown) and shown["phone"].endswith("0009")
        page = await client.get("/agent")
        assert 'id="preview-panel" hidden' not in page.text and "李先生" in page.text
        assert pbx.originated == 0  # nothing is dialled before the agent decides
        assert (await client.post("/api/desk/preview", json={"action": "dial"}, headers=h)).status_code == 200
        await drive(engine, pbx, stack.vclock, 30, until=lambda: any(c.connected for c in engine.calls.values()))
        assert pbx.originated == 1
        await next_of(events, "call")
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await client.aclose()


async def test_a_call_opened_with_no_browser_is_what_the_stream_says_first(stack: Stack) -> None:
    core, world = stack.core, stack.world
    ag1 = world.staff["ag1"]
    dialer.agent_login(core, ag1)
    dialer.agent_ready(core, ag1)
    facts = desk.ContactFacts(client_id=world.mine, attempt_id=world.attempt, lead_id=world.lead,
                              campaign_id=world.campaign, attempt_no=2)
    contact_id = run_in_transaction(core.sessions, lambda s: desk.open_contact(s, ag1, facts, core.clock()))
    client, h = await stack.login("ag1")
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(sse_events(client, events))
    try:
        await next_of(events, "hello")
        first = await asyncio.wait_for(events.get(), WAIT)
        assert first["type"] == "status" and first["state"] == "talking"
        assert first["contact"]["id"] == contact_id and first["contact"]["client_id"] == world.mine
        r = await client.post(f"/api/desk/contacts/{contact_id}/hangup", headers=h)
        assert r.status_code == 200
        state = await next_of(events, "state")  # one event per change, in the screen's shape
        assert state["state"] == "wrap_up" and state["since"] is not None
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await client.aclose()


async def test_with_no_browser_open_the_dialler_opens_the_contact_and_the_status_api_shows_it(stack: Stack) -> None:
    """Issue 10: the agent logs in and goes ready through the API and closes every tab; the call connects; the
    contact, the agent's talking state and the client's access exist anyway, and a screen that opens later
    (``GET /api/desk/status``) sees them."""
    core, world = stack.core, stack.world
    cid = dialer.create_campaign(core, name="无浏览器", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59), days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.mine)])
    dialer.start_campaign(core, cid)
    pbx = SimulatedPbx(CustomerModel(talk_mean_s=60.0, talk_sd_s=5.0), clock=stack.vclock, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="it", clock=stack.vclock, campaign_ids={cid})
    await pbx.start()
    api = httpx.AsyncClient(base_url=stack.base, timeout=WAIT)
    try:
        r = await api.post("/api/login", json={"username": "ag1", "password": PASSWORDS["ag1"]})
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        assert (await api.post("/api/desk/state", json={"state": "ready"}, headers=h)).json()["state"] == "ready"
        assert core.bus.subscriber_count(f"agent:{world.staff['ag1']}") == 0  # no screen is listening
        await drive(engine, pbx, stack.vclock, 30, until=lambda: any(c.connected for c in engine.calls.values()))
        status = (await api.get("/api/desk/status", headers=h)).json()
        assert status["state"] == "talking"
        contact = status["contact"]
        assert contact is not None and contact["client_id"] == world.mine and contact["campaign_id"] == cid
        assert contact["direction"] == "outbound" and not contact["hung_up"]
        card = await api.get(f"/agent/contacts/{contact['id']}/card", headers=h)  # the client is theirs to see
        assert card.status_code == 200
    finally:
        await api.aclose()
        await engine.shutdown()
        await pbx.aclose()
