"""IVR hand-offs are inbound calls of the dialler engine's call core, on the simulated PBX at virtual time: one
recorded while no engine runs is loaded (from the database) and routed when one starts, oldest first, to the
longest-idle ready agent (an agent talking is not available), with the desk contact opened in the transaction
that moves the agent to talking; the caller hanging up moves the agent to wrap-up and ends the IVR session (as an
outbound call); two engines load each hand-off once; a caller who hung up is not loaded; one nobody takes within
``handoff_wait_s`` hears the sorry prompt and gets a call back booked."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.parts.dialer import dialer_deps
from callcenter.services.handoff import load_waiting, waiting_handoffs
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession, Callback
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.ports import channel_variables as V
from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock
from tests.e2e.desk_world import World, build
from tests.services.test_integration_desk_dialer import drive

pytestmark = pytest.mark.db
BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


class Time:
    def __init__(self, core: App) -> None:
        self.vclock = VirtualClock()
        core.clock = self.wall

    def wall(self) -> datetime:
        return BASE + timedelta(seconds=self.vclock.time())


@pytest.fixture
def time_(core: App) -> Time:
    return Time(core)


@pytest.fixture
def world(core: App, time_: Time) -> World:
    return build(core)


def hand_off(core: App, call_id: str, client_id: int | None = None) -> int:
    core.ivr.record_event(call_id, "start", {"lang": "zh-CN", "caller": "+8613900000077"})
    if client_id is not None:
        run_in_transaction(core.sessions, lambda s: setattr(
            s.scalars(select(IvrSession).where(IvrSession.call_id == call_id)).one(), "client_id", client_id))
    return core.ivr.record_event(call_id, "handoff", {"summary": f"{call_id} 转人工"})


def ready(core: App, staff_id: int) -> None:
    dialer.agent_login(core, staff_id)
    dialer.agent_ready(core, staff_id)


def state_of(core: App, staff_id: int) -> str:
    with transaction(core.sessions) as s:
        return s.scalars(select(AgentSession.state).where(AgentSession.staff_id == staff_id,
                                                          AgentSession.ended_at.is_(None))).one()


def contacts(core: App) -> list[tuple[int, int | None, int | None]]:
    with transaction(core.sessions) as s:
        return [(c.agent_id, c.ivr_session_id, c.client_id)
                for c in s.scalars(select(DeskContact).order_by(DeskContact.id))]


def steps(core: App, ivr_id: int) -> list[str]:
    with transaction(core.sessions) as s:
        return list(s.scalars(select(IvrStep.step).where(IvrStep.session_id == ivr_id).order_by(IvrStep.id)))


def engine_on(core: App, vclock: VirtualClock, name: str, **kw: Any) -> tuple[DialerEngine, SimulatedPbx]:
    pbx = SimulatedPbx(CustomerModel(talk_mean_s=60.0, talk_sd_s=1.0), clock=vclock)
    return DialerEngine(dialer_deps(core), pbx, dialer_id=name, clock=vclock, **kw), pbx


async def test_a_hand_off_recorded_with_no_engine_is_routed_by_a_new_one_and_ends_like_an_outbound_call(
        core: App, world: World, time_: Time) -> None:
    core.bus.bind_loop(asyncio.get_running_loop())
    ag1, bo1 = world.staff["ag1"], world.staff["bo1"]
    older = hand_off(core, "agi-older", world.mine)  # nobody routes: it just waits, in the database
    time_.vclock.advance(1)
    newer = hand_off(core, "agi-newer")
    assert run_in_transaction(core.sessions, waiting_handoffs) == [older, newer]
    ready(core, bo1)  # the longest idle, but talking (an outbound call reached them on the desk): not available
    with transaction(core.sessions) as s:
        row = s.scalars(select(AgentSession).where(AgentSession.staff_id == bo1)).one()
        dialer.change_agent_state(s, row, "reserve", core.clock())
        dialer.change_agent_state(s, row, "connect", core.clock())
    time_.vclock.advance(1)
    ready(core, ag1)
    engine, pbx = engine_on(core, time_.vclock, "e1", auto_wrap_up_s=None)
    await pbx.start()
    async with core.bus.subscribe(f"agent:{ag1}") as sub:
        await drive(engine, pbx, time_.vclock, 5, until=lambda: bool(contacts(core)))
        opened: dict[str, Any] = {}
        while opened.get("type") != "contact_opened":
            _topic, opened = await asyncio.wait_for(sub.__anext__(), 10)
    assert (opened["staff_id"], opened["ivr_session_id"], opened["client_id"]) == (ag1, older, world.mine)
    assert contacts(core) == [(ag1, older, world.mine)]
    assert state_of(core, ag1) == "talking" and state_of(core, bo1) == "talking"
    assert "agent_connected" in steps(core, older)
    assert run_in_transaction(core.sessions, waiting_handoffs) == [newer]  # waits: nobody else is ready
    call_id = V.handoff_call_id(older)
    assert engine.core.inbound[call_id].state == "connected"
    time_.vclock.advance(20)
    pbx.caller_hangs_up(call_id)  # the caller hangs up: the agent goes to wrap-up (issue 12 item 13)
    await drive(engine, pbx, time_.vclock, 1)
    assert state_of(core, ag1) == "wrap_up"
    with transaction(core.sessions) as s:
        ivr = s.get(IvrSession, older)
        assert ivr is not None and ivr.ended_at is not None and ivr.end_reason == "completed"
        contact = s.scalars(select(DeskContact).where(DeskContact.ivr_session_id == older)).one()
        assert contact.direction == "inbound"
    # the engine restarts (a new one, once the first's process lease ran out; within the hand-off's wait
    # limit); ag1 is ready again: the newer one is routed
    dialer.agent_ready(core, ag1)
    time_.vclock.advance(31)
    engine2, pbx2 = engine_on(core, time_.vclock, "e2")
    await pbx2.start()
    await drive(engine2, pbx2, time_.vclock, 5, until=lambda: len(contacts(core)) == 2)
    assert contacts(core) == [(ag1, older, world.mine), (ag1, newer, None)]
    assert run_in_transaction(core.sessions, waiting_handoffs) == []


async def test_a_caller_who_hung_up_is_not_loaded_and_old_hand_offs_are_not_loaded(core: App, world: World,
                                                                                   time_: Time) -> None:
    gone = hand_off(core, "agi-gone")
    core.ivr.record_event("agi-gone", "end", {"reason": "caller_hangup"})
    waiting = hand_off(core, "agi-wait")
    now = time_.wall()
    facts = run_in_transaction(core.sessions, lambda s: load_waiting(s, "e1", now))
    assert [f.ivr_session_id for f in facts] == [waiting] and gone != waiting
    assert facts[0].call_id == V.handoff_call_id(waiting) and facts[0].caller == "+8613900000077"
    later = now + timedelta(minutes=31)  # an IVR session whose end was never recorded
    assert run_in_transaction(core.sessions, lambda s: load_waiting(s, "e1", later)) == ()


async def test_two_engines_load_each_hand_off_once_and_a_dead_engines_hand_offs_go_to_the_next(
        core: App, world: World, time_: Time) -> None:
    ids = [hand_off(core, f"agi-{i}") for i in range(2)]
    now = time_.wall()
    a, b = DialerEngine(dialer_deps(core), SimulatedPbx(), dialer_id="a"), DialerEngine(
        dialer_deps(core), SimulatedPbx(), dialer_id="b")
    run_in_transaction(core.sessions, lambda s: a._sync_tx(s, now, (), False))  # both heartbeat: both alive
    run_in_transaction(core.sessions, lambda s: b._sync_tx(s, now, (), False))
    first = run_in_transaction(core.sessions, lambda s: a._handoffs_tx(s, now))
    second = run_in_transaction(core.sessions, lambda s: b._handoffs_tx(s, now))
    assert [f.ivr_session_id for f in first] == ids and second == ()
    again = run_in_transaction(core.sessions, lambda s: a._handoffs_tx(s, now))  # its own, still
    assert [f.ivr_session_id for f in again] == ids
    later = now + timedelta(minutes=2)  # a stopped heartbeating (its process lease ran out); b goes on
    run_in_transaction(core.sessions, lambda s: b._sync_tx(s, later, (), False))
    taken = run_in_transaction(core.sessions, lambda s: b._handoffs_tx(s, later))
    assert [f.ivr_session_id for f in taken] == ids


async def test_a_hand_off_nobody_takes_hears_the_sorry_prompt_and_gets_a_call_back(core: App, world: World,
                                                                                   time_: Time) -> None:
    core.bus.bind_loop(asyncio.get_running_loop())
    ivr_id = hand_off(core, "agi-late", world.mine)
    engine, pbx = engine_on(core, time_.vclock, "e1", handoff_wait_s=30.0)
    await pbx.start()
    call_id = V.handoff_call_id(ivr_id)
    await drive(engine, pbx, time_.vclock, 2)
    assert call_id in pbx.calls and engine.core.inbound[call_id].parked  # held by the PBX, waiting
    await drive(engine, pbx, time_.vclock, 60, until=lambda: call_id not in pbx.calls)
    assert call_id not in pbx.calls and call_id not in engine.core.inbound  # the prompt played, then hung up
    with transaction(core.sessions) as s:
        [cb] = s.scalars(select(Callback)).all()
        assert (cb.client_id, cb.phone, cb.status, cb.campaign_id) == (world.mine, "+8613900000077", "pending", None)
        ivr = s.get(IvrSession, ivr_id)
        assert ivr is not None and ivr.end_reason == "handoff_timeout"
    assert steps(core, ivr_id)[-2:] == ["handoff_timeout", "end"]
    assert contacts(core) == []


async def test_the_agents_hang_up_button_ends_a_hand_off_like_an_outbound_call(core: App, world: World,
                                                                             time_: Time) -> None:
    core.bus.bind_loop(asyncio.get_running_loop())
    ag1, ag2 = world.staff["ag1"], world.staff["ag2"]
    ivr_id = hand_off(core, "agi-button", world.mine)
    ready(core, ag1)
    engine, pbx = engine_on(core, time_.vclock, "e1", auto_wrap_up_s=None)
    await pbx.start()
    await drive(engine, pbx, time_.vclock, 5, until=lambda: bool(contacts(core)))
    with transaction(core.sessions) as s:
        contact_id = s.scalars(select(DeskContact.id)).one()
    assert not await engine.hangup_requested(contact_id, ag2)  # not their call
    assert await engine.hangup_requested(contact_id, ag1)
    await drive(engine, pbx, time_.vclock, 1)
    assert V.handoff_call_id(ivr_id) not in pbx.calls and state_of(core, ag1) == "wrap_up"
    with transaction(core.sessions) as s:
        ivr = s.get(IvrSession, ivr_id)
        assert ivr is not None and ivr.end_reason == "completed"
