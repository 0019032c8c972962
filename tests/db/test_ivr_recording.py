"""Hotline (IVR) sessions recorded on Asterisk (issue 14): the FastAGI carrier records a session in MixMonitor
segments, stopped while the caller types a secret (PIN, trading password), and the engine keeps one recording of
the session — the segments stitched with silence for each secret span, the spans marked ``pin``, linked to the IVR
session and its client; a confirmed phone order makes it an ``order`` recording named by the order's confirmation
record. Driven against the store (StoreIvrBackend -> OrderService) through the fake Asterisk, which records as
MixMonitor does (a tone for as long as the recording runs) and notes which answers were given while it ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call
from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.adapters.recordings_simulated import silent_share
from callcenter.bootstrap import App
from callcenter.ports.recordings import sha256_hex, wav_duration_s
from callcenter.services.ivr.recording import IvrRecorder
from callcenter.services.recordings import RecordingService
from callcenter.store.db import transaction
from callcenter.store.models import IvrSession
from callcenter.store.models.orders import OrderConfirmation
from callcenter.store.models.recordings import Recording
from tests.db.test_ivr_orders import PIN, TPWD, agi_steps, client  # noqa: F401 - the client fixture

pytestmark = pytest.mark.db
TYPING_S = 0.25


async def recorded_call(core: App, tmp_path: Path, inputs: list[str], uniqueid: str, *,
                        dialplan_records: bool = True) -> tuple[FakeCall, RecordingService]:
    asterisk_dir = tmp_path / "asterisk-rec"  # the dialplan's CC_RECORDINGS_DIR (here also the engine's view)
    recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "store"), core.clock)
    recorder = IvrRecorder(recordings, core.sessions, file_wait_s=2.0)
    server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=AgiConfig(
        prompts_dir=Path("/p"), render_text=lambda text, lang: "name", recorder=recorder,
        recordings_dir=str(asterisk_dir)))
    port = server.sockets[0].getsockname()[1]
    variables = {"CC_RECORDINGS_DIR": str(asterisk_dir)} if dialplan_records else {}
    async with server:
        call = await run_fake_call("127.0.0.1", port, FakeCall(list(inputs), uniqueid=uniqueid,
                                                               variables=variables, typing_s=TYPING_S))
        await app.wait_idle()
        await recorder.drain()
    app.close()
    return call, recordings


def recordings_of(core: App) -> list[Recording]:
    with transaction(core.sessions) as s:
        rows = list(s.scalars(select(Recording).order_by(Recording.id)))
        s.expunge_all()
    return rows


def between(spans: list[list[float]], data: bytes) -> list[tuple[float, float]]:
    """The stretches of the file outside the paused spans (some margin at each edge)."""
    edges = [0.0] + [x for span in spans for x in span] + [wav_duration_s(data)]
    return [(a + 0.05, b - 0.05) for a, b in zip(edges[::2], edges[1::2]) if b - a > 0.15]


async def test_a_phone_order_session_is_one_recording_without_its_secrets(
        core: App, client: tuple[int, str], tmp_path: Path) -> None:  # noqa: F811
    client_id, main = client
    inputs = agi_steps(main, core.orders.quote("600000").limit_up) + ["hangup"]
    call, recordings = await recorded_call(core, tmp_path, inputs, "agi-rec-buy")
    # the caller's PIN and trading password were typed while nothing recorded; the menu choices were recorded
    assert PIN not in call.recorded_answers and TPWD not in call.recorded_answers
    assert "600000" in call.recorded_answers and "6" in call.recorded_answers
    stops = [c for c in call.commands("EXEC") if "StopMixMonitor" in c]
    assert len(call.commands("EXEC MixMonitor")) == 3 and len(stops) == 3  # 3 segments around 2 secrets
    [rec] = recordings_of(core)
    with transaction(core.sessions) as s:
        session = s.scalars(select(IvrSession).where(IvrSession.call_id == rec.call_ref)).one()
        [confirmation] = s.scalars(select(OrderConfirmation)).all()
        assert (rec.ivr_session_id, rec.client_id, rec.agent_id) == (session.id, client_id, None)
        assert confirmation.recording_id == rec.id and confirmation.ivr_session_id == session.id
    assert rec.state == "stopped" and rec.retention_class == "order"
    assert [m["kind"] for m in rec.marks] == ["pin", "pin"] and len(rec.paused_spans) == 2
    data = recordings.store.get(rec.storage_key)
    assert rec.sha256 == sha256_hex(data) and rec.size_bytes == len(data)
    assert rec.duration_s == pytest.approx(wav_duration_s(data), abs=0.01)
    for start, end in rec.paused_spans:  # each secret span: at least the typing time, silence in the file
        assert end - start >= TYPING_S - 0.02
        assert silent_share(data, start + 0.02, end - 0.02) == 1.0
    for start, end in between(rec.paused_spans, data):  # the rest: the call as recorded (the fake's tone)
        assert silent_share(data, start, end) < 0.1
    assert len(list((tmp_path / "asterisk-rec").glob("*.wav"))) == 3  # Asterisk's segments stay where it wrote them


async def test_a_caller_hanging_up_while_typing_the_pin_leaves_a_recording_silent_to_its_end(
        core: App, client: tuple[int, str], tmp_path: Path) -> None:  # noqa: F811
    client_id, main = client
    call, recordings = await recorded_call(core, tmp_path, ["1", main, "hangup"], "agi-rec-cut")
    assert call.recorded_answers == ["1", main]
    [rec] = recordings_of(core)
    assert rec.retention_class == "ordinary" and rec.client_id is None  # never authenticated
    [(start, end)] = rec.paused_spans
    data = recordings.store.get(rec.storage_key)
    assert end == pytest.approx(rec.duration_s, abs=0.05)
    assert silent_share(data, start + 0.02, wav_duration_s(data)) == 1.0


async def test_a_dialplan_that_records_nothing_gets_no_recording_commands(
        core: App, client: tuple[int, str], tmp_path: Path) -> None:  # noqa: F811
    _, main = client
    call, _ = await recorded_call(core, tmp_path, ["1", main, PIN, "hangup"], "agi-rec-off", dialplan_records=False)
    assert call.commands("GET VARIABLE CC_RECORDINGS_DIR") and not call.commands("EXEC")
    assert recordings_of(core) == []
