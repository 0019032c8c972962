"""An IVR hand-off through a real Asterisk 22 running our shipped dialplan, reaching an agent the way an answered
outbound call does (one routing model, issue 12 items 3 and 13): a simulated caller dials ``[hotline]``,
authenticates over FastAGI (the store's IVR backend), presses 0 (agent); the AGI ends with ``CC_CALL_ID`` =
``cc-h<IVR session id>`` and the caller waits in ``[cc-handoff-wait]`` (no ``Queue()``); the dialler engine
(``DialerEngine`` on an ``AmiPool``), which has the agent's phone in the agent's ConfBridge room, learns the
channel from the dialplan's ``HandoffWaiting`` UserEvent and Redirects it into the room; the desk contact opens
(inbound, with the IVR session) as the agent goes talking; the caller hangs up and the agent goes to wrap-up.

With CALLCENTER_LIVE_RECORD=1 the engine's AMI traffic becomes tests/fixtures/asterisk-22-live/handoff_to_agent.ami
(handoff_back_to_ivr.ami for the hand-back) and the AGI session hotline_handoff.agi, which
tests/adapters/test_live_captures.py replays."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.call_commands import ClaimedCommand
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.adapters.ivr import prompts
from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.parts.dialer import dialer_deps
from callcenter.store.db import transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.ports import channel_variables as V
from callcenter.adapters.telephony.ami import AmiClient, AmiPool, AmiServer
from tests.adapters.ami_scenarios import LIVE_CAPTURES, OPTIONS
from tests.adapters.handoff_world import AGENT_KEY, AGENT_KEY_AFTER_S, KEYS, build_handoff_world
from tests.live.asterisk import AGI_PORT, LiveAsterisk, live_binary
from tests.live.capture import AgiRecordingProxy, RecordingProxy

pytestmark = pytest.mark.db
WAIT_S = 60.0  # bounds against hanging, never timing assertions


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    prompts.build(out, langs=("zh-CN",))
    return out


async def until(what: str, cond: Any, pbx: LiveAsterisk, timeout_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s\n{pbx.log()[-4000:]}")
        await asyncio.sleep(0.1)


def agent_state(core: App, staff_id: int) -> str | None:
    with transaction(core.sessions) as s:
        return s.scalars(select(AgentSession.state).where(AgentSession.staff_id == staff_id,
                                                          AgentSession.ended_at.is_(None))).first()


def contacts(core: App) -> list[DeskContact]:
    with transaction(core.sessions) as s:
        rows = list(s.scalars(select(DeskContact)))
        s.expunge_all()
        return rows


@pytest.mark.parametrize("ending", ["caller_hangs_up", "back_to_ivr_orders"])
async def test_hand_off_reaches_the_agent_like_an_outbound_call_and_frees_them_at_the_end(
        core: App, rendered: Path, tmp_path: Path, ending: str) -> None:
    """``back_to_ivr_orders``: instead of the caller hanging up, the agent presses the card's "hand to the IVR
    order menu" (the call control ``transfer_ivr`` to the entry ``orders``): the caller's channel goes back to
    ``[hotline]``, a new IVR session starts at that entry, the agent goes to wrap-up."""
    binary = live_binary()
    assert binary is not None
    core.clock = lambda: datetime.now(timezone.utc)  # real time: the engine's wall clock ...
    core.ivr._clock = core.clock  # type: ignore[attr-defined]  # ... and the IVR records' (built with the fixture's)
    core.bus.bind_loop(asyncio.get_running_loop())
    world = build_handoff_world(core)
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=rendered)
    pbx.start()
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc", handoff_wait_s=120.0)
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
    agi = await AgiRecordingProxy(("127.0.0.1", AGI_PORT), ("127.0.0.1", server.sockets[0].getsockname()[1])).start()
    ami = await RecordingProxy(pbx.ami_address).start()
    pool = AmiPool([AmiServer(*ami.address, "callcenter", pbx.ami_secret)], OPTIONS)
    stop = asyncio.Event()
    runner: asyncio.Task[None] | None = None
    try:
        async with server:
            await pool.start()
            engine = DialerEngine(dialer_deps(core), pool, dialer_id="live-handoff", auto_wrap_up_s=None)
            runner = asyncio.create_task(engine.run(stop))
            # the agent logs in at the phone they sit at and goes ready: the engine calls the phone into the room
            dialer.agent_login(core, world.staff_id, phone=world.phone)
            dialer.agent_ready(core, world.staff_id)
            await until("the agent's phone in its room",
                        lambda: "agent-%d" % world.staff_id in pbx.cli("confbridge list"), pbx)
            # a caller dials the hotline (an operator's DID pointing at [hotline]), keys ahead, then 0 for an agent
            async with AmiClient(AmiServer(*pbx.ami_address, "callcenter", pbx.ami_secret), OPTIONS) as caller:
                reply = await caller._send({
                    "Action": "Originate", "Channel": "Local/s@sim-caller", "Context": "hotline", "Exten": "s",
                    "Priority": "1", "Async": "true",
                    "Variable": f"CC_TEST_KEYS={KEYS},CC_TEST_LATER={AGENT_KEY},CC_TEST_PAUSE={AGENT_KEY_AFTER_S}"},
                    as_list=False)
                assert reply.get("Response") == "Success"
            await until("the desk contact", lambda: bool(contacts(core)), pbx)
            [contact] = contacts(core)
            assert (contact.agent_id, contact.client_id, contact.direction) == (
                world.staff_id, world.client_id, "inbound")
            assert contact.ivr_session_id is not None
            call_id = V.handoff_call_id(contact.ivr_session_id)
            assert agent_state(core, world.staff_id) == "talking"
            channel = pool.clients[0].tracker.channel_of(call_id)
            assert channel is not None
            # the caller is in the agent's room with the agent's phone
            await until("the caller in the room", lambda: channel in pbx.cli(
                f"confbridge list agent-{world.staff_id}"), pbx)
            assert "Unable to join queue" not in pbx.log() and "Queue(" not in pbx.log()
            await asyncio.sleep(1.0)
            if ending == "back_to_ivr_orders":
                first_ivr = contact.ivr_session_id
                ok, reason = await engine.command_requested(ClaimedCommand(
                    1, "transfer_ivr", contact.id, None, world.staff_id, core.clock(), {"menu": V.IVR_ENTRY_ORDERS}))
                assert ok, reason
                await until("the agent in wrap-up", lambda: agent_state(core, world.staff_id) == "wrap_up", pbx)

                def sessions() -> list[tuple[int, dict[str, Any]]]:
                    with transaction(core.sessions) as s:
                        return [(r.session_id, json.loads(r.detail or "{}")) for r in s.scalars(select(IvrStep).where(
                            IvrStep.step == "start").order_by(IvrStep.id))]

                await until("a new IVR session at the order entry", lambda: len(sessions()) == 2, pbx)
                (_, first), (second_id, second) = sessions()
                assert second_id != first_ivr and second.get("entry") == "orders" and "entry" not in first
                assert not engine.core.inbound  # the call is no longer the engine's
                pbx.cli(f"channel request hangup {channel}")  # the caller hangs up in the IVR
                await asyncio.wait_for(app.wait_idle(), 15)
                stop.set()
                await asyncio.wait_for(runner, 15)
                await pool.aclose()
                await ami.aclose()
                if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
                    ami.write(LIVE_CAPTURES / "handoff_back_to_ivr.ami",
                              note=f"live: an agent hands an IVR hand-off back to the order menu against {pbx.version}")
                return
            pbx.cli(f"channel request hangup {channel}")  # the caller hangs up
            await until("the agent in wrap-up", lambda: agent_state(core, world.staff_id) == "wrap_up", pbx)
            await asyncio.wait_for(app.wait_idle(), 15)
            with transaction(core.sessions) as s:
                ivr = s.get(IvrSession, contact.ivr_session_id)
                assert ivr is not None and ivr.handed_off and ivr.end_reason == "completed"
                steps = [x.step for x in s.scalars(select(IvrStep).where(
                    IvrStep.session_id == ivr.id).order_by(IvrStep.id))]
            assert steps[-3:] == ["handoff_queued", "agent_connected", "end"], steps
            assert not engine.core.inbound
            stop.set()
            await asyncio.wait_for(runner, 15)
            await pool.aclose()
        await ami.aclose()
        await agi.aclose()
        if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
            note = f"live: IVR hand-off to a logged-in agent and back to wrap-up against {pbx.version}"
            ami.write(LIVE_CAPTURES / "handoff_to_agent.ami", note=note)
            agi.write(LIVE_CAPTURES / "hotline_handoff.agi", note=note)
    finally:
        stop.set()
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await pool.aclose()
        await ami.aclose()
        await agi.aclose()
        app.close()
        pbx.kill()
