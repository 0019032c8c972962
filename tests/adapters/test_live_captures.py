"""Replays of the live tests' recordings (tests/fixtures/asterisk-22-live/): the same scenario code as
tests/live/, against a fake Asterisk that answers with the bytes the real one sent (AMI: ``*.ami``; FastAGI:
``hotline_typeahead.agi``, answered by command, see :mod:`callcenter.ivr.agi_replay`)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from callcenter.ivr.agi import AgiConfig, start_agi_server
from callcenter.ivr.agi_replay import AgiReplay, load_agi_capture
from callcenter.ivr.backend import demo_backend
from callcenter.telephony.ami import AmiClient, AmiServer
from callcenter.telephony.ami_replay import ReplayServer, load_capture
from tests.adapters.ami_scenarios import LIVE_CAPTURES, MULTI_SCENARIOS, SCENARIOS, multi_capture, options_of


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
