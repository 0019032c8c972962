"""The whole path of a call recording on a real Asterisk 22: the dialler engine (its ``CallRecorder``) on the AMI
adapter, the shipped dialplan's MixMonitor as the call joins the agent's room, the file read back when Asterisk has
closed it and kept in the recording store: one ``Recording`` row, its duration the attempt's talk time. The AMI
actions themselves (MixMonitorMute on and off, StopMixMonitor) are the replayed scenario
``recorded_call_muted_and_stopped`` (test_live_ami.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.adapters.recordings_simulated import silent_share
from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from callcenter.bootstrap import App
from callcenter.parts.dialer import dialer_deps
from callcenter.ports.recordings import sha256_hex, wav_duration_s
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.recordings import RecordingService
from callcenter.store.db import transaction
from callcenter.store.models.recordings import Recording
from tests.live.asterisk import LIVE_RECORDINGS, LiveAsterisk
from tests.live.test_live_engine import OPTIONS, Running, Wall, attempts, campaign, until

pytestmark = pytest.mark.db


async def test_the_engine_records_an_agent_call_on_asterisk(core: App, asterisk: LiveAsterisk, tmp_path: Path) -> None:
    asterisk.cli("channel request hangup all")
    wall = Wall(core.clock())
    core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), wall)
    _, staff = campaign(core, {"a": "Local/{staff}@sim-agent-phones"}, ["+8613900000004"])  # talks 5 s
    client = AmiClient(AmiServer(*asterisk.ami_address, "callcenter", asterisk.ami_secret),
                       replace(OPTIONS, dial_template="Local/{digits}@sim-talker", recordings_dir=str(LIVE_RECORDINGS)))
    await client.start()
    deps = replace(dialer_deps(core, telephony=client), wall=wall, process_lease=timedelta(seconds=2))
    assert deps.recorder is not None
    engine = DialerEngine(deps, client, dialer_id="live-rec", sync_s=0.5, tick_s=0.2, wallboard_s=5.0,
                          abandon_after_s=2.0, originate_timeout_s=15)
    def stored() -> bool:
        with transaction(core.sessions) as s:
            return any(r.size_bytes > 0 for r in s.scalars(select(Recording)))

    run = Running(engine)
    try:
        await until(lambda: len(attempts(core)) == 1 and attempts(core)[0].ended_at is not None)
        await until(stored)  # the file is kept once Asterisk has closed it
    finally:
        await run.stop()
        await client.aclose()
    [attempt] = attempts(core)
    assert attempt.outcome == "human" and attempt.agent_id == staff["a"] and attempt.talk_s is not None
    with transaction(core.sessions) as s:
        [rec] = s.scalars(select(Recording)).all()
        s.expunge(rec)
    data = core.recordings.store.get(rec.storage_key)
    assert (rec.call_ref, rec.agent_id, rec.attempt_id, rec.state) == (attempt.call_id, staff["a"], attempt.id,
                                                                       "stopped")
    assert rec.size_bytes == len(data) and rec.sha256 == sha256_hex(data)
    assert rec.duration_s == pytest.approx(wav_duration_s(data), abs=0.01)
    assert rec.duration_s == pytest.approx(attempt.talk_s, abs=0.3)  # the file is the talk time
    print(f"recording {rec.duration_s:.2f} s, talk time {attempt.talk_s:.2f} s")
    assert silent_share(data, 0.3, rec.duration_s - 0.3) < 0.1  # the customer's tone throughout
    assert (LIVE_RECORDINGS / f"{attempt.call_id}-{staff['a']}.wav").read_bytes() == data
