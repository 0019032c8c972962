"""Hotline (IVR) sessions recorded on Twilio (issue 14, as on Asterisk in test_ivr_recording.py): a phone order
placed over signed webhooks as Twilio posts them, the twilio library's REST calls answered by the fake of Twilio's
API behind its HTTP-client hook. The session's start starts a Recordings-API recording of the caller's call; the
webhook that asks for the PIN, and the one that asks for the trading password, pause it first (``paused``,
``pauseBehavior=silence``) and the webhook that brings the secret resumes it; the signed completed callback fetches
the media and keeps one recording of the session, its two secret spans marked ``pin``, linked to the session and
the client, under ``order``, named by the order's confirmation. A forged callback, one naming another recording,
and a replay keep nothing more."""

from __future__ import annotations

import io
import warnings
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from callcenter.adapters.ivr.twilio_voice import make_router
from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.adapters.recordings_simulated import silent_share
from callcenter.bootstrap import App
from callcenter.ports.recordings import sha256_hex, wav_duration_s
from callcenter.services.ivr.flow import load_flow
from callcenter.services.ivr.recording import IvrRecorder
from callcenter.services.ivr.store_backend import StoreCallStateStore
from callcenter.services.recordings import RecordingService
from callcenter.store.db import transaction
from callcenter.store.models import IvrSession, Order
from callcenter.store.models.orders import OrderConfirmation
from callcenter.store.models.recordings import Recording
from tests.adapters.twilio_api import ACCOUNT, TwilioApi
from tests.db.test_ivr_orders import CALLER, agi_steps, client  # noqa: F401 - the client fixture

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.db
TOKEN, PUBLIC, CALL = "test-auth-token-0123456789abcdef", "https://ivr.example.com", "CA" + "7" * 32
STEP_S = 3.0  # each webhook comes this long after the one before
RATE = 8000


class Clock:
    def __init__(self) -> None:
        self.t0 = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
        self.s = 0.0

    def __call__(self) -> datetime:
        return self.t0 + timedelta(seconds=self.s)


