"""Twilio end to end with no network, in one event loop: the web app (signed webhooks posted as Twilio posts
them, through httpx's ASGI transport), the dialler engine on the Twilio backend at virtual time, the twilio
library's REST calls captured by its HTTP-client hook. An agent's shift is a call held in their conference; an
answered outbound call is moved into it by the call core; an answered call nobody takes plays the safe-harbour
prompt, whose signed URL returns audio; an IVR hand-off is parked for the core, reaches an agent and ends when
the caller hangs up; a reminder call plays its rendered message in a menu, the client presses 1 (it plays again)
then 0 (the call becomes a hand-off of the core and reaches an agent)."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from callcenter.adapters.telephony.simulated import VirtualClock
from callcenter.adapters.telephony.twilio_calls import TwilioCalls
from callcenter.bootstrap import App, bootstrap, prompt_files, prompt_signer
from callcenter.parts.dialer import dialer_deps
from callcenter.ports import channel_variables as V
from callcenter.services.care.notify_calls import NotificationCaller
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.settings import load_settings
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.care import CareDelivery
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession, Attempt
from callcenter.store.models.ivr import IvrSession
from callcenter.web.app import create_app
from tests.adapters.handoff_world import ACCOUNT, PIN, build_handoff_world
from tests.factories import make_client

pytestmark = pytest.mark.db
SID = "AC" + "0" * 32
TOKEN = "twilio-test-token-0123456789abcdef"
PUBLIC = "https://cc.example.com"
FROM = "+15005550006"
BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)  # 10:30 in Shanghai, a Wednesday (a trading day)
AGENT_PHONE = "PSTN/+8613900000101"


class FakeTwilio(HttpClient):
    """The twilio library's HTTP-client hook: every REST call recorded, answered as Twilio answers."""

    def __init__(self) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.requests: list[dict[str, Any]] = []
        self._sids = itertools.count(1)

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None,  # type: ignore[no-untyped-def]
                allow_redirects=False):
        self.requests.append({"method": method, "uri": uri, "data": dict(data or {})})
        sid = uri.rsplit("/", 1)[1].removesuffix(".json")
        if sid == "Calls":
            sid = f"CA{next(self._sids):032d}"
        return Response(201, json.dumps({"sid": sid, "account_sid": SID, "status": "queued"}))

    def creates(self) -> list[dict[str, Any]]:
        return [r["data"] for r in self.requests if r["uri"].endswith("/Calls.json")]

    def updates(self, call_sid: str) -> list[dict[str, Any]]:
        return [r["data"] for r in self.requests if r["uri"].endswith(f"/Calls/{call_sid}.json")]


class World:
    def __init__(self, core: App, calls: TwilioCalls, http: FakeTwilio, vclock: VirtualClock) -> None:
        self.core, self.calls, self.http, self.vclock = core, calls, http, vclock
        self.web = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(core)), base_url=PUBLIC)
        self.notify = NotificationCaller(core, calls, renderer=prompt_files(core.settings))
        self.engine = DialerEngine(dialer_deps(core, notify=self.notify), calls, dialer_id="tw", clock=vclock,
                                   handoff_wait_s=300.0)

    async def post(self, url: str, params: dict[str, str]) -> httpx.Response:
        """A webhook as Twilio sends it: form-encoded, signed over the public URL and the fields."""
        signature = RequestValidator(TOKEN).compute_signature(url, params)
        parts = urlsplit(url)
        return await self.web.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=params,
                                   headers={"X-Twilio-Signature": signature})

    async def drive(self, seconds: float) -> None:
        """Virtual time: the engine's deadlines; the backend's events to the engine (or the notification caller)."""
        end = self.vclock.time() + seconds
        while True:
            for event in self.calls.stream.pending():
                if str(getattr(event, "call_id", "")).startswith("care-"):
                    await self.notify.handle(event)
                else:
                    await self.engine.handle(event)
            await self.engine.tick()
            await asyncio.sleep(0)
            if self.vclock.time() >= end:
                return
            self.vclock.run_until(min(max(self.engine.next_deadline(), self.vclock.time() + 0.05), end))

    async def agent_joins(self, staff_id: int) -> str:
        """The engine dialled the agent's phone into their conference; Twilio says the leg joined."""
        create = next(c for c in self.http.creates() if f">agent-{staff_id}</Conference>" in c.get("Twiml", ""))
        assert create["To"] == "+8613900000101"
        assert 'endConferenceOnExit="true"' in create["Twiml"]
        sid = self.calls._agents[str(staff_id)]
        r = await self.post(f"{PUBLIC}/twilio/agents/{staff_id}/conference",
                            {"CallSid": sid, "StatusCallbackEvent": "participant-join", "ConferenceSid": "CF1"})
        assert r.status_code == 204
        return sid


