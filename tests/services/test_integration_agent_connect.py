"""On Asterisk an IVR hand-off reaches an agent the way an answered outbound call does (one routing model): the
shipped ``[cc-handoff-wait]`` raises ``UserEvent: HandoffWaiting`` (CallID ``cc-h…``) for the parked caller; the
AMI adapter tracks that channel under the hand-off's call id and reports it ``Answered`` (parked), ``connect``
Redirects it into the agent's room, its ``ConfbridgeJoin`` is ``Connected`` and its ``Hangup`` is ``Ended``.
Driven by the dialler engine's call core against a scripted AMI, the desk contact opens with the agent's move to
talking and the caller's hang-up leaves the agent in wrap-up. (The queue's AgentConnect path is gone: no
``Queue()``, no ``queues.conf``.)"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.parts.dialer import dialer_deps
from callcenter.ports.telephony import Answered, Connected, Ended, TelephonyError
from callcenter.store.db import transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.ports import channel_variables as V
from callcenter.adapters.telephony.ami import AmiClient, AmiPool, AmiServer
from callcenter.adapters.telephony.ami_events import CallTracker
from tests.factories import make_client, make_group, make_staff

CHANNEL = "Local/s@sim-caller-00000001;1"
UID = "1764640000.21"


def waiting(call_id: str, uid: str = UID, channel: str = CHANNEL) -> dict[str, Any]:
    return {"Event": "UserEvent", "UserEvent": "HandoffWaiting", "Channel": channel, "Uniqueid": uid,
            "CallID": call_id, "Context": "cc-handoff-wait"}


def join(agent: str, uid: str = UID) -> dict[str, Any]:
    return {"Event": "ConfbridgeJoin", "Conference": f"agent-{agent}", "BridgeUniqueid": "b-1", "Uniqueid": uid,
            "Channel": CHANNEL}


def hangup(uid: str = UID) -> dict[str, Any]:
    return {"Event": "Hangup", "Uniqueid": uid, "Channel": CHANNEL, "Cause": "16", "Cause-txt": "Normal Clearing"}


async def test_ami_observers_see_every_message_and_a_failing_one_is_skipped() -> None:
    client = AmiClient(AmiServer("127.0.0.1", 5038, "callcenter", "x"))
    seen: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    client.observers += [broken, seen.append]
    client._feed({"Event": "FullyBooted", "Status": "Fully Booted"})
    client._feed(waiting(V.handoff_call_id(7)))
    assert [m["Event"] for m in seen] == ["FullyBooted", "UserEvent"]


def test_the_tracker_follows_a_parked_hand_off_like_an_answered_call() -> None:
    t = CallTracker("pbx1")
    call_id = V.handoff_call_id(7)
    assert t.feed(waiting("agi-not-ours"), 1.0) == [] and t.feed(waiting("cc-000000000007"), 1.0) == []
    assert t.feed(waiting(call_id), 1.0) == [Answered(call_id, 1.0, server="pbx1")]
    assert t.feed(waiting(call_id), 6.0) == []  # the dialplan's repeat: reported once
    assert t.channel_of(call_id) == CHANNEL and t.is_live(call_id)
    assert t.feed(join("4"), 8.0) == [Connected(call_id, 8.0, "4", server="pbx1")]
    assert t.feed(join("4"), 8.5) == []
    assert t.feed(hangup(), 38.0) == [Ended(call_id, 38.0, 16, "Normal Clearing", 30.0)]
    assert not t.is_live(call_id) and t.feed(hangup(), 39.0) == []


def test_a_parked_caller_who_hangs_up_ends_and_a_reconnect_settles_one_that_is_gone() -> None:
    t = CallTracker("pbx1")
    a, b = V.handoff_call_id(1), V.handoff_call_id(2)
    t.feed(waiting(a, "u-a"), 1.0)
    t.feed(waiting(b, "u-b"), 1.0)
    assert t.feed(hangup("u-a"), 2.0) == [Ended(a, 2.0, 16, "Normal Clearing", None)]
    t.connection_lost(3.0)
    assert t.reconcile([{"Event": "CoreShowChannel", "Uniqueid": "u-b", "Channel": CHANNEL}], 4.0) == []
    t.connection_lost(5.0)
    assert t.reconcile([], 6.0) == [Ended(b, 6.0, None, "gone after reconnect", None)]


async def test_the_pool_redirects_a_parked_hand_off_on_the_server_that_reported_it() -> None:
    pool = AmiPool([AmiServer("127.0.0.1", 5038, "callcenter", "x"), AmiServer("127.0.0.2", 5038, "callcenter", "x")])
    sent: list[tuple[str, dict[str, Any]]] = []
    for client in pool.clients:
        async def send(fields: Any, *, as_list: Any = None, timeout: Any = None, ready: bool = True,
                       name: str = client.name) -> dict[str, str]:
            sent.append((name, dict(fields)))
            return {"Response": "Success"}

        client._send = send  # type: ignore[method-assign]  # a scripted AMI: the action is what is checked
    call_id = V.handoff_call_id(9)
    with pytest.raises(TelephonyError):
        await pool.connect(call_id, "4")  # not reported by any server yet
    pool.clients[1].tracker.feed(waiting(call_id), 1.0)
    await pool.connect(call_id, "4")
    assert sent == [("127.0.0.2:5038", {"Action": "Redirect", "Channel": CHANNEL, "Context": "cc-agent-join",
                                        "Exten": "4", "Priority": "1"})]


class ScriptedAmi:
    """The telephony port as the engine sees the AMI adapter, with the tracker fed scripted messages."""

    def __init__(self) -> None:
        self.tracker = CallTracker("pbx1")
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.redirects: list[tuple[str, str]] = []
        self.logged_in: list[str] = []

    def feed(self, message: dict[str, Any], now: float) -> list[Any]:
        return self.tracker.feed(message, now)

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def originate(self, *a: Any) -> None:
        raise AssertionError("no outbound call in this test")

    async def connect(self, call_id: str, agent_id: str) -> None:
        channel = self.tracker.channel_of(call_id)
        if channel is None:
            raise TelephonyError(f"call {call_id} has no live channel")
        self.redirects.append((channel, agent_id))

    async def hangup(self, call_id: str) -> None: ...

    async def play(self, call_id: str, prompt: str) -> None: ...

    async def agent_login(self, agent_id: str, phone: str) -> None:
        self.logged_in.append(agent_id)
        self.tracker.track_agent(agent_id)  # as AmiClient.agent_login: its leg's ConfbridgeJoin is the phone up

    async def agent_logout(self, agent_id: str) -> None: ...

    def events(self) -> Any:
        raise AssertionError("driven by hand")


BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


@pytest.mark.db
async def test_the_engine_connects_a_parked_hand_off_pops_the_client_and_frees_the_agent_at_the_end(
        core: App) -> None:
    now = [0.0]

    class Clock:
        def time(self) -> float:
            return now[0]

    core.clock = lambda: BASE + timedelta(seconds=now[0])
    core.bus.bind_loop(asyncio.get_running_loop())
    group = make_group(core, "热线组")
    staff_id = make_staff(core, "hot1", "pw-hot-1", "agent", group_id=group)
    client_id, _ = make_client(core, accounts=[(100_00, 0)], group_id=group)
    core.ivr.record_event("agi-77", "start", {"lang": "zh-CN", "caller": "+8613900000077"})
    with transaction(core.sessions) as s:
        s.scalars(select(IvrSession).where(IvrSession.call_id == "agi-77")).one().client_id = client_id
    ivr_id = core.ivr.record_event("agi-77", "handoff", {"summary": "查询余额后转人工"})
    call_id = V.handoff_call_id(ivr_id)
    dialer.agent_login(core, staff_id, phone="PJSIP/1001")
    dialer.agent_ready(core, staff_id)
    ami = ScriptedAmi()
    engine = DialerEngine(dialer_deps(core), ami, dialer_id="ami", clock=Clock())  # type: ignore[arg-type]

    async def pbx(message: dict[str, Any]) -> None:
        for event in ami.feed(message, now[0]):
            await engine.handle(event)

    async def ticks(n: int) -> None:
        for _ in range(n):
            now[0] += 1.0
            await engine.tick()

    await ticks(3)  # the engine loads the hand-off and leases the campaign-less agent; the phone is logged in
    assert ami.logged_in == [str(staff_id)] and ami.redirects == []  # not parked yet: nothing to move
    await pbx(join(str(staff_id), uid=V.agent_leg_id(str(staff_id))))  # the agent's phone joins its room
    await ticks(1)
    async with core.bus.subscribe(f"agent:{staff_id}") as sub:
        await pbx(waiting(call_id))
        assert ami.redirects == [(CHANNEL, str(staff_id))]
        await pbx(join(str(staff_id)))
        event: dict[str, Any] = {}
        while event.get("type") != "contact_opened":
            _topic, event = await asyncio.wait_for(sub.__anext__(), 10)
    assert (event["client_id"], event["ivr_session_id"]) == (client_id, ivr_id)
    assert dialer.agent_state(core, staff_id)["state"] == "talking"
    now[0] += 40.0
    await pbx(hangup())
    assert dialer.agent_state(core, staff_id)["state"] == "wrap_up"
    with transaction(core.sessions) as s:
        [contact] = s.scalars(select(DeskContact).where(DeskContact.agent_id == staff_id)).all()
        assert (contact.id, contact.client_id, contact.ivr_session_id, contact.direction) == (
            event["contact_id"], client_id, ivr_id, "inbound")
        steps = s.scalars(select(IvrStep.step).where(IvrStep.session_id == ivr_id).order_by(IvrStep.id)).all()
        assert steps[-2:] == ["agent_connected", "end"] and "handoff_queued" in steps
        session = s.scalars(select(AgentSession).where(AgentSession.staff_id == staff_id)).one()
        assert session.dialer_id == "ami"
