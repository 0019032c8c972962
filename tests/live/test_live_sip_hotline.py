"""A client calls the hotline over real SIP (issue 18): a sipp UAC (tests/live/sipp/caller.xml, the test-only
endpoint ``sim-sip-caller`` whose context is the shipped [hotline]) keys language, account and PIN as RFC 2833
events (sipp's bundled DTMF pcaps, re-timed by tests/live/dtmf.py), then "1" once the main menu plays; the engine's
FastAGI flow on the store's IVR backend authenticates the client and reads the balances. The test asserts what the
IVR recorded in the database. With CALLCENTER_LIVE_RECORD=1 the AGI traffic becomes
tests/fixtures/asterisk-22-live/hotline_sip_dtmf.agi, which tests/adapters/test_live_captures.py replays."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.adapters.ivr import prompts
from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.bootstrap import App
from callcenter.store.db import transaction
from callcenter.store.models import IvrSession
from tests.adapters.ami_scenarios import LIVE_CAPTURES
from tests.adapters.handoff_world import KEYS, build_handoff_world
from tests.live.asterisk import AGI_PORT, SIP_PORT, LiveAsterisk, live_binary
from tests.live.capture import AgiRecordingProxy
from tests.live.dtmf import key_pcap
from tests.live.test_live_sip import SCENARIOS, free_udp_port

pytestmark = pytest.mark.db
SIPP = shutil.which("sipp")
BALANCES_KEY, BALANCES_AFTER_S = "1", 8.0  # once the main menu plays (as tests/live/test_live_ivr_recording.py)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    prompts.build(out, langs=("zh-CN",))
    return out


async def test_sip_caller_keys_rfc2833_dtmf_into_the_hotline_and_hears_the_balances(core: App, rendered: Path,
                                                                                    tmp_path: Path) -> None:
    if SIPP is None:
        pytest.fail("sipp is required (Debian's sip-tester)")
    binary = live_binary()
    assert binary is not None
    core.clock = lambda: datetime.now(timezone.utc)
    core.ivr._clock = core.clock  # type: ignore[attr-defined]  # the IVR records' clock: real time
    world = build_handoff_world(core)
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=rendered)
    pbx.start()
    logs = tmp_path / "sipp"
    logs.mkdir()
    key_pcap(KEYS, logs / "keys.pcap", later=BALANCES_KEY, later_after_s=BALANCES_AFTER_S)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc")
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
    proxy = await AgiRecordingProxy(("127.0.0.1", AGI_PORT), ("127.0.0.1", server.sockets[0].getsockname()[1])).start()
    host = pbx.bind
    caller = subprocess.Popen([SIPP, f"{host}:{SIP_PORT}", "-sf", str(SCENARIOS / "caller.xml"), "-s", "s",
                               "-i", host, "-p", str(free_udp_port(host)), "-mp", str(free_udp_port(host)),
                               "-m", "1", "-nostdin", "-trace_err", "-error_file", str(logs / "caller.err")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=logs)
    try:
        async with server:
            log = await pbx.log_once("Playing 'cc/zh-CN/available", 60)  # the caller hears the balances
            await asyncio.sleep(1.0)
            pbx.cli("channel request hangup all")  # Asterisk hangs up while the balances are read (a BYE to sipp)
            await asyncio.wait_for(app.wait_idle(), 15)
        await proxy.aclose()
        code = caller.wait(15)
        err = logs / "caller.err"
        assert code == 0, err.read_text(errors="replace") if err.exists() else code
        assert "Playing 'cc/zh-CN/available" in log, log[-3000:]
        assert "PJSIP/sim-sip-caller-" in log, log[-3000:]  # the call came in over SIP, not a Local channel
        played = [line.split("Playing '", 1)[1].split("'", 1)[0] for line in log.splitlines() if "Playing '" in line]
        assert [p for p in played if p.startswith("cc/zh-CN/main_menu")], played  # the "1" answered the menu
        with transaction(core.sessions) as s:
            [session] = s.scalars(select(IvrSession)).all()
            assert session.client_id == world.client_id  # account and PIN keyed over RTP authenticated the client
            assert session.ended_at is not None and not session.handed_off, session
            end_reason = session.end_reason
        assert end_reason == "caller_hangup", end_reason
        if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
            proxy.write(LIVE_CAPTURES / "hotline_sip_dtmf.agi",
                        note=f"live: a SIP caller's RFC 2833 keys into the hotline against {pbx.version}")
    finally:
        await proxy.aclose()
        app.close()
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        pbx.kill()