class StampedApi(TwilioApi):
    """The fake REST API, each request stamped with the test's clock (what Twilio's recorder heard when)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(ACCOUNT)
        self.clock = clock

    def request(self, method, uri, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().request(method, uri, *args, **kwargs)
        self.requests[-1]["at"] = self.clock.s
        return response


def twilio_media(start: float, end: float, paused: list[tuple[float, float]]) -> bytes:
    """The WAV Twilio would keep: the call (a tone) from ``start`` to ``end``, silence while paused."""
    frames = bytearray()
    for i in range(round((end - start) * RATE)):
        t = start + i / RATE
        frames += b"\x00\x00" if any(a <= t < b for a, b in paused) else (b"\x10\x00" if i % 2 else b"\xf0\xff")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return out.getvalue()


def test_a_twilio_phone_order_is_one_recording_paused_for_its_pin_and_trading_password(
        core: App, client: tuple[int, str], tmp_path: Path) -> None:  # noqa: F811
    client_id, main = client
    clock = Clock()
    api = StampedApi(clock)
    recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "store"), core.clock)
    app = FastAPI()
    app.include_router(make_router(core.ivr, load_flow("hotline"), TOKEN, PUBLIC,
                                   StoreCallStateStore(core.sessions, core.clock), action_inline_s=10, clock=clock,
                                   rest=Client(ACCOUNT, TOKEN, http_client=api),
                                   recorder=IvrRecorder(recordings, core.sessions)))
    web = TestClient(app)

    def post(path: str, params: dict[str, str], token: str | None = None, key: str = TOKEN) -> Any:
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": RequestValidator(key).compute_signature(PUBLIC + path, params)}
        if token:
            headers["I-Twilio-Idempotency-Token"] = token
        return web.post(path, content=urlencode(params), headers=headers)

    base = {"CallSid": CALL, "From": CALLER, "AccountSid": ACCOUNT}
    assert post("/twilio/voice", base).status_code == 200
    [create] = api.recording_creates(CALL)
    assert create["RecordingStatusCallback"] == f"{PUBLIC}/twilio/voice/recording"
    assert create["RecordingChannels"] == "mono" and create["RecordingTrack"] == "both"
    started = [r["at"] for r in api.requests if r["uri"].endswith(f"/Calls/{CALL}/Recordings.json")][0]

    steps = agi_steps(main, core.orders.quote("600000").limit_up)
    changes: list[list[dict[str, Any]]] = []  # the recording's updates made in each webhook
    for n, digits in enumerate(steps):
        clock.s += STEP_S
        before = len(api.recording_updates(CALL))
        answer = post(f"/twilio/voice/input?step={n}", {**base, "Digits": digits}, token=f"tok-{n}")
        assert answer.status_code == 200
        changes.append([d for _, d in api.recording_updates(CALL)[before:]])
    paused = {"Status": "paused", "PauseBehavior": "silence"}
    # the account number's webhook asks for the PIN (paused before its <Gather>), the PIN's resumes; the
    # confirmation's asks for the trading password, the trading password's resumes; no other webhook touches it
    last = len(steps) - 1
    assert changes[1] == [paused] and changes[2] == [{"Status": "in-progress"}]
    assert changes[last - 1] == [paused] and changes[last] == [{"Status": "in-progress"}]
    assert all(c == [] for i, c in enumerate(changes) if i not in (1, 2, last - 1, last))
    with transaction(core.sessions) as s:
        [order] = s.scalars(select(Order)).all()
        assert order.channel == "twilio"

    clock.s += STEP_S
    assert post("/twilio/voice/status", {**base, "CallStatus": "completed", "CallDuration": "40"}).status_code == 204
    ended = clock.s
    pause_at = [r["at"] for r in api.requests if r["data"].get("Status") == "paused"]
    resume_at = [r["at"] for r in api.requests if r["data"].get("Status") == "in-progress"]
    spans = [(a - started, b - started) for a, b in zip(pause_at, resume_at)]
    assert len(spans) == 2
    [(re_sid, _)] = {(sid, 0) for sid, _ in api.recording_updates(CALL)}
    api.media[re_sid] = twilio_media(started, ended, [(a + started, b + started) for a, b in spans])

    done = {**base, "RecordingSid": re_sid, "RecordingStatus": "completed", "RecordingDuration": str(int(ended))}
    # forged (another key), and signed but naming a recording this call never had: nothing kept, nothing fetched
    assert post("/twilio/voice/recording", done, key="not-the-token").status_code == 403
    assert post("/twilio/voice/recording", {**done, "RecordingSid": "RE" + "9" * 32}).status_code == 204
    assert api.to(".wav", method="GET") == [] and recordings_of(core) == []

    assert post("/twilio/voice/recording", done, token="rec-1").status_code == 204
    assert post("/twilio/voice/recording", done, token="rec-2").status_code == 204  # replayed: no second row
    assert len(api.to(f"/Recordings/{re_sid}.wav", method="GET")) == 1
    [rec] = recordings_of(core)
    with transaction(core.sessions) as s:
        session = s.scalars(select(IvrSession).where(IvrSession.call_id == CALL)).one()
        [confirmation] = s.scalars(select(OrderConfirmation)).all()
        assert confirmation.recording_id == rec.id and confirmation.ivr_session_id == session.id
        assert (rec.ivr_session_id, rec.client_id, rec.agent_id) == (session.id, client_id, None)
    assert rec.state == "stopped" and rec.retention_class == "order" and rec.call_ref == CALL
    assert [m["kind"] for m in rec.marks] == ["pin", "pin"]
    assert [tuple(x) for x in rec.paused_spans] == [pytest.approx(span, abs=0.01) for span in spans]
    data = recordings.store.get(rec.storage_key)
    assert rec.sha256 == sha256_hex(data) and rec.duration_s == pytest.approx(wav_duration_s(data), abs=0.01)
    for start, end in rec.paused_spans:
        assert end - start >= STEP_S - 0.01 and silent_share(data, start + 0.05, end - 0.05) == 1.0
    assert silent_share(data, 0.05, spans[0][0] - 0.05) < 0.1  # the menus and the read-back were recorded


def test_a_session_without_a_recorder_starts_no_recording(core: App, client: tuple[int, str]) -> None:  # noqa: F811
    api = StampedApi(Clock())
    app = FastAPI()
    app.include_router(make_router(core.ivr, load_flow("hotline"), TOKEN, PUBLIC,
                                   StoreCallStateStore(core.sessions, core.clock), action_inline_s=10,
                                   rest=Client(ACCOUNT, TOKEN, http_client=api)))
    params = {"CallSid": CALL, "From": CALLER}
    r = TestClient(app).post("/twilio/voice", content=urlencode(params), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/voice", params)})
    assert r.status_code == 200 and api.requests == []


def recordings_of(core: App) -> list[Recording]:
    with transaction(core.sessions) as s:
        rows = list(s.scalars(select(Recording).order_by(Recording.id)))
        s.expunge_all()
    return rows
