"""The simulated PBX on a virtual clock: outcomes, timings, connect/talk, and the port checks."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from callcenter.domain.shift_simulation import CustomerModel
from callcenter.ports.telephony import (
    AgentJoined,
    Answered,
    Connected,
    Ended,
    Failed,
    Ringing,
    ServerUp,
    Telephony,
    TelephonyError,
)
from callcenter.adapters.telephony.simulated import LoopClock, SimulatedPbx, VirtualClock

FORCED = {"13800000001": "human", "13800000002": "busy", "13800000003": "no_answer",
          "13800000004": "machine", "13800000005": "failed"}


async def started(**kw):
    clock = VirtualClock()
    pbx = SimulatedPbx(CustomerModel(), clock, outcomes=FORCED, **kw)
    await pbx.start()
    return pbx, clock


async def test_is_a_telephony_port():
    assert isinstance(SimulatedPbx(), Telephony)


async def test_each_outcome_at_its_model_time():
    pbx, clock = await started()
    for n in range(1, 6):
        await pbx.originate(f"c{n}", f"1380000000{n}", "95555", {"CC_CLIENT_ID": "7"}, 30)
    clock.advance(60)
    events = pbx.stream.pending()
    assert isinstance(events[0], ServerUp)
    by = {e.call_id: e for e in events if isinstance(e, (Failed, Answered))}
    assert by["c2"] == Failed("c2", 3.0, "busy", 17)
    assert by["c3"] == Failed("c3", 25.0, "no_answer", 19)
    assert by["c5"] == Failed("c5", 1.0, "congestion", 34)
    assert by["c4"].amd == "machine" and by["c4"].at == 3.5
    assert by["c1"].amd == "human" and by["c1"].at == 12.0
    assert any(isinstance(e, Ringing) and e.call_id == "c1" for e in events)


async def test_connected_human_talks_then_hangs_up():
    pbx, clock = await started()
    await pbx.agent_login("7", "PJSIP/7")
    await pbx.originate("c1", "13800000001", "95555", {}, 30)
    clock.advance(12)
    await pbx.connect("c1", "7")
    clock.advance(3600)
    events = [e for e in pbx.stream.pending() if getattr(e, "call_id", None) == "c1"]
    assert [type(e) for e in events] == [Ringing, Answered, Connected, Ended]
    ended = events[-1]
    assert ended.talk_s == pytest.approx(ended.at - events[2].at) and ended.talk_s > 0
    assert pbx.in_flight() == 0


async def test_unconnected_answer_and_safe_harbour_play():
    pbx, clock = await started(human_patience_s=8)
    await pbx.originate("c1", "13800000001", "95555", {}, 30)
    await pbx.originate("c2", "+8613800000001", "95555", {}, 30)  # random outcome
    clock.advance(12)
    await pbx.play("c1", "cc/safe-harbour")
    clock.advance(6)
    ended = [e for e in pbx.stream.pending() if isinstance(e, Ended) and e.call_id == "c1"]
    assert ended == [Ended("c1", 18.0, 16, "Normal Clearing", None)]


async def test_timeout_shorter_than_ring_is_no_answer():
    pbx, clock = await started()
    await pbx.originate("c1", "13800000001", "95555", {}, 5)
    clock.advance(10)
    assert [e for e in pbx.stream.pending() if isinstance(e, Failed)] == [Failed("c1", 5.0, "no_answer", 19)]


async def test_outcome_mix_follows_the_model():
    clock = VirtualClock()
    pbx = SimulatedPbx(CustomerModel(), clock, seed=42)
    await pbx.start()
    for i in range(2000):
        await pbx.originate(f"c{i}", "13800000000", "95555", {}, 30)
    clock.advance(100)
    kinds = Counter()
    for e in pbx.stream.pending():
        if isinstance(e, Answered):
            kinds[e.amd] += 1
        elif isinstance(e, Failed):
            kinds[e.reason] += 1
    assert 0.26 < kinds["human"] / 2000 < 0.34
    assert 0.41 < kinds["no_answer"] / 2000 < 0.49
    assert 0.07 < kinds["busy"] / 2000 < 0.13


async def test_refusals():
    pbx, clock = await started()
    with pytest.raises(ValueError):
        await pbx.originate("c1", "1380000\r\n0001", "95555", {}, 30)
    await pbx.originate("c1", "13800000001", "95555", {}, 30)
    with pytest.raises(ValueError):
        await pbx.originate("c1", "13800000001", "95555", {}, 30)
    with pytest.raises(TelephonyError):
        await pbx.connect("c1", "7")  # not answered yet
    clock.advance(12)
    with pytest.raises(TelephonyError):
        await pbx.connect("c1", "7")  # agent not logged in
    await pbx.hangup("c1")
    await pbx.hangup("c1")  # already over: no-op
    assert [type(e) for e in pbx.stream.pending()][-1] is Ended


async def test_real_loop_clock_events_iterator():
    pbx = SimulatedPbx(CustomerModel(busy_s=0.0), LoopClock(), outcomes={"13800000002": "busy"})
    await pbx.start()
    await pbx.agent_login("1", "PJSIP/1")
    await pbx.originate("c1", "13800000002", "95555", {}, 30)
    seen = []

    async def read():
        async for event in pbx.events():
            seen.append(event)
            if isinstance(event, Failed):
                return

    await asyncio.wait_for(read(), 5)
    await pbx.aclose()
    assert [type(e) for e in seen] == [ServerUp, AgentJoined, Failed]