@pytest.fixture
def world(db_url: str, bank_sim: Any, tmp_path: Path) -> Iterator[World]:
    settings = load_settings(database_url=db_url, telephony_backend="twilio", twilio_account_sid=SID,
                             twilio_auth_token=TOKEN, twilio_public_url=PUBLIC, twilio_from_number=FROM,
                             prompts_dir=str(tmp_path / "prompts"), notify_caller_ids={"event": "95500"})
    vclock = VirtualClock()
    http = FakeTwilio()
    calls = TwilioCalls(Client(SID, TOKEN, http_client=http), FROM, PUBLIC, prompt_url=prompt_signer(settings).url,
                        clock=vclock)
    core = bootstrap(settings, clock=lambda: BASE + timedelta(seconds=vclock.time()), bank=bank_sim.client(),
                     telephony=calls)
    assert core.twilio_line is not None and core.twilio_line.calls is calls  # the webhooks feed this backend
    yield World(core, calls, http, vclock)
    core.close()


def agent(core: App, staff_id: int) -> AgentSession:
    with transaction(core.sessions) as s:
        return s.scalars(select(AgentSession).where(AgentSession.staff_id == staff_id,
                                                    AgentSession.ended_at.is_(None))).one()


def campaign_with_lead(core: App, group_id: int, client_id: int, phone: str, amd_policy: str = "human") -> int:
    cid = dialer.create_campaign(core, name=f"回访 {phone}", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=time(0), window_end=time(23, 59, 59),
                                 days="every", amd_policy=amd_policy, caller_id="95500")
    dialer.assign_campaign(core, cid, group_ids=[group_id])
    add_leads(core, cid, [LeadRow(0, phone, "", 0, None, client_id)])
    dialer.start_campaign(core, cid)
    return cid


def attempts(core: App, campaign_id: int) -> list[Attempt]:
    with transaction(core.sessions) as s:
        return list(s.scalars(select(Attempt).where(Attempt.campaign_id == campaign_id)))


