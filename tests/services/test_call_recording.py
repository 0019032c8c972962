"""Every agent call on the simulated PBX is recorded by the dialler engine (``services.call_recording``): a real WAV
in the recording store whose duration is the attempt's talk time; the client typing a PIN the agent asked for is
a silent span marked ``pin`` (the key tones never reach the file); the agent's pause button; and a call put on
hold and transferred (the recorder's hold and transfer hooks) gives two linked legs whose durations add up to
the talk time, the hold marked. Virtual time throughout (``VirtualClock``), the engine driven as the desk tests do."""

from __future__ import annotations

import array
import io
import wave
from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.adapters.recordings_simulated import DTMF, RATE, silent_share
from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock
from callcenter.bootstrap import App
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.parts.dialer import dialer_deps
from callcenter.ports.recordings import sha256_hex, wav_duration_s
from callcenter.services.call_commands import ClaimedCommand
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.recordings import RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import Attempt
from callcenter.store.models.recordings import Recording
from tests.factories import make_client, make_group, make_staff

pytestmark = pytest.mark.db
BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)
PHONE = "+8613900000019"


class World:
    def __init__(self, core: App, tmp: Path, talk_s: float = 40.0) -> None:
        self.core, self.vclock = core, VirtualClock()
        core.clock = self.wall
        core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp / "rec"), self.wall)
        g = make_group(core, "录音")
        self.ag1 = make_staff(core, "rec-ag1", "pw-rec-ag1-123", "agent", group_id=g)
        self.ag2 = make_staff(core, "rec-ag2", "pw-rec-ag2-123", "agent", group_id=g)
        self.client, _ = make_client(core, accounts=[(1_000_00, 0)], group_id=g)
        self.cid = dialer.create_campaign(core, name="回访录音", kind="callback", script_id="cold_call",
                                          dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                          days="every")
        dialer.assign_campaign(core, self.cid, staff_ids=[self.ag1])
        add_leads(core, self.cid, [LeadRow(0, PHONE, "客户", 0, None, self.client)])
        dialer.start_campaign(core, self.cid)
        dialer.agent_login(core, self.ag1, campaign_id=self.cid, phone=f"Local/{self.ag1}@phones")
        dialer.agent_ready(core, self.ag1)
        self.pbx = SimulatedPbx(CustomerModel(talk_mean_s=talk_s, talk_sd_s=0.001), clock=self.vclock,
                                outcomes={PHONE: "human"})
        self.engine = DialerEngine(dialer_deps(core, telephony=self.pbx), self.pbx, dialer_id="rec", clock=self.vclock,
                                   campaign_ids={self.cid})
        assert self.engine.deps.recorder is not None

    def wall(self) -> datetime:
        return BASE + timedelta(seconds=self.vclock.time())

    async def drive(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        end = self.vclock.time() + seconds
        while self.vclock.time() < end and not (until and until()):
            targets = [self.engine.next_deadline(), end]
            nxt = self.vclock.next_time()
            if nxt is not None:
                targets.append(nxt)
            self.vclock.run_until(max(min(targets), self.vclock.time()))
            for event in self.pbx.stream.pending():
                await self.engine.handle(event)
            await self.engine.tick()
            # what the engine's commands made the PBX report (the Connected of its Connect) is read at once, as
            # the engine's reader does in real time, before the clock moves on
            while events := self.pbx.stream.pending():
                for event in events:
                    await self.engine.handle(event)

    def connected_call(self) -> str:
        [call] = [c for c in self.engine.calls.values() if c.connected]
        return call.call_id

    def contact_id(self) -> int:
        return run_in_transaction(self.core.sessions, lambda s: s.scalars(
            select(DeskContact.id).where(DeskContact.agent_id == self.ag1)).one())

    async def finish(self) -> None:
        await self.drive(300, until=lambda: not self.pbx.calls)
        assert not self.pbx.calls
        await self.engine.drain_recordings()

    def recordings(self) -> list[Recording]:
        def work(s: Any) -> list[Recording]:
            rows = list(s.scalars(select(Recording).order_by(Recording.id)))
            s.expunge_all()
            return rows

        return run_in_transaction(self.core.sessions, work)

    def attempt(self) -> Attempt:
        def work(s: Any) -> Attempt:
            row = s.scalars(select(Attempt).where(Attempt.campaign_id == self.cid)).one()
            s.expunge(row)
            return row

        return run_in_transaction(self.core.sessions, work)

    def audio(self, rec: Recording) -> bytes:
        assert self.core.recordings is not None
        return self.core.recordings.store.get(rec.storage_key)


@pytest.fixture
async def world(core: App, tmp_path: Path) -> World:
    w = World(core, tmp_path)
    await w.pbx.start()
    return w


def _goertzel(samples: array.array[int], freq: float) -> float:
    import math

    k = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def _samples(data: bytes, start_s: float, end_s: float) -> array.array[int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        out = array.array("h")
        out.frombytes(w.readframes(w.getnframes()))
    return out[int(start_s * RATE):int(end_s * RATE)]


async def test_a_plain_agent_call_is_recorded_with_the_talk_time(world: World) -> None:
    await world.drive(30, until=lambda: any(c.connected for c in world.engine.calls.values()))
    call_id = world.connected_call()
    assert world.pbx._recording_of(call_id) is not None  # the engine started it on connect
    await world.finish()
    [rec] = world.recordings()
    att = world.attempt()
    assert att.outcome == "human" and att.talk_s is not None
    data = world.audio(rec)
    assert (rec.call_ref, rec.agent_id, rec.client_id, rec.attempt_id, rec.campaign_id) == (
        call_id, world.ag1, world.client, att.id, world.cid)
    assert rec.desk_contact_id == world.contact_id() and rec.state == "stopped" and rec.parent_id is None
    assert rec.retention_class == "callback"  # a call-back campaign's calls are kept as 回访 records
    assert rec.duration_s == pytest.approx(att.talk_s, abs=0.01) == pytest.approx(wav_duration_s(data), abs=0.01)
    assert rec.sha256 == sha256_hex(data) and rec.size_bytes == len(data)
    assert rec.paused_spans == [] and rec.marks == []
    assert silent_share(data, 0, rec.duration_s) < 0.9  # speech, not an empty file


async def test_a_pin_typed_mid_call_is_a_marked_silent_span(world: World) -> None:
    await world.drive(30, until=lambda: any(c.connected for c in world.engine.calls.values()))
    call_id = world.connected_call()
    await world.drive(8)
    contact = world.contact_id()
    # the agent asks the client to key in the trading password: the "secure entry" command pauses first
    secure = ClaimedCommand(1, "record_secure", contact, None, world.ag1, world.wall())
    assert await world.engine.command_requested(secure)
    world.pbx.client_keys(call_id, "135790#")
    await world.drive(4)
    assert await world.engine.command_requested(ClaimedCommand(2, "record_resume", contact, None, world.ag1,
                                                               world.wall()))
    world.pbx.client_keys(call_id, "5")  # a key after the resume is on the recording, as any sound is
    await world.finish()
    [rec] = world.recordings()
    [(a, b)] = rec.paused_spans
    assert [(m["kind"], m["start"], m["end"]) for m in rec.marks] == [("pin", a, b)]
    assert b - a == pytest.approx(4.0, abs=0.01)
    data = world.audio(rec)
    assert silent_share(data, a, b) == 1.0  # the PIN span is silence: no key tone
    low, high = DTMF["1"]
    assert _goertzel(_samples(data, a, b), high) == 0.0
    low5, high5 = DTMF["5"]
    after = _samples(data, b, b + 0.12)
    assert _goertzel(after, low5) > 1e9 and _goertzel(after, high5) > 1e9  # the key after the resume is there
    assert rec.duration_s == pytest.approx(world.attempt().talk_s, abs=0.01)


async def test_the_agents_pause_button_and_a_command_for_a_call_not_theirs(world: World) -> None:
    await world.drive(30, until=lambda: any(c.connected for c in world.engine.calls.values()))
    await world.drive(5)
    contact = world.contact_id()
    assert not await world.engine.command_requested(ClaimedCommand(1, "record_pause", contact, None, world.ag2,
                                                                   world.wall()))  # not ag2's call
    assert await world.engine.command_requested(ClaimedCommand(2, "record_pause", contact, None, world.ag1,
                                                               world.wall()))
    await world.drive(3)
    await world.finish()  # still paused at the hang-up: the span closes at the end
    [rec] = world.recordings()
    [(a, b)] = rec.paused_spans
    assert b == pytest.approx(rec.duration_s, abs=0.01) and rec.marks[0]["kind"] == "agent"
    assert silent_share(world.audio(rec), a, b) == 1.0


async def test_a_call_with_a_hold_and_a_transfer_gives_linked_legs_matching_the_talk_time(world: World) -> None:
    """The agent's hold, resume and transfer buttons, carried out by the engine as call commands, reach the
    recorder: the hold is a marked stretch of the leg, the transfer starts a new leg linked to the first."""
    await world.drive(30, until=lambda: any(c.connected for c in world.engine.calls.values()))
    call_id = world.connected_call()
    contact = world.contact_id()
    dialer.assign_campaign(world.core, world.cid, staff_ids=[world.ag1, world.ag2])
    dialer.agent_login(world.core, world.ag2, campaign_id=world.cid, phone=f"Local/{world.ag2}@phones")
    dialer.agent_ready(world.core, world.ag2)

    async def control(n: int, kind: str, **args: Any) -> None:
        answer = await world.engine.command_requested(ClaimedCommand(n, kind, contact, None, world.ag1,
                                                                     world.wall(), args))
        assert answer[0] is True, (kind, answer)

    await world.drive(5)
    await control(1, "hold")
    await world.drive(5)
    await control(2, "resume")
    await world.drive(5)
    await control(3, "transfer", target=world.ag2)
    await world.drive(1)
    await world.finish()
    first, second = world.recordings()
    att = world.attempt()
    assert (first.agent_id, second.agent_id, second.parent_id) == (world.ag1, world.ag2, first.id)
    assert first.call_ref == second.call_ref == call_id and second.attempt_id == att.id
    assert att.connected_at == first.started_at and att.agent_id == world.ag2  # reached an agent at the first leg
    assert 15.0 <= first.duration_s <= 16.0  # until the colleague's leg connected, within the second driven
    assert first.duration_s + second.duration_s == pytest.approx(att.talk_s, abs=0.02)
    for rec in (first, second):
        assert wav_duration_s(world.audio(rec)) == pytest.approx(rec.duration_s, abs=0.01)
    [hold] = first.marks
    assert (hold["kind"], hold["start"], hold["end"]) == ("hold", pytest.approx(5.0, abs=0.01),
                                                          pytest.approx(10.0, abs=0.01))
    assert first.paused_spans == []  # a hold is marked, not cut: the client's side is still recorded


async def test_the_agent_screens_recording_buttons_reach_the_engine_through_call_commands(core: App,
                                                                                          tmp_path: Path) -> None:
    """The real web app: the agent's "client keys in a PIN" and "resume" buttons (POST .../recording) become call
    commands the engine's command loop carries out on the recording; a contact not theirs is refused."""
    import asyncio

    from callcenter.services.call_commands import command_loop
    from callcenter.store.models import CallCommand
    from tests.services.test_integration_desk_dialer import Stack, drive

    async with Stack(core) as stack:
        world = stack.world
        core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), stack.wall)
        ag1 = world.staff["ag1"]
        cid = dialer.create_campaign(core, name="录音按钮", kind="cold_leads", script_id="cold_call",
                                     dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                     days="every")
        dialer.assign_campaign(core, cid, staff_ids=[ag1])
        add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.mine)])
        dialer.start_campaign(core, cid)
        pbx = SimulatedPbx(CustomerModel(talk_mean_s=60.0, talk_sd_s=0.001), clock=stack.vclock,
                           outcomes={PHONE: "human"})
        engine = DialerEngine(dialer_deps(core, telephony=pbx), pbx, dialer_id="it", clock=stack.vclock,
                              campaign_ids={cid})
        await pbx.start()
        client, h = await stack.login("ag1")
        other, oh = await stack.login("ag2")
        stop = asyncio.Event()
        loop = asyncio.create_task(command_loop(core.sessions, core.bus, engine.dialer_id, engine.command_requested,
                                                stop, poll_s=0.05, clock=stack.wall))

        def done(n: int) -> bool:
            return run_in_transaction(core.sessions, lambda s: len(list(s.scalars(
                select(CallCommand).where(CallCommand.state == "done"))))) >= n

        async def settle(n: int) -> None:
            async def wait() -> None:
                while not done(n):
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(wait(), 10)

        try:
            assert (await client.post("/api/desk/state", json={"state": "ready"}, headers=h)).status_code == 200
            await drive(engine, pbx, stack.vclock, 30, until=lambda: any(c.connected for c in engine.calls.values()))
            contact = run_in_transaction(core.sessions, lambda s: s.scalars(
                select(DeskContact.id).where(DeskContact.agent_id == ag1, DeskContact.attempt_id.is_not(None))).one())
            await drive(engine, pbx, stack.vclock, 6)
            r = await other.post(f"/api/desk/contacts/{contact}/recording", json={"action": "pause"}, headers=oh)
            assert r.status_code == 404  # not ag2's contact
            r = await client.post(f"/api/desk/contacts/{contact}/recording", json={"action": "secure"}, headers=h)
            assert r.status_code == 200, r.text
            await settle(1)
            await drive(engine, pbx, stack.vclock, 5)
            r = await client.post(f"/api/desk/contacts/{contact}/recording", json={"action": "resume"}, headers=h)
            assert r.status_code == 200
            await settle(2)
            r = await client.post(f"/api/desk/contacts/{contact}/recording", json={"action": "stop"}, headers=h)
            assert r.status_code == 422
            await drive(engine, pbx, stack.vclock, 120, until=lambda: not pbx.calls)
            await engine.drain_recordings()
        finally:
            stop.set()
            await asyncio.gather(loop, return_exceptions=True)
            await client.aclose()
            await other.aclose()

        def work(s: Any) -> tuple[Recording, list[str]]:
            rec = s.scalars(select(Recording)).one()
            s.expunge(rec)
            return rec, [c.kind for c in s.scalars(select(CallCommand).order_by(CallCommand.id))]

        rec, kinds = run_in_transaction(core.sessions, work)
        assert kinds == ["record_secure", "record_resume"]
        [(a, b)] = rec.paused_spans
        assert rec.marks[0]["kind"] == "pin" and b - a == pytest.approx(5.0, abs=0.01)
        assert rec.desk_contact_id == contact and rec.agent_id == ag1
        assert silent_share(core.recordings.store.get(rec.storage_key), a, b) == 1.0
