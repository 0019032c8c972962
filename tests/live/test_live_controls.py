"""The call controls (issue 13) on a real Asterisk 22, through the whole dialler (``DialerEngine``: the call core
deciding, the AMI adapter carrying out, the shipped dialplan and ConfBridge profiles), proven by what each party
hears. Every party is a ``[sim-tone]`` Local channel sounding a tone of its own and recording what reaches it:
the customer 440 Hz, agent A 700 Hz, agent B 1100 Hz, the supervisor 1600 Hz. One outbound call goes through:

    connected     customer <-> A
    hold          the customer hears neither A nor anyone (music on hold), A no longer hears the customer
    resume        customer <-> A again
    conference    A, B and the customer all hear each other (the two rooms linked)
    leave         B leaves: customer <-> A
    transfer      to B: customer <-> B, A hears nobody
    whisper       the supervisor on B: B hears the supervisor, the customer does not
    barge         the customer hears the supervisor too
    listen        the supervisor hears B and the customer; nobody hears the supervisor

With CALLCENTER_LIVE_RECORD=1 the engine's AMI traffic becomes tests/fixtures/asterisk-22-live/call_controls.ami,
which tests/adapters/test_live_captures.py replays."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from callcenter.bootstrap import App
from callcenter.parts.dialer import dialer_deps
from callcenter.services.dialer.engine import DialerEngine
from tests.adapters.ami_scenarios import LIVE_CAPTURES
from tests.adapters.controls_world import (A, B, CUSTOMER, DIAL_TEMPLATE, NUMBER, STRETCHES, SUPERVISOR,
                                           build_controls_world, run_controls, until)
from tests.live.asterisk import LIVE_RECORDINGS, LiveAsterisk
from tests.live.capture import RecordingProxy
from tests.live.test_live_engine import OPTIONS, Running, Wall
from tests.live.tones import heard, samples

pytestmark = pytest.mark.db
PHASE_S = 3.0


async def test_who_hears_whom_through_hold_conference_transfer_and_monitoring(core: App, asterisk: LiveAsterisk) -> None:
    asterisk.cli("channel request hangup all")
    for old in LIVE_RECORDINGS.glob("heard-*.wav"):
        old.unlink()
    wall = Wall(datetime.now(timezone.utc))
    world = build_controls_world(core)
    proxy = await RecordingProxy(asterisk.ami_address).start()
    client = AmiClient(AmiServer(*proxy.address, "callcenter", asterisk.ami_secret),
                       replace(OPTIONS, dial_template=DIAL_TEMPLATE))
    await client.start()
    deps = replace(dialer_deps(core, telephony=client), wall=wall, process_lease=timedelta(seconds=2), recorder=None)
    engine = DialerEngine(deps, client, dialer_id="live-ctl", sync_s=0.5, tick_s=0.2, wallboard_s=5.0,
                          abandon_after_s=2.0, originate_timeout_s=15, auto_wrap_up_s=None)
    run = Running(engine)
    marks: dict[str, tuple[float, float]] = {}

    async def listen_here(name: str) -> None:  # a stretch the parties' files are checked on
        start = time.monotonic()
        await asyncio.sleep(PHASE_S)
        marks[name] = (start, time.monotonic())

    async def monitor_up(up: bool) -> None:
        await until(lambda: ("cc-monitor-" in asterisk.cli("core show channels")) == up)
        if up:
            await asyncio.sleep(1.0)  # the supervisor's phone answers

    try:
        await run_controls(core, engine, world, wall, pause=listen_here, monitor_up=monitor_up)
        await run.stop()  # first: a running engine would call the agents' phones back into their rooms
        end = time.monotonic()
        asterisk.cli("channel request hangup all")  # every file ends now
        await asyncio.sleep(1.5)  # MixMonitor closes its files after the hang-up
    finally:
        if not run.task.done():
            await run.stop()
        await client.aclose()
        await proxy.aclose()

    files = {CUSTOMER: LIVE_RECORDINGS / f"heard-{CUSTOMER}-{NUMBER.lstrip('+')}.wav",
             A: LIVE_RECORDINGS / f"heard-{A}-{world.a}.wav", B: LIVE_RECORDINGS / f"heard-{B}-{world.b}.wav"}

    def hears(party: int, tone: int, stretch: str) -> bool:
        """Whether ``party`` heard ``tone`` in the middle of ``stretch`` (its file ends when everybody hung up)."""
        data, rate = samples(files[party])
        length = len(data) / rate
        start, stop = marks[stretch]
        margin = 0.5
        return heard(files[party], tone, length - (end - start) + margin, length - (end - stop) - margin)

    expected = {
        "connected": {(CUSTOMER, A): True, (A, CUSTOMER): True},
        "hold": {(CUSTOMER, A): False, (A, CUSTOMER): False},
        "resumed": {(CUSTOMER, A): True, (A, CUSTOMER): True},
        "conference": {(CUSTOMER, A): True, (CUSTOMER, B): True, (A, B): True, (B, A): True, (B, CUSTOMER): True},
        "left": {(CUSTOMER, A): True, (CUSTOMER, B): False, (B, CUSTOMER): False},
        "transferred": {(CUSTOMER, B): True, (B, CUSTOMER): True, (CUSTOMER, A): False, (A, CUSTOMER): False},
        "whisper": {(B, SUPERVISOR): True, (CUSTOMER, SUPERVISOR): False, (CUSTOMER, B): True},
        "barge": {(B, SUPERVISOR): True, (CUSTOMER, SUPERVISOR): True},
        "listen": {(B, SUPERVISOR): False, (CUSTOMER, SUPERVISOR): False, (CUSTOMER, B): True},
    }
    assert set(expected) == set(STRETCHES)
    got = {stretch: {pair: hears(*pair, stretch) for pair in pairs} for stretch, pairs in expected.items()}
    assert got == expected
    # each monitor rang the supervisor's phone anew: its file is the last one's, listening (B and the customer)
    listened = LIVE_RECORDINGS / f"heard-{SUPERVISOR}-{world.supervisor}.wav"
    data, rate = samples(listened)
    length = len(data) / rate
    assert length > PHASE_S and heard(listened, CUSTOMER, 0.5, length - 0.5) and heard(listened, B, 0.5, length - 0.5)
    if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
        proxy.write(LIVE_CAPTURES / "call_controls.ami",
                    note=f"live: hold, conference, transfer, whisper, barge, listen against {asterisk.version}")
