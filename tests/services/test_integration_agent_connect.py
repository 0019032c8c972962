"""On Asterisk the hotline queue hands an IVR caller to an agent; its AgentConnect event (through the AMI adapter's
observer hook, from the AMI reader's thread or the loop) opens the agent's desk contact in the transaction that
moves the agent to talking, and the screen gets ``contact_opened``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from callcenter.bootstrap import App
from callcenter.dialer import service as dialer
from callcenter.services.handoff import watch_agent_connects
from callcenter.store.db import run_in_transaction, transaction
from sqlalchemy import select
from callcenter.store.models import Staff
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.telephony.ami import AmiClient, AmiServer
from tests.factories import make_client, make_group, make_staff


def agent_connect(interface: str, uniqueid: str, client_id: int | str, queue: str = "hotline-agents") -> dict[str, Any]:
    return {"Event": "AgentConnect", "Queue": queue, "Interface": interface, "MemberName": "坐席",
            "Uniqueid": uniqueid, "HoldTime": "3", "RingTime": "2", "ChanVariable": [f"CC_CLIENT_ID={client_id}"]}


async def test_ami_observers_see_every_message_and_a_failing_one_is_skipped() -> None:
    client = AmiClient(AmiServer("127.0.0.1", 5038, "callcenter", "x"))
    seen: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    client.observers += [broken, seen.append]
    client._feed({"Event": "FullyBooted", "Status": "Fully Booted"})
    client._feed(agent_connect("PJSIP/1001", "ivr-1", 7))
    assert [m["Event"] for m in seen] == ["FullyBooted", "AgentConnect"]


async def test_agent_connect_pops_the_client_and_the_agent_goes_talking(core: App) -> None:
    group = make_group(core, "热线组")
    staff_id = make_staff(core, "hot1", "pw-hot-1", "agent", group_id=group)
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Staff, staff_id), "extension", "1001"))
    client_id, _ = make_client(core, accounts=[(100_00, 0)], group_id=group)
    run_in_transaction(core.sessions, lambda s: s.add(IvrSession(
        call_id="ivr-77", channel="ivr-agi", caller="+8613900000077", client_id=client_id, started_at=core.clock(),
        handed_off=True, summary="查询余额后转人工")))
    dialer.agent_login(core, staff_id)
    dialer.agent_ready(core, staff_id)
    observers: list[Callable[[dict[str, Any]], None]] = []
    async with core.bus.subscribe(f"agent:{staff_id}") as sub:
        running = watch_agent_connects(core.sessions, core.bus, core.clock, observers.append)
        observers[0](agent_connect("PJSIP/1001", "ivr-77", client_id, queue="other-queue"))  # not the hotline
        observers[0]({"Event": "Hangup", "Uniqueid": "ivr-77"})
        assert not running
        # the AMI reader may call from its own thread: the work is handed to the loop, never done there
        await asyncio.to_thread(observers[0], agent_connect("PJSIP/1001", "ivr-77", client_id))
        for _ in range(1000):  # the loop picks the hand-over up (bounded: 10 s)
            if running:
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(*list(running))
        event: dict[str, Any] = {}
        while event.get("type") != "contact_opened":
            _topic, event = await asyncio.wait_for(sub.__anext__(), 10)
        observers[0](agent_connect("PJSIP/1001", "ivr-77", client_id))  # a repeat opens no second contact
        await asyncio.gather(*list(running))
    assert event["client_id"] == client_id
    assert event["ivr_session_id"] is not None
    assert dialer.agent_state(core, staff_id)["state"] == "talking"
    with transaction(core.sessions) as s:
        [contact] = s.scalars(select(DeskContact).where(DeskContact.agent_id == staff_id)).all()
        assert (contact.id, contact.client_id, contact.ivr_session_id, contact.direction) == (
            event["contact_id"], client_id, event["ivr_session_id"], "inbound")
        steps = s.scalars(select(IvrStep.step).where(IvrStep.session_id == contact.ivr_session_id)).all()
        assert "agent_connected" in steps