async def fetch_audio(w: World, url: str) -> httpx.Response:
    r = await w.web.get(urlsplit(url).path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
    assert "max-age" in r.headers["cache-control"] and "no-store" not in r.headers["cache-control"]
    return r


def play_url(twiml: str) -> str:
    return twiml.split("<Play>", 1)[1].split("</Play>", 1)[0].replace("&amp;", "&")


async def test_outbound_answered_into_the_agents_conference_and_an_abandoned_call_hears_safe_harbour(
        world: World) -> None:
    w, core = world, world.core
    hw = build_handoff_world(core)
    group = core_group(core, hw.staff_id)
    dialer.agent_login(core, hw.staff_id, phone=AGENT_PHONE)
    dialer.agent_ready(core, hw.staff_id)
    await w.calls.start()
    cid = campaign_with_lead(core, group, hw.client_id, "+8613900000011")
    await w.drive(2)
    await w.agent_joins(hw.staff_id)
    await w.drive(2)
    [create] = [c for c in w.http.creates() if c.get("To") == "+8613900000011"]
    assert create["Url"].endswith("/answered") and create["MachineDetection"] == "Enable" and create["From"] == "95500"
    call_id = create["Url"].split("/")[-2]
    call_sid = w.calls._sids[call_id]
    # Twilio: ringing, picked up (AMD listening), then the answer webhook with AMD's verdict
    assert (await w.post(create["StatusCallback"], {"CallSid": call_sid, "CallStatus": "ringing"})).status_code == 204
    await w.post(create["StatusCallback"], {"CallSid": call_sid, "CallStatus": "in-progress"})
    w.vclock.advance(1.5)  # AMD listens 1.5 s: the abandon clock runs from the pick-up
    hold = await w.post(create["Url"], {"CallSid": call_sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    assert hold.status_code == 200 and "<Pause" in hold.text and "/answered</Redirect>" in hold.text
    replay = await w.post(create["Url"], {"CallSid": call_sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    assert replay.text == hold.text  # a replay: nothing reported twice
    await w.drive(1)
    [moved] = w.http.updates(call_sid)
    assert f">agent-{hw.staff_id}</Conference>" in moved["Twiml"] and 'endConferenceOnExit="false"' in moved["Twiml"]
    assert agent(core, hw.staff_id).state == "talking"
    with transaction(core.sessions) as s:
        assert s.scalars(select(DeskContact.agent_id)).all() == [hw.staff_id]
    w.vclock.advance(40)
    await w.post(create["StatusCallback"], {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "42"})
    await w.drive(1)
    [att] = attempts(core, cid)
    assert att.outcome == "human" and att.ended_at is not None
    assert agent(core, hw.staff_id).state == "wrap_up"

    # the agent is in wrap-up: the next answered call waits, and after 2 s from its pick-up hears safe harbour
    other, _ = make_client(core, accounts=[(1_00, 0)], group_id=group)
    add_leads(core, cid, [LeadRow(0, "+8613900000012", "", 0, None, other)])  # the agent's campaign
    dialer.agent_ready(core, hw.staff_id)
    await w.drive(3)
    [create2] = [c for c in w.http.creates() if c.get("To") == "+8613900000012"]
    dialer.agent_pause(core, hw.staff_id, "break")  # the agent steps away while it rings: nobody is ready
    await w.drive(1)
    sid2 = w.calls._sids[create2["Url"].split("/")[-2]]
    await w.post(create2["StatusCallback"], {"CallSid": sid2, "CallStatus": "in-progress"})
    w.vclock.advance(1.5)
    await w.post(create2["Url"], {"CallSid": sid2, "CallStatus": "in-progress", "AnsweredBy": "human"})
    await w.drive(0.4)
    assert w.http.updates(sid2) == []  # 1.9 s since the pick-up: still waiting for an agent
    await w.drive(0.5)
    [abandon] = w.http.updates(sid2)
    assert abandon["Twiml"].endswith("<Hangup/></Response>")
    url = play_url(abandon["Twiml"])
    assert url.startswith(f"{PUBLIC}/prompts/") and url.endswith("/cc/safe-harbour.wav")
    first = await fetch_audio(w, url)  # rendered on demand, the file prompts build writes
    assert (core.settings.prompts_path / "safe-harbour.wav").read_bytes() == first.content
    forged = url.replace("/prompts/", "/prompts/x")
    assert (await w.web.get(urlsplit(forged).path)).status_code == 404
    guessed = url.rsplit("/", 3)[0] + "/cc/leave-message.wav"  # another prompt under this prompt's signature
    assert (await w.web.get(urlsplit(guessed).path)).status_code == 404
    await w.post(create2["StatusCallback"], {"CallSid": sid2, "CallStatus": "completed"})
    await w.drive(1)
    assert [a.outcome for a in attempts(core, cid)] == ["human", "abandoned"]
    unsigned = await w.web.post(urlsplit(create2["StatusCallback"]).path, data={"CallStatus": "completed"})
    assert unsigned.status_code == 403


def core_group(core: App, staff_id: int) -> int:
    from callcenter.store.models import Staff

    with transaction(core.sessions) as s:
        group = s.get_one(Staff, staff_id).service_group_id
        assert group is not None
        return group


async def hotline_to_agent(w: World, call_sid: str) -> str:
    """The caller keys through the hotline (language, account, PIN) and presses 0: the TwiML of the hand-off."""
    base = {"CallSid": call_sid, "From": "+8613900000077"}
    r = await w.post(f"{PUBLIC}/twilio/voice", base)
    assert r.status_code == 200 and "<Gather" in r.text
    step = 0
    for digits in ["1", ACCOUNT, PIN, "0"]:
        r = await w.post(f"{PUBLIC}/twilio/voice/input?step={step}", {**base, "Digits": digits})
        assert r.status_code == 200
        step += 1
        while 'numDigits="32"' in r.text:  # the PIN check still at work: its <Gather> times out, as Twilio's
            await asyncio.sleep(0.05)
            r = await w.post(f"{PUBLIC}/twilio/voice/input?step={step}&timeout=1", base)
            step += 1
    return r.text


async def test_ivr_hand_off_is_parked_reaches_an_agent_and_ends(world: World) -> None:
    w, core = world, world.core
    hw = build_handoff_world(core)
    dialer.agent_login(core, hw.staff_id, phone=AGENT_PHONE)
    dialer.agent_ready(core, hw.staff_id)
    await w.calls.start()
    await w.drive(2)
    await w.agent_joins(hw.staff_id)
    caller_sid = "CA" + "7" * 32
    twiml = await hotline_to_agent(w, caller_sid)
    assert "<Enqueue" not in twiml
    with transaction(core.sessions) as s:
        ivr_id = s.scalars(select(IvrSession.id).where(IvrSession.call_id == caller_sid)).one()
    parked_url = f"{PUBLIC}/twilio/calls/{V.handoff_call_id(ivr_id)}/parked"
    assert f"<Redirect method=\"POST\">{parked_url}</Redirect>" in twiml
    hold = await w.post(parked_url, {"CallSid": caller_sid, "CallStatus": "in-progress"})
    assert hold.status_code == 200 and "<Pause" in hold.text
    await w.drive(3)
    [moved] = w.http.updates(caller_sid)
    assert f">agent-{hw.staff_id}</Conference>" in moved["Twiml"]
    assert agent(core, hw.staff_id).state == "talking"
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact)).one()
        assert (contact.agent_id, contact.ivr_session_id, contact.client_id) == (hw.staff_id, ivr_id, hw.client_id)
    w.vclock.advance(30)
    r = await w.post(f"{PUBLIC}/twilio/voice/status", {"CallSid": caller_sid, "CallStatus": "completed"})
    assert r.status_code == 204
    await w.drive(1)
    assert agent(core, hw.staff_id).state == "wrap_up"
    with transaction(core.sessions) as s:
        ivr = s.get_one(IvrSession, ivr_id)
        assert ivr.ended_at is not None and ivr.end_reason == "completed"


def reminder(core: App, client_id: int) -> int:
    now = core.clock()

    def add(s: Any) -> int:
        d = CareDelivery(client_id=client_id, subject="event:1", channel="notify_call", planned_for=date(2026, 11, 25),
                         language="zh-CN", message="您持有的权证明天是最后行权日。", status="pending", attempts=0,
                         claimed_at=now, updated_at=now)
        s.add(d)
        s.flush()
        return d.id

    return run_in_transaction(core.sessions, add)


async def test_a_reminder_call_where_the_client_presses_1_then_0(world: World) -> None:
    w, core = world, world.core
    hw = build_handoff_world(core)
    dialer.agent_login(core, hw.staff_id, phone=AGENT_PHONE)
    dialer.agent_ready(core, hw.staff_id)
    await w.calls.start()
    await w.drive(2)
    await w.agent_joins(hw.staff_id)
    delivery = reminder(core, hw.client_id)
    assert await w.notify.place_due() == 1
    message = core.settings.prompts_path / "care" / f"notify-{delivery}.wav"
    assert message.read_bytes()[:4] == b"RIFF"  # rendered before the call was placed
    [create] = [c for c in w.http.creates() if "/twilio/calls/care-" in c.get("Url", "")]
    assert create["From"] == "95500"  # the caller id of its kind ("event"), not the Twilio number
    call_id = create["Url"].split("/")[-2]
    sid = w.calls._sids[call_id]
    await w.post(create["Url"], {"CallSid": sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    await w.drive(0.5)
    [menu] = w.http.updates(sid)
    assert menu["Twiml"].startswith('<Response><Gather input="dtmf" numDigits="1"') and "<Play>" in menu["Twiml"]
    assert (await fetch_audio(w, play_url(menu["Twiml"]))).content == message.read_bytes()
    action = f"{PUBLIC}/twilio/calls/{call_id}/digits"
    r = await w.post(action, {"CallSid": sid, "Digits": "1"})
    assert r.status_code == 200 and "<Pause" in r.text
    await w.drive(0.5)
    assert len(w.http.updates(sid)) == 2 and w.http.updates(sid)[1]["Twiml"] == menu["Twiml"]  # heard again
    await w.post(action, {"CallSid": sid, "Digits": "0"})
    await w.drive(3)
    with transaction(core.sessions) as s:
        d = s.get_one(CareDelivery, delivery)
        assert d.status == "to_agent"
        ivr = s.scalars(select(IvrSession).where(IvrSession.call_id == call_id)).one()
        assert (ivr.channel, ivr.client_id, ivr.handed_off) == ("notify", hw.client_id, True)
    updates = w.http.updates(sid)
    assert f"/twilio/calls/{V.handoff_call_id(ivr.id)}/parked" in updates[2]["Twiml"]  # held for the core
    assert f">agent-{hw.staff_id}</Conference>" in updates[3]["Twiml"]  # routed by the core
    assert agent(core, hw.staff_id).state == "talking"
    await w.post(create["StatusCallback"], {"CallSid": sid, "CallStatus": "completed"})
    await w.drive(1)
    assert agent(core, hw.staff_id).state == "wrap_up"
