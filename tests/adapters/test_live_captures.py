"""Replays of the live tests' recordings (tests/fixtures/asterisk-22-live/): the same scenario code as
tests/live/, against a fake Asterisk that answers with the bytes the real one sent (AMI: ``*.ami``; FastAGI:
``hotline_typeahead.agi``, ``hotline_handoff.agi``, answered by command, see :mod:`callcenter.adapters.ivr.agi_replay`),
and the IVR hand-off's AMI session (``handoff_to_agent.ami``) driven by the dialler engine on a fresh database."""

from __future__ import annotations

import asyncio
import threading
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.adapters.ivr.agi_replay import AgiReplay, load_agi_capture
from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.recording import IvrRecorder
from callcenter.services.recordings import RecordingService
from callcenter.store.models.recordings import Recording
from sqlalchemy import select

from callcenter.services.call_commands import ClaimedCommand
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.parts.dialer import dialer_deps
from callcenter.services.handoff import waiting_handoffs
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.ivr import IvrSession
from callcenter.ports import channel_variables as V
from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiPool, AmiServer
from callcenter.adapters.telephony.ami_replay import ReplayServer, load_capture
from tests.adapters.ami_scenarios import LIVE_CAPTURES, MULTI_SCENARIOS, OPTIONS, SCENARIOS, multi_capture, options_of
from tests.adapters.handoff_world import build_handoff_world


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay(name: str) -> None:
    path = LIVE_CAPTURES / f"{name}.ami"
    assert path.exists(), f"no live capture {path.name}: run tests/live with CALLCENTER_LIVE_RECORD=1"
    async with ReplayServer(load_capture(name, LIVE_CAPTURES)) as server:
        ami = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), options_of(name))
        await SCENARIOS[name](ami, lambda command: None)
        assert server.mismatches == [] and server.unexpected == []


@pytest.mark.parametrize("name", sorted(MULTI_SCENARIOS))
async def test_replay_over_several_servers_and_connections(name: str) -> None:
    n_servers, n_connections, scenario = MULTI_SCENARIOS[name]
    scripts = []
    for i in range(1, n_servers + 1):
        paths = [multi_capture(name, i, j) for j in range(1, n_connections + 1)]
        assert all(p.exists() for p in paths), f"no live capture {paths[0].name}: run tests/live with CALLCENTER_LIVE_RECORD=1"
        scripts.append([load_capture(p.name, LIVE_CAPTURES) for p in paths])
    replays = [ReplayServer(*s) for s in scripts]
    for replay in replays:
        await replay.start()
    try:
        await scenario([AmiServer("127.0.0.1", r.port, "callcenter", "ccsecret") for r in replays], lambda c: None)
    finally:
        for replay in replays:
            await replay.aclose()
    for replay in replays:
        assert replay.mismatches == [] and replay.unexpected == [], (replay.mismatches, replay.unexpected)


class _PinCheckUntilKeysDelivered:
    """The demo backend whose PIN check lasts until the replay has handed over the keys the live caller typed
    during it (live it took 4 s; in replay the check ends as soon as nothing recorded is left to deliver)."""

    def __init__(self, delivered: threading.Event) -> None:
        self.inner = demo_backend()
        self.delivered = delivered

    def authenticate(self, *args: Any) -> Any:
        assert self.delivered.wait(10), "the replay never reached the end of the recorded WAIT FOR DIGIT slices"
        return self.inner.authenticate(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_hotline_type_ahead_replayed() -> None:
    """tests/live/test_live_hotline.py's call: the shipped hotline flow against the recorded Asterisk answers;
    the "1" a WAIT FOR DIGIT slice received during the PIN check answers the main menu, the balances are read."""
    capture = load_agi_capture(LIVE_CAPTURES / "hotline_typeahead.agi")
    replay = AgiReplay(capture)
    backend = _PinCheckUntilKeysDelivered(replay.keys_delivered)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc", wait_prompt_after_s=0.0,
                       typeahead_poll_ms=250)
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=config)
    try:
        async with server:
            await replay.run("127.0.0.1", server.sockets[0].getsockname()[1])
            await asyncio.wait_for(app.wait_idle(), 10)
    finally:
        app.close()
    assert replay.mismatches == [] and replay.unanswered == [], (replay.mismatches, replay.unanswered)
    recorded = [e.command for e in capture.exchanges if not e.is_wait]
    assert [c for c in replay.sent if not c.startswith("WAIT FOR DIGIT")] == recorded
    assert any("/available" in c for c in replay.sent) and not any("/main_menu" in c for c in replay.sent)
    ends = [d for _, step, d in backend.inner.events if step == "end"]
    assert [e["reason"] for e in ends] == ["caller_hangup"], ends


