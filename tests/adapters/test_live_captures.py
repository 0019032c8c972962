"""Replays of the live tests' recordings (tests/fixtures/asterisk-22-live/): the same scenario code as
tests/live/, against a fake Asterisk that answers with the bytes the real one sent."""

from __future__ import annotations

import pytest

from callcenter.telephony.ami import AmiClient, AmiServer
from callcenter.telephony.ami_replay import ReplayServer, load_capture
from tests.adapters.ami_scenarios import LIVE_CAPTURES, SCENARIOS, options_of


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay(name: str) -> None:
    path = LIVE_CAPTURES / f"{name}.ami"
    assert path.exists(), f"no live capture {path.name}: run tests/live with CALLCENTER_LIVE_RECORD=1"
    async with ReplayServer(load_capture(name, LIVE_CAPTURES)) as server:
        ami = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), options_of(name))
        await SCENARIOS[name](ami, lambda command: None)
        assert server.mismatches == [] and server.unexpected == []
