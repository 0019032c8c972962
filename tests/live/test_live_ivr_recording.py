"""A hotline session recorded on a real Asterisk 22 (issue 14): the shipped [hotline] runs our FastAGI flow on the
store's IVR backend with recording on (the dialplan's CC_RECORDINGS_DIR set, as an operator sets it); the engine
records the session in MixMonitor segments and stops while the caller keys the PIN. The caller (Local/s@sim-caller)
keys language, account and PIN, then ``1`` for balances, and hangs up while they are read; a tone is heard from
their side all along (a real phone's media never stops: with no frames either way MixMonitor writes nothing). Kept: one recording of
the session, linked to it and to the client, the PIN span silent and marked, the file as long as the session.
With CALLCENTER_LIVE_RECORD=1 the AGI traffic becomes tests/fixtures/asterisk-22-live/hotline_recorded.agi,
which tests/adapters/test_live_captures.py replays."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.adapters.ivr import prompts
from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.adapters.ivr.agi_replay import load_agi_capture
from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.adapters.recordings_simulated import silent_share
from callcenter.bootstrap import App
from callcenter.ports.recordings import sha256_hex, wav_duration_s
from callcenter.services.ivr.recording import IvrRecorder
from callcenter.services.recordings import RecordingService
from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from callcenter.store.db import transaction
from callcenter.store.models import IvrSession
from callcenter.store.models.recordings import Recording
from tests.adapters.ami_scenarios import LIVE_CAPTURES, OPTIONS
from tests.adapters.handoff_world import KEYS, build_handoff_world
from tests.live.asterisk import AGI_PORT, LIVE_RECORDINGS, LiveAsterisk, live_binary
from tests.live.capture import AgiRecordingProxy, render_agi

pytestmark = pytest.mark.db
BALANCES_KEY, BALANCES_AFTER_S = "1", 8.0  # once the main menu plays


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    prompts.build(out, langs=("zh-CN",))
    return out


async def test_a_hotline_session_is_recorded_without_its_pin(core: App, rendered: Path, tmp_path: Path) -> None:
    binary = live_binary()
    assert binary is not None
    core.clock = lambda: datetime.now(timezone.utc)
    core.ivr._clock = core.clock  # type: ignore[attr-defined]  # the IVR records' clock: real time, as the files
    world = build_handoff_world(core)
    pbx = LiveAsterisk(binary, tmp_path / "ast", prompts=rendered)
    pbx.start()
    recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "store"), core.clock)
    recorder = IvrRecorder(recordings, core.sessions)
    config = AgiConfig(prompts_dir=Path("/nonexistent-on-the-pbx"), sound_prefix="cc", recorder=recorder,
                       recordings_dir=str(LIVE_RECORDINGS))  # Asterisk and the engine on one host: one folder
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
    proxy = await AgiRecordingProxy(("127.0.0.1", AGI_PORT), ("127.0.0.1", server.sockets[0].getsockname()[1])).start()
    try:
        async with server, AmiClient(AmiServer(*pbx.ami_address, "callcenter", pbx.ami_secret), OPTIONS) as ami:
            reply = await ami._send({"Action": "Originate", "Channel": "Local/s@sim-caller", "Context": "hotline",
                                     "Exten": "s", "Priority": "1", "Async": "true",
                                     "Variable": f"CC_TEST_KEYS={KEYS},CC_TEST_LATER={BALANCES_KEY},"
                                                 f"CC_TEST_PAUSE={BALANCES_AFTER_S},CC_TEST_TONE=440"}, as_list=False)
            assert reply.get("Response") == "Success"
            log = await pbx.log_once("Playing 'cc/zh-CN/available")  # the caller hears the balances
            await asyncio.sleep(1.0)
            pbx.cli("channel request hangup all")  # the caller hangs up while the balances are read
            await asyncio.wait_for(app.wait_idle(), 15)
            await asyncio.wait_for(recorder.drain(), 15)
        await proxy.aclose()
        assert "Playing 'cc/zh-CN/available" in log, log[-3000:]
        with transaction(core.sessions) as s:
            [rec] = s.scalars(select(Recording)).all()
            session = s.get(IvrSession, rec.ivr_session_id)
            assert session is not None and session.client_id == world.client_id
            s.expunge_all()
        assert (rec.client_id, rec.agent_id, rec.state, rec.retention_class) == (world.client_id, None, "stopped",
                                                                                 "ordinary")
        assert [m["kind"] for m in rec.marks] == ["pin"]
        [(start, end)] = rec.paused_spans
        data = recordings.store.get(rec.storage_key)
        assert rec.sha256 == sha256_hex(data) and rec.duration_s == pytest.approx(wav_duration_s(data), abs=0.01)
        assert session.ended_at is not None
        talk = (session.ended_at - session.started_at).total_seconds()
        print(f"recording {rec.duration_s:.2f} s (PIN span {start:.2f}-{end:.2f} s), session {talk:.2f} s")
        assert rec.duration_s == pytest.approx(talk, abs=1.0)  # the file's timeline is the session's
        assert end - start > 1.0  # six keys at 250 ms and the PIN prompt before them
        assert silent_share(data, start + 0.02, end - 0.02) == 1.0  # nothing of the PIN in the file
        # the caller's tone is in the file everywhere else: before the PIN (language, account) and after it
        before, after = silent_share(data, 0.1, start - 0.05), silent_share(data, end + 0.05, rec.duration_s - 0.3)
        assert before < 0.1 and after < 0.1, (before, after)
        [session_log] = proxy.sessions
        capture = tmp_path / "session.agi"
        capture.write_bytes(render_agi(session_log))
        [uniqueid] = [h.split(b": ", 1)[1].decode() for h in load_agi_capture(capture).header
                      if h.startswith(b"agi_uniqueid: ")]
        segments = sorted(LIVE_RECORDINGS.glob(f"ivr-{uniqueid}-*.wav"))
        assert [p.name for p in segments] == [f"ivr-{uniqueid}-1.wav", f"ivr-{uniqueid}-2.wav"]
        if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
            proxy.write(LIVE_CAPTURES / "hotline_recorded.agi",
                        note=f"live: a recorded hotline session (MixMonitor stopped for the PIN) against {pbx.version}")
    finally:
        await proxy.aclose()
        app.close()
        pbx.kill()
