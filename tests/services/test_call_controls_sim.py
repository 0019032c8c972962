"""Call controls end to end on the simulated PBX, which models who hears whom (``SimulatedPbx.hearing``): the
real web app (uvicorn, port 0), the dialler engine at virtual time with its ``command_loop``; agents press the
call-control buttons' JSON routes and a supervisor monitors from the wall board's; every press is a
``call_commands`` row the engine's call core decides on and carries out through the port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callcenter.adapters.telephony.simulated import SimulatedPbx
from callcenter.bootstrap import App
from callcenter.domain import hearing as H
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.parts.dialer import dialer_deps
from callcenter.services.call_commands import command_loop
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import transaction
from callcenter.store.models import CallCommand, Client
from callcenter.store.models.core import AuditLog
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession
from tests.services.test_integration_desk_dialer import Stack, drive, next_of, sse_events

pytestmark = pytest.mark.db
PHONE = "+8613900000009"


@pytest.fixture
async def stack(core: App) -> AsyncIterator[Stack]:
    st = Stack(core)
    async with st:
        yield st


class Desk:
    def __init__(self, stack: Stack, engine: DialerEngine, pbx: SimulatedPbx) -> None:
        self.stack, self.engine, self.pbx = stack, engine, pbx

    async def settle(self, client: httpx.AsyncClient, r: httpx.Response) -> dict[str, Any]:
        """The command's outcome, once the engine's command loop has carried it out (a bound, not a timing)."""
        assert r.status_code == 202, r.text
        cid = r.json()["command_id"]
        for _ in range(4000):
            await drive(self.engine, self.pbx, self.stack.vclock, 0.05)
            got = await client.get(f"/api/desk/commands/{cid}")
            assert got.status_code == 200, got.text
            out = got.json()
            if out["state"] not in ("pending", "claimed"):
                return dict(out)
            await asyncio.sleep(0.002)
        raise AssertionError(f"command {cid} never carried out")


def hears(pbx: SimulatedPbx, listener: str, speaker: str) -> bool:
    return pbx.hears(listener, speaker)


async def test_hold_mute_keys_monitoring_conference_and_transfer_between_two_agents(stack: Stack) -> None:
    core, world = stack.core, stack.world
    ag1, bo1, sup1 = world.staff["ag1"], world.staff["bo1"], world.staff["sup1"]
    cid = dialer.create_campaign(core, name="流失客户挽回", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                 days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.mine)])
    pbx = SimulatedPbx(CustomerModel(talk_mean_s=600.0, talk_sd_s=5.0), clock=stack.vclock, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="it", clock=stack.vclock, campaign_ids={cid})
    await pbx.start()
    a, ah = await stack.login("ag1")
    b, bh = await stack.login("bo1")
    s, sh = await stack.login("sup1")
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(sse_events(b, events))
    stop = asyncio.Event()
    loop = asyncio.create_task(command_loop(core.sessions, core.bus, engine.dialer_id, engine.command_requested,
                                            stop, poll_s=0.05, clock=stack.wall))
    desk = Desk(stack, engine, pbx)
    try:
        await next_of(events, "hello")
        assert (await a.post("/api/desk/state", json={"state": "ready"}, headers=ah)).status_code == 200
        r = await s.post(f"/supervisor/campaigns/{cid}/action", data={"action": "start", "csrf": sh["X-CSRF-Token"]})
        assert r.status_code == 303
        await drive(engine, pbx, stack.vclock, 30, until=lambda: any(c.connected for c in engine.calls.values()))
        [call] = engine.calls.values()
        assert call.agent_id == ag1
        customer, agent1, agent2, sup = H.customer(call.call_id), H.agent(ag1), H.agent(bo1), H.supervisor(sup1)
        with transaction(core.sessions) as db:
            contact = db.scalars(select(DeskContact).where(DeskContact.agent_id == ag1)).one().id
        assert hears(pbx, customer, agent1) and hears(pbx, agent1, customer)
        # no sign-out mid-call
        r = await a.post("/api/desk/state", json={"state": "logged_out"}, headers=ah)
        assert r.status_code == 409 and r.json()["error"]["code"] == "on_a_call"

        control = f"/api/desk/contacts/{contact}/control"
        assert (await desk.settle(a, await a.post(control, json={"kind": "hold"}, headers=ah)))["state"] == "done"
        assert pbx.hearing()[customer] == {H.MOH} and not hears(pbx, agent1, customer)
        await desk.settle(a, await a.post(control, json={"kind": "resume"}, headers=ah))
        assert hears(pbx, customer, agent1)
        await desk.settle(a, await a.post(control, json={"kind": "mute"}, headers=ah))
        assert not hears(pbx, customer, agent1) and hears(pbx, agent1, customer)
        await desk.settle(a, await a.post(control, json={"kind": "unmute"}, headers=ah))
        await desk.settle(a, await a.post(control, json={"kind": "dtmf", "digits": "12#"}, headers=ah))
        assert pbx.calls[call.call_id].dtmf == "12#"

        # the supervisor on the wall board: listen, whisper, barge, each audited
        live = (await s.get("/api/supervisor/live-calls")).json()
        assert [c["agent_id"] for c in live] == [ag1]
        monitor = "/api/supervisor/monitor"
        out = await desk.settle(s, await s.post(monitor, json={"agent_id": ag1, "mode": "listen",
                                                               "phone": "PJSIP/1900"}, headers=sh))
        assert out["state"] == "done"
        assert hears(pbx, sup, customer) and hears(pbx, sup, agent1)
        assert not hears(pbx, customer, sup) and not hears(pbx, agent1, sup)
        await desk.settle(s, await s.post(monitor, json={"agent_id": ag1, "mode": "whisper", "phone": "PJSIP/1900"},
                                          headers=sh))
        assert hears(pbx, agent1, sup) and not hears(pbx, customer, sup) and hears(pbx, sup, customer)
        await desk.settle(s, await s.post(monitor, json={"agent_id": ag1, "mode": "barge", "phone": "PJSIP/1900"},
                                          headers=sh))
        assert hears(pbx, agent1, sup) and hears(pbx, customer, sup) and hears(pbx, sup, customer)
        await desk.settle(s, await s.post(monitor, json={"agent_id": ag1, "mode": "monitor_stop"}, headers=sh))
        assert not hears(pbx, agent1, sup) and sup not in pbx.hearing()
        r = await a.post(monitor, json={"agent_id": ag1, "mode": "listen", "phone": "PJSIP/1901"}, headers=ah)
        assert r.status_code == 403  # agents do not monitor

        # a second agent: a three-way conference, then the transfer
        assert (await b.post("/api/desk/state", json={"state": "ready"}, headers=bh)).status_code == 200
        await drive(engine, pbx, stack.vclock, 2)  # their phone joins their room
        targets = {t["staff_id"]: t["state"] for t in (await a.get("/api/desk/transfer-targets")).json()}
        assert targets[bo1] == "ready"
        out = await desk.settle(a, await a.post(control, json={"kind": "conference", "target": bo1}, headers=ah))
        assert out["state"] == "done", out
        assert hears(pbx, agent2, customer) and hears(pbx, customer, agent2) and hears(pbx, agent1, agent2)
        pop = await next_of(events, "call")  # the second agent's card for the same call
        bcontact = pop["contact_id"]
        await desk.settle(b, await b.post(f"/api/desk/contacts/{bcontact}/control", json={"kind": "conference_leave"},
                                          headers=bh))
        assert not hears(pbx, agent2, customer)
        r = await b.post(f"/api/desk/contacts/{bcontact}/dispose", headers=bh, json={"disposition": "completed"})
        assert r.status_code == 200, r.text
        assert (await b.post("/api/desk/state", json={"state": "ready"}, headers=bh)).status_code == 200
        # no sync between: the engine reads the partner's state when the control comes, so a colleague who has
        # just gone ready again is transferred to at once
        out = await desk.settle(a, await a.post(control, json={"kind": "transfer", "target": bo1}, headers=ah))
        assert out["state"] == "done", out
        await drive(engine, pbx, stack.vclock, 1)
        assert pbx.calls[call.call_id].room == str(bo1)
        assert hears(pbx, customer, agent2) and not hears(pbx, customer, agent1)
        r = await a.post(control, json={"kind": "hold"}, headers=ah)  # ag1's card shows the call over for them
        assert r.status_code == 409 and r.json()["error"]["message"] == "该通话已挂断"
    finally:
        stop.set()
        reader.cancel()
        await asyncio.gather(reader, loop, return_exceptions=True)
        for c in (a, b, s):
            await c.aclose()
    with transaction(core.sessions) as db:
        states = {r.staff_id: r.state for r in db.scalars(select(AgentSession).where(AgentSession.ended_at.is_(None)))}
        assert states[ag1] == "wrap_up" and states[bo1] == "talking"
        audit = [(r.action, json.loads(r.detail)["agent_id"]) for r in db.scalars(
            select(AuditLog).where(AuditLog.action.like("call_%")).order_by(AuditLog.id))]
        assert audit == [("call_listen", ag1), ("call_whisper", ag1), ("call_barge", ag1), ("call_monitor_stop", ag1)]
        kinds = [(c.kind, c.state) for c in db.scalars(select(CallCommand).order_by(CallCommand.id))]
        assert ("transfer", "done") in kinds and ("conference", "done") in kinds


async def test_an_agent_escalates_the_call_to_a_supervisor_sitting_at_the_desk(stack: Stack) -> None:
    """Escalation (转主管): a supervisor who sits at the desk (ready, their phone in their room) is a transfer
    target like any agent; the customer ends up talking to the supervisor, whose desk shows the client's card
    (a client of another group: they read it because the call is theirs), and the agent's card ends."""
    core, world = stack.core, stack.world
    ag1, sup1 = world.staff["ag1"], world.staff["sup1"]
    cid = dialer.create_campaign(core, name="客户投诉升级", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                 days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.theirs)])  # a client of the other group
    pbx = SimulatedPbx(CustomerModel(talk_mean_s=600.0, talk_sd_s=5.0), clock=stack.vclock, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="it", clock=stack.vclock, campaign_ids={cid})
    await pbx.start()
    a, ah = await stack.login("ag1")
    s, sh = await stack.login("sup1")
    stop = asyncio.Event()
    loop = asyncio.create_task(command_loop(core.sessions, core.bus, engine.dialer_id, engine.command_requested,
                                            stop, poll_s=0.05, clock=stack.wall))
    desk = Desk(stack, engine, pbx)
    try:
        assert (await a.post("/api/desk/state", json={"state": "ready"}, headers=ah)).status_code == 200
        r = await s.post(f"/supervisor/campaigns/{cid}/action", data={"action": "start", "csrf": sh["X-CSRF-Token"]})
        assert r.status_code == 303
        await drive(engine, pbx, stack.vclock, 30, until=lambda: any(c.connected for c in engine.calls.values()))
        [call] = engine.calls.values()
        assert call.agent_id == ag1
        with transaction(core.sessions) as db:
            contact = db.scalars(select(DeskContact).where(DeskContact.agent_id == ag1)).one().id
        control = f"/api/desk/contacts/{contact}/control"
        assert (await s.get(f"/agent/contacts/{contact}/card")).status_code == 404  # not a client of their groups
        assert (await s.get(f"/api/clients/{world.theirs}")).status_code == 404
        # not at the desk yet: not offered, and a transfer to them is refused
        targets = {t["staff_id"]: t for t in (await a.get("/api/desk/transfer-targets")).json()}
        assert sup1 not in targets
        out = await desk.settle(a, await a.post(control, json={"kind": "transfer", "target": sup1}, headers=ah))
        assert out["state"] != "done"
        assert pbx.calls[call.call_id].room == str(ag1)
        # the supervisor sits down at the desk and goes ready
        assert (await s.post("/api/desk/state", json={"state": "ready"}, headers=sh)).status_code == 200
        await drive(engine, pbx, stack.vclock, 2)  # their phone joins their room
        targets = {t["staff_id"]: t for t in (await a.get("/api/desk/transfer-targets")).json()}
        assert targets[sup1]["role"] == "supervisor" and targets[sup1]["state"] == "ready"
        out = await desk.settle(a, await a.post(control, json={"kind": "transfer", "target": sup1}, headers=ah))
        assert out["state"] == "done", out
        await drive(engine, pbx, stack.vclock, 1)
        customer, agent1, supervisor = H.customer(call.call_id), H.agent(ag1), H.agent(sup1)
        assert pbx.calls[call.call_id].room == str(sup1)
        assert hears(pbx, customer, supervisor) and hears(pbx, supervisor, customer)
        assert not hears(pbx, customer, agent1)
        mine = (await s.get("/api/desk/status")).json()
        assert mine["state"] == "talking" and mine["contact"] is not None
        card = await s.get(f"/agent/contacts/{mine['contact']['id']}/card")
        with transaction(core.sessions) as db:
            name = db.get(Client, world.theirs).name
        assert card.status_code == 200 and name in card.text
        assert (await s.get(f"/api/clients/{world.theirs}")).status_code == 200  # the client of their own call
    finally:
        stop.set()
        await asyncio.gather(loop, return_exceptions=True)
        for c in (a, s):
            await c.aclose()
    with transaction(core.sessions) as db:
        states = {r.staff_id: r.state for r in db.scalars(select(AgentSession).where(AgentSession.ended_at.is_(None)))}
        assert states[ag1] == "wrap_up" and states[sup1] == "talking"