# --- the IVR hand-off (tests/live/test_live_handoff.py): one routing model, replayed -------------------------


@pytest.mark.db
async def test_hotline_handoff_replayed_parks_the_caller_under_the_hand_offs_call_id(core: Any) -> None:
    """The live caller's AGI session against the store's IVR backend on a fresh database: the same commands, the
    hand-off recorded (waiting: handed off, not ended) and ``CC_CALL_ID`` = ``cc-h<its IVR session id>`` set for
    the dialplan's ``[cc-handoff-wait]``; no queue."""
    world = build_handoff_world(core)
    capture = load_agi_capture(LIVE_CAPTURES / "hotline_handoff.agi")
    replay = AgiReplay(capture)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc", handoff_wait_s=120.0)
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
    try:
        async with server:
            await replay.run("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=30)
            await asyncio.wait_for(app.wait_idle(), 10)
    finally:
        app.close()
    assert replay.mismatches == [] and replay.unanswered == [], (replay.mismatches, replay.unanswered)
    assert [c for c in replay.sent if not c.startswith("WAIT FOR DIGIT")] == [
        e.command for e in capture.exchanges if not e.is_wait]
    [(ivr_id, handed_off, ended, client)] = run_in_transaction(core.sessions, lambda s: [
        (r.id, r.handed_off, r.ended_at, r.client_id) for r in s.scalars(select(IvrSession))])
    assert handed_off and ended is None and client == world.client_id
    assert f'SET VARIABLE CC_CALL_ID "{V.handoff_call_id(ivr_id)}"' in replay.sent
    assert run_in_transaction(core.sessions, waiting_handoffs) == [ivr_id]


@pytest.mark.db
async def test_recorded_hotline_session_replayed_keeps_the_pin_out_of_the_recording(core: Any, tmp_path: Path) -> None:
    """tests/live/test_live_ivr_recording.py's call: the engine asks where the dialplan records, records the session
    in MixMonitor segments and stops before the PIN prompt — the same commands as live, in the same order — and
    keeps one recording of the session from the segments (here written as Asterisk left them), the PIN span
    marked."""
    world = build_handoff_world(core)
    capture = load_agi_capture(LIVE_CAPTURES / "hotline_recorded.agi")
    segments = [c.command.split('"')[1].split(",")[0].rsplit("/", 1)[1] for c in capture.exchanges
                if c.command.startswith("EXEC MixMonitor")]
    assert len(segments) == 2
    for name in segments:  # what Asterisk wrote: 1 s each
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x10\x27" * 8000)
    replay = AgiReplay(capture, typing_s=0.2)
    recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "store"), core.clock)
    recorder = IvrRecorder(recordings, core.sessions, file_wait_s=2.0)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc", recorder=recorder,
                       recordings_dir=str(tmp_path))
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
    try:
        async with server:
            await replay.run("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=30)
            await asyncio.wait_for(app.wait_idle(), 10)
            await asyncio.wait_for(recorder.drain(), 10)
    finally:
        app.close()
    assert replay.mismatches == [] and replay.unanswered == [], (replay.mismatches, replay.unanswered)
    sent = [c for c in replay.sent if not c.startswith("WAIT FOR DIGIT")]
    assert sent == [e.command for e in capture.exchanges if not e.is_wait]
    pin = next(i for i, c in enumerate(sent) if "/enter_pin" in c)
    assert sent[pin - 1].startswith("EXEC StopMixMonitor") and sent[pin + 1].startswith("EXEC MixMonitor")
    [rec] = run_in_transaction(core.sessions, lambda s: [(r.client_id, r.ivr_session_id, r.paused_spans, r.marks,
                                                           r.duration_s) for r in s.scalars(select(Recording))])
    client_id, ivr_id, spans, marks, duration = rec
    assert client_id == world.client_id and ivr_id is not None and [m["kind"] for m in marks] == ["pin"]
    [(start, end)] = spans
    assert duration == pytest.approx(2.0 + (end - start), abs=0.01)  # the two segments and the PIN's silence


def handed_off_to_a_ready_agent(core: Any) -> tuple[Any, int, Callable[[], str]]:
    """The live hand-off's world on a fresh database: the IVR session the recording's CallID names (1), the agent
    logged in at their phone and ready; the agent's state as a function."""
    world = build_handoff_world(core)
    core.bus.bind_loop(asyncio.get_running_loop())
    core.ivr.record_event("agi-replay", "start", {"lang": "zh-CN"})
    ivr_id = core.ivr.record_event("agi-replay", "handoff", {"summary": "转人工"})
    assert ivr_id == 1  # the id the recording's CallID names (a fresh database, as live)
    dialer.agent_login(core, world.staff_id, phone=world.phone)
    dialer.agent_ready(core, world.staff_id)
    return world, ivr_id, lambda: str(dialer.agent_state(core, world.staff_id)["state"])


async def until_state(state: Callable[[], str], want: str) -> None:
    for _ in range(1000):  # bounded: 20 s
        if state() == want:
            return
        await asyncio.sleep(0.02)


@asynccontextmanager
async def engine_on_replay(core: Any, capture: str, options: AmiOptions = OPTIONS) -> AsyncIterator[DialerEngine]:
    """The dialler engine running on an AMI pool against a replay of ``capture``; on leaving, the engine stopped and
    the replay checked: every action the capture holds came, in order, and nothing else."""
    stop = asyncio.Event()
    async with ReplayServer(load_capture(capture, LIVE_CAPTURES)) as server:
        pool = AmiPool([AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret")], options)
        await pool.start()
        engine = DialerEngine(dialer_deps(core), pool, dialer_id="replay", auto_wrap_up_s=None)
        runner = asyncio.create_task(engine.run(stop))
        try:
            yield engine
        finally:
            stop.set()
            await asyncio.wait_for(runner, 10)
            await pool.aclose()
        assert server.mismatches == [] and server.unexpected == [], (server.mismatches, server.unexpected)


@pytest.mark.db
async def test_handoff_to_agent_replayed_connects_pops_and_frees_the_agent(core: Any) -> None:
    """The engine's AMI session of the live hand-off, replayed: the agent's phone is called into its room, the
    dialplan's HandoffWaiting tells the parked channel, the engine Redirects it into the agent's room (the same
    action as for an answered outbound call), the desk contact opens as the agent goes talking, and the caller's
    hang-up leaves the agent in wrap-up."""
    world, ivr_id, state = handed_off_to_a_ready_agent(core)
    async with engine_on_replay(core, "handoff_to_agent"):
        await until_state(state, "wrap_up")
    assert state() == "wrap_up"
    with transaction(core.sessions) as s:
        [contact] = s.scalars(select(DeskContact)).all()
        assert (contact.agent_id, contact.ivr_session_id, contact.direction) == (world.staff_id, ivr_id, "inbound")
        ivr = s.get(IvrSession, ivr_id)
        assert ivr is not None and ivr.end_reason == "completed"


@pytest.mark.db
async def test_handoff_handed_back_to_the_ivr_order_menu_replayed(core: Any) -> None:
    """The live hand-back (the card's "hand to the IVR order menu" on an IVR hand-off's caller), replayed: once the
    caller is with the agent, the call control ``transfer_ivr`` to ``orders`` clears CC_HANDOFF, sets CC_IVR_ENTRY
    and Redirects the caller to ``[hotline]`` — the actions of the capture, in order — and the agent goes to
    wrap-up; the call is no longer the engine's."""
    world, ivr_id, state = handed_off_to_a_ready_agent(core)
    async with engine_on_replay(core, "handoff_back_to_ivr") as engine:
        await until_state(state, "talking")
        with transaction(core.sessions) as s:
            [contact_id] = s.scalars(select(DeskContact.id)).all()
        ok, reason = await engine.command_requested(ClaimedCommand(
            1, "transfer_ivr", contact_id, None, world.staff_id, core.clock(), {"menu": V.IVR_ENTRY_ORDERS}))
        assert ok, reason
        await until_state(state, "wrap_up")
    assert state() == "wrap_up" and not engine.core.inbound


@pytest.mark.db
async def test_call_controls_replayed_hold_conference_transfer_and_monitoring(core: Any) -> None:
    """tests/live/test_live_controls.py's call, replayed through the same scenario code: hold and resume (Redirect
    to [cc-hold] and back into the room), a conference (the two rooms linked by a Local pair) and B leaving it (the
    link hung up), a transfer (Redirect into B's room), whisper, barge and listen (the supervisor's phone dialled
    to [cc-monitor-<mode>], hung up at the end of each) — the actions of the capture, in order; at the end B has the
    call and A is in wrap-up."""
    from tests.adapters.controls_world import DIAL_TEMPLATE, build_controls_world, run_controls, state_of

    world = build_controls_world(core)

    async def nothing(*_: object) -> None:
        return None

    async with engine_on_replay(core, "call_controls", replace(OPTIONS, dial_template=DIAL_TEMPLATE)) as engine:
        await run_controls(core, engine, world, core.clock, pause=nothing, monitor_up=nothing)
        assert (state_of(core, world.a), state_of(core, world.b)) == ("wrap_up", "talking")


# --- the reminder call (tests/live/test_live_notify.py): 1 repeats, 0 reaches the agent, replayed -------------


@pytest.mark.db
@pytest.mark.parametrize("zero", ["callback", "agent"])
async def test_reminder_call_with_nobody_free_replayed(core: Any, tmp_path: Path, zero: str) -> None:
    """tests/live/test_live_notify.py's reminder call with no agent ready, replayed through the same scenario code:
    ``callback`` — the "0" books the call back and the sorry prompt is played through [cc-play] at once; ``agent``
    — the call waits as the hand-off cc-h1 in [cc-handoff-wait] until handoff_wait_s, then the call core plays the
    sorry prompt and books the call back. The capture's actions, in order, and nothing else."""
    from tests.adapters.notify_world import NOTIFY_OPTIONS, build_notify_world, run_reminder_nobody_free

    core.clock = lambda: datetime.now(timezone.utc)  # the hand-off's wait is measured on the wall clock
    core.settings.prompts_dir = tmp_path / "prompts"
    core.bus.bind_loop(asyncio.get_running_loop())
    world = build_notify_world(core, core.clock())
    async with ReplayServer(load_capture(f"reminder_nobody_free_{zero}", LIVE_CAPTURES)) as server:
        pool = AmiPool([AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret")], NOTIFY_OPTIONS)
        await pool.start()
        try:
            await run_reminder_nobody_free(core, pool, world, zero=zero, timeout_s=20.0)
        finally:
            await pool.aclose()
        assert server.mismatches == [] and server.unexpected == [], (server.mismatches, server.unexpected)
    redirects = [dict((k.lower(), v) for k, v in f).get("context") for f in server.received
                 if dict((k.lower(), v) for k, v in f).get("action", "").lower() == "redirect"]
    assert redirects == (["cc-notify-menu", "cc-notify-menu", "cc-play"] if zero == "callback" else
                         ["cc-notify-menu", "cc-notify-menu", "cc-handoff-wait", "cc-play"])


@pytest.mark.db
async def test_reminder_call_replayed_1_repeats_0_reaches_the_agent(core: Any, tmp_path: Path) -> None:
    """The engine's AMI session of the live reminder call, replayed through the same scenario code: the message
    rendered and played in [cc-notify-menu], played again on the recorded NotifyDigit 1; on 0 the channel is sent
    to [cc-handoff-wait] as the hand-off cc-h<id> (an ivr_sessions row, channel notify), parked by its
    HandoffWaiting and Redirected into the ready agent's room; the client's hang-up leaves the agent in wrap-up."""
    from tests.adapters.notify_world import NOTIFY_OPTIONS, build_notify_world, run_reminder_call

    core.settings.prompts_dir = tmp_path / "prompts"
    core.bus.bind_loop(asyncio.get_running_loop())
    world = build_notify_world(core, core.clock())

    async def hang_up(call_id: str) -> None:
        return None  # the recording holds the client's hang-up

    async with ReplayServer(load_capture("reminder_1_then_0", LIVE_CAPTURES)) as server:
        pool = AmiPool([AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret")], NOTIFY_OPTIONS)
        await pool.start()
        try:
            handoff = await run_reminder_call(core, pool, world, hang_up, timeout_s=20.0)
        finally:
            await pool.aclose()
        assert server.mismatches == [] and server.unexpected == [], (server.mismatches, server.unexpected)
    assert handoff == V.handoff_call_id(1)
    redirects = [dict((k.lower(), v) for k, v in f).get("context") for f in server.received
                 if dict((k.lower(), v) for k, v in f).get("action", "").lower() == "redirect"]
    assert redirects == ["cc-notify-menu", "cc-notify-menu", "cc-handoff-wait", "cc-agent-join"]


# --- the dialler's outcomes from SIP customers (tests/live/test_live_sip.py), replayed ------------------------


@pytest.mark.db
async def test_sip_customers_outcomes_replayed_through_the_engine(core: Any) -> None:
    """The engine's AMI session of the live SIP outcomes run, replayed on a fresh database built the same way: the
    agent's phone called into its room, the four leads dialled one after the other into [cc-outbound-amd], the
    machine hung up; the attempts end busy (486), no_answer (ringing until the timeout), failed (503: Asterisk says
    Reason 0 and the leg's Hangup Cause 34, congestion) and machine (AMD's verdict)."""
    from tests.adapters.sip_outcomes_world import EXPECTED, OPTIONS as SIP_OPTIONS, build_outcomes_world, check_outcomes, outcomes

    build_outcomes_world(core)
    async with engine_on_replay(core, "sip_dialler_outcomes", SIP_OPTIONS):
        for _ in range(500):
            if len(outcomes(core)) == len(EXPECTED):
                break
            await asyncio.sleep(0.02)
    check_outcomes(core)


# --- a SIP caller's RFC 2833 keys into the hotline (tests/live/test_live_sip_hotline.py), replayed ----------------


@pytest.mark.db
async def test_sip_caller_hotline_session_replayed_authenticates_and_reads_the_balances(core: Any) -> None:
    """The AGI session of the live SIP caller (a PJSIP channel whose keys came as RFC 2833 events) against the
    store's IVR backend on a fresh database: the same commands, the account and PIN keyed over RTP authenticate
    the client, the "1" answers the main menu, the balances are read, and the session ends on the caller's
    hang-up, with the client on it."""
    world = build_handoff_world(core)
    capture = load_agi_capture(LIVE_CAPTURES / "hotline_sip_dtmf.agi")
    assert any(h == b"agi_channel: PJSIP/sim-sip-caller-00000000" for h in capture.header)
    replay = AgiReplay(capture)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc")
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
    try:
        async with server:
            await replay.run("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s=30)
            await asyncio.wait_for(app.wait_idle(), 10)
    finally:
        app.close()
    assert replay.mismatches == [] and replay.unanswered == [], (replay.mismatches, replay.unanswered)
    assert [c for c in replay.sent if not c.startswith("WAIT FOR DIGIT")] == [
        e.command for e in capture.exchanges if not e.is_wait]
    assert any("/available" in c for c in replay.sent) and any("/main_menu" in c for c in replay.sent)
    [(client, ended, reason, handed_off)] = run_in_transaction(core.sessions, lambda s: [
        (r.client_id, r.ended_at, r.end_reason, r.handed_off) for r in s.scalars(select(IvrSession))])
    assert (client, reason, handed_off) == (world.client_id, "caller_hangup", False) and ended is not None
