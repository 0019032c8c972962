"""IVR hand-offs wait in the database: one recorded while no router runs is routed when a (new) router starts,
oldest first, each once (two routers at the same time), with the agent's desk contact opened in the routing
transaction; a caller who hung up meanwhile is not routed."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.dialer import service as dialer
from callcenter.services.handoff import Pop, handoff_runner, route_waiting, waiting_handoffs
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.ivr import IvrStep
from tests.e2e.desk_world import World, build

pytestmark = pytest.mark.db
WAIT = 10.0  # a bound against hanging, never a timing assertion


@pytest.fixture
def world(core: App) -> World:
    return build(core)


def hand_off(core: App, call_id: str, client_id: int | None = None) -> int:
    core.ivr.record_event(call_id, "start", {"lang": "zh-CN"})
    if client_id is not None:
        from callcenter.store.models.ivr import IvrSession

        run_in_transaction(core.sessions, lambda s: setattr(
            s.scalars(select(IvrSession).where(IvrSession.call_id == call_id)).one(), "client_id", client_id))
    core.ivr.record_event(call_id, "handoff", {"summary": f"{call_id} 转人工"})
    return run_in_transaction(core.sessions, lambda s: s.scalars(
        select(IvrStep.session_id).where(IvrStep.step == "handoff").order_by(IvrStep.id.desc())).first())


def ready(core: App, staff_id: int) -> None:
    dialer.agent_login(core, staff_id)
    dialer.agent_ready(core, staff_id)


def contacts(core: App) -> list[tuple[int, int | None, int | None]]:
    with transaction(core.sessions) as s:
        return [(c.agent_id, c.ivr_session_id, c.client_id)
                for c in s.scalars(select(DeskContact).order_by(DeskContact.id))]


async def next_opened(sub: Any) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        while True:
            _topic, event = await sub.__anext__()
            if event.get("type") == "contact_opened":
                return event

    return await asyncio.wait_for(find(), WAIT)


async def test_a_hand_off_recorded_with_no_router_is_routed_by_a_new_one_oldest_first(core: App,
                                                                                      world: World) -> None:
    core.bus.bind_loop(asyncio.get_running_loop())
    ag1, bo1 = world.staff["ag1"], world.staff["bo1"]
    older = await asyncio.to_thread(hand_off, core, "agi-older", world.mine)  # nobody routes: it just waits
    newer = await asyncio.to_thread(hand_off, core, "agi-newer")
    assert run_in_transaction(core.sessions, waiting_handoffs) == [older, newer]
    ready(core, ag1)
    async with core.bus.subscribe("wallboard") as board:
        stop = asyncio.Event()
        router = asyncio.create_task(handoff_runner(core.sessions, core.bus, core.clock, stop, retry_s=60))
        try:
            opened = await next_opened(board)  # at start, from the database: no nudge needed
        finally:
            stop.set()
            await asyncio.wait_for(router, WAIT)
        assert (opened["staff_id"], opened["ivr_session_id"], opened["client_id"]) == (ag1, older, world.mine)
        assert contacts(core) == [(ag1, older, world.mine)]
        assert opened["contact_id"] == run_in_transaction(core.sessions, lambda s: s.scalars(
            select(DeskContact.id)).one())
        assert run_in_transaction(core.sessions, waiting_handoffs) == [newer]
        # the engine restarts; an agent becomes ready meanwhile; the next router routes the one still waiting
        ready(core, bo1)
        stop = asyncio.Event()
        router = asyncio.create_task(handoff_runner(core.sessions, core.bus, core.clock, stop, retry_s=60))
        try:
            opened = await next_opened(board)
        finally:
            stop.set()
            await asyncio.wait_for(router, WAIT)
    assert (opened["staff_id"], opened["ivr_session_id"]) == (bo1, newer)
    assert contacts(core) == [(ag1, older, world.mine), (bo1, newer, None)]
    assert run_in_transaction(core.sessions, waiting_handoffs) == []
    with transaction(core.sessions) as s:
        states = {sid: st for sid, st in s.execute(select(AgentSession.staff_id, AgentSession.state)).all()}
    assert states == {ag1: "talking", bo1: "talking"}


async def test_a_nudge_routes_a_new_hand_off_at_once(core: App, world: World) -> None:
    core.bus.bind_loop(asyncio.get_running_loop())
    ag1 = world.staff["ag1"]
    ready(core, ag1)
    async with core.bus.subscribe(f"agent:{ag1}") as sub:
        stop = asyncio.Event()
        # retries once a minute: within the test's bound only the HandoffWaiting nudge makes it look again
        router = asyncio.create_task(handoff_runner(core.sessions, core.bus, core.clock, stop, retry_s=60))
        try:
            await asyncio.sleep(0.1)  # its first round found nothing
            ivr_id = await asyncio.to_thread(hand_off, core, "agi-nudge")
            opened = await next_opened(sub)
        finally:
            stop.set()
            await asyncio.wait_for(router, WAIT)
    assert (opened["staff_id"], opened["ivr_session_id"]) == (ag1, ivr_id)


def test_nobody_ready_keeps_it_waiting_and_a_caller_who_hung_up_is_not_routed(core: App, world: World) -> None:
    gone = hand_off(core, "agi-gone")
    core.ivr.record_event("agi-gone", "end", {"reason": "caller_hangup"})
    waiting = hand_off(core, "agi-wait")
    assert route_waiting(core.sessions, core.clock) == []  # nobody ready
    assert run_in_transaction(core.sessions, waiting_handoffs) == [waiting]
    ready(core, world.staff["ag1"])
    later = core.clock() + timedelta(minutes=31)  # an IVR session whose end was never recorded
    assert route_waiting(core.sessions, lambda: later, max_wait=timedelta(minutes=30)) == []
    [pop] = route_waiting(core.sessions, core.clock)
    assert isinstance(pop, Pop) and pop.ivr_session_id == waiting and pop.ivr_session_id != gone
    assert route_waiting(core.sessions, core.clock) == []  # routed once
    assert [e.type for e in pop.events()] == ["contact_opened", "agent_state"]


def test_two_routers_at_once_route_each_hand_off_once(core: App, world: World) -> None:
    for name in ("ag1", "bo1", "ag2"):
        ready(core, world.staff[name])
    ids = [hand_off(core, f"agi-{i}") for i in range(2)]
    start = threading.Barrier(2)
    results: list[list[Pop]] = []
    errors: list[BaseException] = []

    def router() -> None:
        try:
            start.wait(WAIT)
            results.append(route_waiting(core.sessions, core.clock))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=router) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT * 3)
    assert not errors, errors
    routed = sorted(p.ivr_session_id for r in results for p in r if p.ivr_session_id is not None)
    assert routed == ids
    rows = contacts(core)
    assert sorted(r[1] for r in rows if r[1] is not None) == ids  # one contact per hand-off
    assert len({r[0] for r in rows}) == 2  # on two different agents
