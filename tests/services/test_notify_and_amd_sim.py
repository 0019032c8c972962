"""On the simulated PBX at virtual time, with the dialler engine: the reminder call of the Twilio end-to-end test
(the message rendered before the call, played in a menu; the client presses 1 -- it plays again -- then 0 -- the
call becomes a hand-off of the call core and reaches the ready agent, and ends like one); and two campaigns
running at once on one engine, one with AMD off (a machine is taken for a person and reaches an agent) and one
with AMD on (the machine is recognised and hung up on)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock
from callcenter.bootstrap import App, prompt_files
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.parts.dialer import dialer_deps
from callcenter.ports import channel_variables as V
from callcenter.services.care.notify_calls import NotificationCaller
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareDelivery
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession, Attempt
from callcenter.store.models.ivr import IvrSession
from tests.e2e.desk_world import World, build

pytestmark = pytest.mark.db
BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


class Rig:
    def __init__(self, core: App, **engine: Any) -> None:
        self.core = core
        self.vclock = VirtualClock()
        core.clock = lambda: BASE + timedelta(seconds=self.vclock.time())
        self.world: World = build(core)
        self.pbx = SimulatedPbx(CustomerModel(talk_mean_s=60.0, talk_sd_s=1.0), clock=self.vclock, outcomes={})
        self.notify = NotificationCaller(core, self.pbx, renderer=prompt_files(core.settings))
        self.engine = DialerEngine(dialer_deps(core, notify=self.notify), self.pbx, dialer_id="sim", clock=self.vclock,
                                   **engine)

    async def drive(self, seconds: float, until: Any = None) -> None:
        end = self.vclock.time() + seconds
        while self.vclock.time() < end and not (until and until()):
            targets = [self.engine.next_deadline(), end]
            nxt = self.vclock.next_time()
            if nxt is not None:
                targets.append(nxt)
            self.vclock.run_until(max(min(targets), self.vclock.time()))
            for event in self.pbx.stream.pending():
                if str(getattr(event, "call_id", "")).startswith("care-"):
                    await self.notify.handle(event)  # what DialerEngine.run does with a notification call's events
                else:
                    await self.engine.handle(event)
            await self.engine.tick()
            await asyncio.sleep(0)


def state_of(core: App, staff_id: int) -> str:
    with transaction(core.sessions) as s:
        return s.scalars(select(AgentSession.state).where(AgentSession.staff_id == staff_id,
                                                          AgentSession.ended_at.is_(None))).one()


async def test_a_reminder_call_on_the_simulated_pbx_1_then_0_reaches_an_agent(core: App, tmp_path: Path) -> None:
    core.settings.prompts_dir = tmp_path / "prompts"
    rig = Rig(core)
    ag1, client_id = rig.world.staff["ag1"], rig.world.mine
    with transaction(core.sessions) as s:
        mobile = s.get_one(Client, client_id).mobile
    rig.pbx.outcomes[mobile] = "human"
    now = core.clock()

    def add(s: Any) -> int:
        d = CareDelivery(client_id=client_id, subject="event:1", channel="notify_call", planned_for=date(2026, 11, 25),
                         language="zh-CN", message="您持有的权证明天是最后行权日。", status="pending", attempts=0,
                         claimed_at=now, updated_at=now)
        s.add(d)
        s.flush()
        return d.id

    delivery = run_in_transaction(core.sessions, add)
    dialer.agent_login(core, ag1)
    dialer.agent_ready(core, ag1)
    await rig.pbx.start()
    await rig.drive(2)
    assert await rig.notify.place_due() == 1
    assert (core.settings.prompts_path / "care" / f"notify-{delivery}.wav").read_bytes()[:4] == b"RIFF"
    call_id = f"care-{delivery}-1"
    await rig.drive(30, until=lambda: rig.pbx.calls.get(call_id) is not None
                    and rig.pbx.calls[call_id].state == "answered")
    await rig.drive(1)
    flow = rig.notify.flows[call_id][1]
    assert (flow.state, flow.plays) == ("playing", 1)
    rig.pbx.press(call_id, "1")
    await rig.drive(1)
    assert flow.plays == 2  # heard again
    rig.pbx.press(call_id, "0")
    await rig.drive(5, until=lambda: state_of(core, ag1) == "talking")
    assert state_of(core, ag1) == "talking"
    with transaction(core.sessions) as s:
        d = s.get_one(CareDelivery, delivery)
        assert d.status == "to_agent"
        ivr = s.scalars(select(IvrSession).where(IvrSession.call_id == call_id)).one()
        contact = s.scalars(select(DeskContact).where(DeskContact.ivr_session_id == ivr.id)).one()
        assert (contact.agent_id, contact.client_id) == (ag1, client_id)
    handoff = V.handoff_call_id(ivr.id)
    assert rig.engine.core.inbound[handoff].state == "connected"
    rig.vclock.advance(20)
    rig.pbx.caller_hangs_up(handoff)
    await rig.drive(1)
    assert state_of(core, ag1) == "wrap_up"


async def test_a_campaign_with_amd_off_and_one_with_amd_on_run_at_once(core: App) -> None:
    rig = Rig(core)
    w = rig.world
    machines = {"off": "+8613900000031", "on": "+8613900000032"}
    cids: dict[str, int] = {}
    for (key, policy), group, staff in ((("off", "off"), w.g1, "ag1"), (("on", "human"), w.g2, "ag2")):
        cid = dialer.create_campaign(core, name=f"AMD {key}", kind="former_clients", script_id="win_back",
                                     dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                     days="every", amd_policy=policy)
        dialer.assign_campaign(core, cid, group_ids=[group])
        add_leads(core, cid, [LeadRow(0, machines[key], "", 0, None, None)])
        dialer.start_campaign(core, cid)
        dialer.agent_login(core, w.staff[staff], campaign_id=cid)
        dialer.agent_ready(core, w.staff[staff])
        rig.pbx.outcomes[machines[key]] = "machine"
        cids[key] = cid
    rig.engine.only_campaigns = set(cids.values())
    await rig.pbx.start()
    await rig.drive(40, until=lambda: state_of(core, w.staff["ag1"]) == "talking"
                    and all(a.outcome for a in attempts(core, cids["on"])))
    # AMD off: nobody listened for a machine, so the answering machine reached the agent as a person would
    [off] = attempts(core, cids["off"])
    assert off.amd is None and state_of(core, w.staff["ag1"]) == "talking"
    # AMD on: the machine is recognised and hung up on (this campaign leaves no message); its agent stays free
    [on] = attempts(core, cids["on"])
    assert (on.amd, on.outcome) == ("machine", "machine")
    assert state_of(core, w.staff["ag2"]) == "ready"


def attempts(core: App, campaign_id: int) -> list[Attempt]:
    with transaction(core.sessions) as s:
        return list(s.scalars(select(Attempt).where(Attempt.campaign_id == campaign_id)))


def test_amd_policy_is_checked(core: App) -> None:
    from callcenter.services.dialer.campaigns import DialerError

    with pytest.raises(DialerError) as refused:
        dialer.create_campaign(core, name="x", kind="former_clients", script_id="win_back", amd_policy="maybe")
    assert refused.value.code == "bad_amd_policy"
    assert "off, human, machine" in refused.value.sentence("en")
