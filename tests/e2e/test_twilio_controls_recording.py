"""Call controls and recording on the Twilio backend, end to end with no network: the web app (signed webhooks
posted as Twilio posts them), the dialler engine at virtual time with its recorder, the twilio library's REST calls
answered by a fake of Twilio's API behind its HTTP-client hook. An outbound call is answered and moved into the
agent's conference, held and resumed (the customer's participant on hold with our hold URL), its recording paused
and resumed, transferred to a second agent (the call into their conference, a second linked leg recorded); when the
recordings' completed callbacks come, the engine fetches the media and stores them with their checksums. A forged
callback, and a replayed one, change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from twilio.rest import Client

from callcenter.adapters.telephony.simulated import VirtualClock
from callcenter.adapters.telephony.twilio_calls import TwilioCalls
from callcenter.bootstrap import bootstrap, prompt_signer
from callcenter.parts.dialer import dialer_deps
from callcenter.ports.recordings import sha256_hex
from callcenter.services.call_commands import ClaimedCommand
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.settings import load_settings
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.recordings import Recording
from tests.adapters.handoff_world import build_handoff_world
from tests.adapters.twilio_api import TwilioApi, wav_bytes
from tests.e2e.test_twilio_end_to_end import (
    BASE,
    FROM,
    PUBLIC,
    SID,
    TOKEN,
    World,
    agent,
    attempts,
    campaign_with_lead,
    core_group,
)
from tests.factories import make_staff

pytestmark = pytest.mark.db


@pytest.fixture
def tw(db_url: str, bank_sim: Any, tmp_path: Path) -> Iterator[World]:
    settings = load_settings(database_url=db_url, telephony_backend="twilio", twilio_account_sid=SID,
                             twilio_auth_token=TOKEN, twilio_public_url=PUBLIC, twilio_from_number=FROM,
                             prompts_dir=str(tmp_path / "prompts"), recordings_dir=str(tmp_path / "rec"))
    vclock = VirtualClock()
    api = TwilioApi(SID)
    calls = TwilioCalls(Client(SID, TOKEN, http_client=api), FROM, PUBLIC, prompt_url=prompt_signer(settings).url,
                        clock=vclock, recording_wait_s=60)
    core = bootstrap(settings, clock=lambda: BASE + timedelta(seconds=vclock.time()), bank=bank_sim.client(),
                     telephony=calls)
    w = World(core, calls, api, vclock)  # type: ignore[arg-type]  # the richer fake of Twilio's API
    w.engine = DialerEngine(dialer_deps(core, notify=w.notify, telephony=calls), calls, dialer_id="tw", clock=vclock,
                            handoff_wait_s=300.0)
    assert w.engine.deps.recorder is not None  # Twilio's calls are recorded too
    yield w
    core.close()


async def joins(w: World, staff_id: int, conference: str) -> str:
    """Twilio: the agent's phone leg joined their conference (its first callback, with the conference's SID)."""
    sid = w.calls._agents[str(staff_id)]
    r = await w.post(f"{PUBLIC}/twilio/agents/{staff_id}/conference",
                     {"CallSid": sid, "StatusCallbackEvent": "participant-join", "ConferenceSid": conference,
                      "FriendlyName": f"agent-{staff_id}", "SequenceNumber": "1", "AccountSid": SID})
    assert r.status_code == 204
    return sid


async def test_held_resumed_transferred_and_recorded_with_its_paused_span(tw: World) -> None:
    w, core, api = tw, tw.core, tw.http
    assert isinstance(api, TwilioApi)
    hw = build_handoff_world(core)
    group = core_group(core, hw.staff_id)
    ag1, ag2 = hw.staff_id, make_staff(core, "hot2", "pw-hot-2", "agent", group_id=group)
    dialer.agent_login(core, ag1, phone="PSTN/+8613900000101")
    dialer.agent_ready(core, ag1)
    dialer.agent_login(core, ag2, phone="PSTN/+8613900000102")
    await w.calls.start()
    cid = campaign_with_lead(core, group, hw.client_id, "+8613900000011")
    await w.drive(2)
    await joins(w, ag1, "CF" + "1" * 32)
    await joins(w, ag2, "CF" + "2" * 32)
    await w.drive(2)

    # answered (AMD: human) and moved into agent 1's conference; its recording starts on the customer's call
    [create] = [c for c in api.creates() if c.get("To") == "+8613900000011"]
    status_url, call_id = create["StatusCallback"], create["Url"].split("/")[-2]
    call_sid = w.calls._sids[call_id]
    await w.post(status_url, {"CallSid": call_sid, "CallStatus": "in-progress"})
    await w.post(create["Url"], {"CallSid": call_sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    await w.drive(1)
    [moved] = api.updates(call_sid)
    assert f">agent-{ag1}</Conference>" in moved["Twiml"]
    assert agent(core, ag1).state == "talking"
    [rec1] = api.recording_creates(call_sid)
    assert rec1["RecordingStatusCallback"].startswith(f"{PUBLIC}/twilio/recordings/rec-")
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact.id).where(DeskContact.agent_id == ag1)).one()

    async def control(n: int, kind: str, **args: Any) -> None:
        answer = await w.engine.command_requested(ClaimedCommand(n, kind, contact, None, ag1, core.clock(), args))
        assert answer in (True, (True, "")) or answer[0] is True, (kind, answer)

    # hold: the customer's participant in agent 1's conference, our hold URL playing the "please wait" prompt
    await w.drive(5)
    await control(1, "hold")
    [hold] = api.participant_updates(call_sid)
    assert hold == {"Hold": "true", "HoldUrl": f"{PUBLIC}/twilio/calls/{call_id}/hold", "HoldMethod": "POST"}
    assert api.requests[-1]["uri"].endswith(f"/Conferences/CF{'1' * 32}/Participants/{call_sid}.json")
    music = await w.post(hold["HoldUrl"], {"CallSid": call_sid, "ConferenceSid": "CF" + "1" * 32})
    assert music.status_code == 200 and "/cc/zh-CN/please_wait.wav</Play>" in music.text
    play = music.text.split("<Play>", 1)[1].split("</Play>", 1)[0].replace("&amp;", "&")
    audio = await w.web.get(urlsplit(play).path)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"  # the hold prompt, served by us
    await w.drive(5)
    await control(2, "resume")
    assert api.participant_updates(call_sid)[-1] == {"Hold": "false"}

    # the recording paused (the agent's button) for 3 s: Twilio writes silence, the span is in our metadata
    await w.drive(2)
    assert await w.engine.recording_requested(contact, ag1, "pause")
    await w.drive(3)
    assert await w.engine.recording_requested(contact, ag1, "resume")
    [(re1, paused), (_, resumed)] = api.recording_updates(call_sid)
    assert paused == {"Status": "paused", "PauseBehavior": "silence"} and resumed == {"Status": "in-progress"}

    # transfer to agent 2: the customer into their conference; the first leg's recording stops, a second starts
    dialer.agent_ready(core, ag2)
    await w.drive(2)
    await control(3, "transfer", target=ag2)
    await w.drive(1)
    assert f">agent-{ag2}</Conference>" in api.updates(call_sid)[-1]["Twiml"]
    assert agent(core, ag2).state == "talking" and agent(core, ag1).state == "wrap_up"
    assert api.recording_updates(call_sid)[-1] == (re1, {"Status": "stopped"})
    [_, rec2] = api.recording_creates(call_sid)
    re2 = w.calls._recordings[rec2["RecordingStatusCallback"].split("/")[-2]].sid
    assert api.participant_updates(call_sid)[-1] == {"Hold": "false"}  # nothing asked of the call since

    # the customer hangs up after 20 s with agent 2
    w.vclock.advance(20)
    await w.post(status_url, {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "60"})
    await w.drive(1)
    [att] = attempts(core, cid)
    assert att.ended_at is not None and att.agent_id == ag2
    assert agent(core, ag2).state == "wrap_up"

    # Twilio's recording callbacks: the media are fetched and stored
    media1, media2 = wav_bytes(18.0), wav_bytes(21.0)
    api.media.update({re1: media1, re2: media2})
    url1, url2 = rec1["RecordingStatusCallback"], rec2["RecordingStatusCallback"]
    done1 = {"AccountSid": SID, "CallSid": call_sid, "RecordingSid": re1, "RecordingStatus": "completed",
             "RecordingDuration": "18", "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{re1}"}
    forged = await w.web.post(urlsplit(url1).path, data=done1, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 403
    other = await w.post(url1, {**done1, "RecordingSid": "RE" + "9" * 32})  # signed, but not this leg's recording
    assert other.status_code == 204
    await asyncio.sleep(0.05)
    assert not [r for r in api.requests if r["uri"].endswith(".wav")]  # nothing fetched yet
    assert (await w.post(url1, done1)).status_code == 204
    assert (await w.post(url2, {**done1, "RecordingSid": re2, "RecordingDuration": "21"})).status_code == 204
    await asyncio.wait_for(w.engine.drain_recordings(), 10)
    assert (await w.post(url1, done1)).status_code == 204  # a replay: nothing fetched or stored again
    await asyncio.sleep(0.05)
    fetched = [r["uri"] for r in api.requests if r["uri"].endswith(".wav")]
    assert sorted(fetched) == sorted(f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{re}.wav"
                                     for re in (re1, re2))

    def rows(s: Any) -> list[Recording]:
        out = list(s.scalars(select(Recording).order_by(Recording.id)))
        s.expunge_all()
        return out

    first, second = run_in_transaction(core.sessions, rows)
    assert (first.agent_id, second.agent_id, second.parent_id) == (ag1, ag2, first.id)
    assert first.call_ref == second.call_ref == call_id
    assert (first.attempt_id, first.client_id, first.campaign_id) == (att.id, hw.client_id, cid)
    assert first.desk_contact_id == contact and second.attempt_id == att.id
    [span] = first.paused_spans
    assert span == [pytest.approx(12.0, abs=0.1), pytest.approx(15.0, abs=0.1)]
    kinds = [(m["kind"], m["start"], m["end"]) for m in first.marks]
    assert ("hold", pytest.approx(5.0, abs=0.1), pytest.approx(10.0, abs=0.1)) in kinds
    assert ("agent", pytest.approx(12.0, abs=0.1), pytest.approx(15.0, abs=0.1)) in kinds
    assert second.paused_spans == []
    for rec, media in ((first, media1), (second, media2)):
        assert rec.state == "stopped" and rec.sha256 == sha256_hex(media) and rec.size_bytes == len(media)
        assert core.recordings.store.get(rec.storage_key) == media
    assert (first.duration_s, second.duration_s) == (18.0, 21.0)  # the files' own lengths


async def test_a_replayed_conference_callback_does_not_end_an_agents_shift(tw: World) -> None:
    w, core = tw, tw.core
    hw = build_handoff_world(core)
    dialer.agent_login(core, hw.staff_id, phone="PSTN/+8613900000101")
    dialer.agent_ready(core, hw.staff_id)
    await w.calls.start()
    await w.drive(2)
    first_leg = await joins(w, hw.staff_id, "CF" + "1" * 32)
    await w.drive(1)
    leave = {"CallSid": first_leg, "StatusCallbackEvent": "participant-leave", "ConferenceSid": "CF" + "1" * 32,
             "FriendlyName": f"agent-{hw.staff_id}", "SequenceNumber": "2", "AccountSid": SID}
    url = f"{PUBLIC}/twilio/agents/{hw.staff_id}/conference"
    assert (await w.web.post(urlsplit(url).path, data=leave)).status_code == 403  # unsigned
    await w.drive(1)
    assert w.calls._joined == {str(hw.staff_id)}
    assert (await w.post(url, leave)).status_code == 204  # the leg left: the agent is off the phone
    await w.drive(1)
    assert w.calls._joined == set()
    w.calls._joined.add(str(hw.staff_id))  # (as if their phone were back in the room)
    assert (await w.post(url, leave)).status_code == 204  # the same callback again: no effect
    assert w.calls.stream.pending() == []


async def test_an_ivr_caller_handed_back_to_the_ivr_at_the_order_menu(tw: World) -> None:
    """The hand-off reached an agent, who sends the caller back to the IVR ("transfer_ivr", entry "orders"):
    Twilio is told to fetch our IVR webhook with that entry; the IVR runs again on the same call (its steps
    numbered on, so no webhook of the new run is taken for a replay of the first run's), the call is over for the
    engine and its later callbacks are not reported."""
    from tests.e2e.test_twilio_end_to_end import hotline_to_agent

    w, core, api = tw, tw.core, tw.http
    hw = build_handoff_world(core)
    dialer.agent_login(core, hw.staff_id, phone="PSTN/+8613900000101")
    dialer.agent_ready(core, hw.staff_id)
    await w.calls.start()
    await w.drive(2)
    await joins(w, hw.staff_id, "CF" + "1" * 32)
    caller = "CA" + "7" * 32
    twiml = await hotline_to_agent(w, caller)
    parked = twiml.split('<Redirect method="POST">', 1)[1].split("</Redirect>", 1)[0]
    await w.post(parked, {"CallSid": caller, "CallStatus": "in-progress"})
    await w.drive(3)
    assert agent(core, hw.staff_id).state == "talking"
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact.id).where(DeskContact.agent_id == hw.staff_id)).one()
    answer = await w.engine.command_requested(ClaimedCommand(1, "transfer_ivr", contact, None, hw.staff_id,
                                                             core.clock(), {"menu": "orders"}))
    assert answer == (True, "") or answer[0] is True
    await w.drive(1)
    back = api.updates(caller)[-1]
    assert back["Url"].startswith(f"{PUBLIC}/twilio/voice?entry=orders&visit=") and back["Method"] == "POST"
    assert agent(core, hw.staff_id).state == "wrap_up"
    again = await w.post(back["Url"], {"CallSid": caller, "From": "+8613900000077"})
    assert again.status_code == 200 and "<Gather" in again.text and again.text != twiml
    assert (await w.post(back["Url"], {"CallSid": caller, "From": "+8613900000077"})).text == again.text  # replay
    step = int(again.text.split("/twilio/voice/input?step=", 1)[1].split("&", 1)[0].split('"', 1)[0])
    assert step > 4  # after the first run's steps
    await w.post(f"{PUBLIC}/twilio/voice/status", {"CallSid": caller, "CallStatus": "completed"})
    await w.drive(1)
    assert w.calls.stream.pending() == []


async def test_a_consultation_completed_and_a_supervisor_listening_on_twilio(tw: World) -> None:
    """Warm transfer through the call core on Twilio: the customer held in agent 1's conference, agent 2's phone
    leg brought into it (leaving their own room is not the end of their shift), then back to their room and the
    customer moved in; a supervisor listens as a muted participant of agent 2's conference."""
    w, core, api = tw, tw.core, tw.http
    assert isinstance(api, TwilioApi)
    hw = build_handoff_world(core)
    group = core_group(core, hw.staff_id)
    ag1, ag2 = hw.staff_id, make_staff(core, "hot2", "pw-hot-2", "agent", group_id=group)
    sup = make_staff(core, "sup9", "pw-sup-9", "supervisor", supervises=[group])
    dialer.agent_login(core, ag1, phone="PSTN/+8613900000101")
    dialer.agent_ready(core, ag1)
    dialer.agent_login(core, ag2, phone="PSTN/+8613900000102")
    await w.calls.start()
    campaign_with_lead(core, group, hw.client_id, "+8613900000011")
    await w.drive(2)
    await joins(w, ag1, "CF" + "1" * 32)
    leg2 = await joins(w, ag2, "CF" + "2" * 32)
    await w.drive(2)
    [create] = [c for c in api.creates() if c.get("To") == "+8613900000011"]
    call_sid = w.calls._sids[create["Url"].split("/")[-2]]
    await w.post(create["StatusCallback"], {"CallSid": call_sid, "CallStatus": "in-progress"})
    await w.post(create["Url"], {"CallSid": call_sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    await w.drive(1)
    assert agent(core, ag1).state == "talking"
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact.id).where(DeskContact.agent_id == ag1)).one()

    async def control(n: int, kind: str, staff: int = ag1, **args: Any) -> None:
        answer = await w.engine.command_requested(ClaimedCommand(n, kind, contact, None, staff, core.clock(), args))
        assert answer[0] is True, (kind, answer)  # type: ignore[index]

    dialer.agent_ready(core, ag2)
    await w.drive(2)
    await control(1, "consult", target=ag2)
    await w.drive(1)
    assert api.participant_updates(call_sid)[-1]["Hold"] == "true"
    into = api.updates(leg2)[-1]["Twiml"]
    assert into.index(f">agent-{ag1}</Conference>") < into.index(f">agent-{ag2}</Conference>")
    # Twilio: agent 2's leg leaves their own room (which ends) and joins agent 1's
    await w.post(f"{PUBLIC}/twilio/agents/{ag2}/conference",
                 {"CallSid": leg2, "StatusCallbackEvent": "participant-leave", "ConferenceSid": "CF" + "2" * 32,
                  "FriendlyName": f"agent-{ag2}", "SequenceNumber": "2", "AccountSid": SID})
    await w.post(f"{PUBLIC}/twilio/agents/{ag1}/conference",
                 {"CallSid": leg2, "StatusCallbackEvent": "participant-join", "ConferenceSid": "CF" + "1" * 32,
                  "FriendlyName": f"agent-{ag1}", "SequenceNumber": "3", "AccountSid": SID})
    await w.drive(1)
    assert agent(core, ag2).state == "reserved" and str(ag2) in w.calls._joined  # still on shift
    await control(2, "consult_complete")
    await w.drive(1)
    back = api.updates(leg2)[-1]["Twiml"]
    assert back.count("<Dial>") == 1 and f">agent-{ag2}</Conference>" in back and 'endConferenceOnExit="true"' in back
    assert f">agent-{ag2}</Conference>" in api.updates(call_sid)[-1]["Twiml"]  # the customer into their room
    assert agent(core, ag2).state == "talking" and agent(core, ag1).state == "wrap_up"
    await w.post(f"{PUBLIC}/twilio/agents/{ag2}/conference",
                 {"CallSid": leg2, "StatusCallbackEvent": "participant-join", "ConferenceSid": "CF" + "3" * 32,
                  "FriendlyName": f"agent-{ag2}", "SequenceNumber": "1", "AccountSid": SID})
    await w.drive(1)
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact.id).where(DeskContact.agent_id == ag2)).one()
    await control(3, "listen", staff=sup, phone="PSTN/+8613900000199")
    [added] = api.to(f"/Conferences/CF{'3' * 32}/Participants.json")  # agent 2's new conference
    assert (added["To"], added["Muted"], added["Coaching"]) == ("+8613900000199", "true", "false")
    sup_leg = w.calls._monitors[str(sup)][0]
    await control(4, "monitor_stop", staff=sup)
    assert api.updates(sup_leg) == [{"Status": "completed"}]  # the supervisor's phone hung up


async def test_an_outbound_call_sent_to_the_ivr_is_the_called_clients(tw: World) -> None:
    """An agent sends the client of an outbound call to the IVR's start: its IVR session's caller is the number
    we called (Twilio's ``To`` on a call we placed), not our caller id."""
    from callcenter.store.models.ivr import IvrSession

    w, core, api = tw, tw.core, tw.http
    hw = build_handoff_world(core)
    group = core_group(core, hw.staff_id)
    dialer.agent_login(core, hw.staff_id, phone="PSTN/+8613900000101")
    dialer.agent_ready(core, hw.staff_id)
    await w.calls.start()
    campaign_with_lead(core, group, hw.client_id, "+8613900000011")
    await w.drive(2)
    await joins(w, hw.staff_id, "CF" + "1" * 32)
    await w.drive(2)
    [create] = [c for c in api.creates() if c.get("To") == "+8613900000011"]
    call_sid = w.calls._sids[create["Url"].split("/")[-2]]
    await w.post(create["StatusCallback"], {"CallSid": call_sid, "CallStatus": "in-progress"})
    await w.post(create["Url"], {"CallSid": call_sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    await w.drive(1)
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact.id)).one()
    answer = await w.engine.command_requested(ClaimedCommand(1, "transfer_ivr", contact, None, hw.staff_id,
                                                             core.clock(), {"menu": ""}))
    assert answer[0] is True  # type: ignore[index]
    back = api.updates(call_sid)[-1]["Url"]
    assert back.startswith(f"{PUBLIC}/twilio/voice?entry=&visit=")
    r = await w.post(back, {"CallSid": call_sid, "From": "95500", "To": "+8613900000011", "Direction": "outbound-api"})
    assert r.status_code == 200 and "<Gather" in r.text
    with transaction(core.sessions) as s:
        caller = s.scalars(select(IvrSession.caller).where(IvrSession.call_id == call_sid)).one()
        assert caller == "139****0011"  # the client we called (kept masked), not our caller id 95500
    await w.drive(1)
    [att] = attempts(core, create_campaign_id(core))
    assert att.ended_at is not None and agent(core, hw.staff_id).state == "wrap_up"


def create_campaign_id(core: Any) -> int:
    from callcenter.store.models.dialer import Campaign

    with transaction(core.sessions) as s:
        return s.scalars(select(Campaign.id)).one()


async def test_a_three_way_conference_mute_and_keys_through_the_core(tw: World) -> None:
    w, core, api = tw, tw.core, tw.http
    assert isinstance(api, TwilioApi)
    hw = build_handoff_world(core)
    group = core_group(core, hw.staff_id)
    ag1, ag2 = hw.staff_id, make_staff(core, "hot2", "pw-hot-2", "agent", group_id=group)
    dialer.agent_login(core, ag1, phone="PSTN/+8613900000101")
    dialer.agent_ready(core, ag1)
    dialer.agent_login(core, ag2, phone="PSTN/+8613900000102")
    await w.calls.start()
    campaign_with_lead(core, group, hw.client_id, "+8613900000011")
    await w.drive(2)
    leg1 = await joins(w, ag1, "CF" + "1" * 32)
    leg2 = await joins(w, ag2, "CF" + "2" * 32)
    await w.drive(2)
    [create] = [c for c in api.creates() if c.get("To") == "+8613900000011"]
    call_sid = w.calls._sids[create["Url"].split("/")[-2]]
    await w.post(create["StatusCallback"], {"CallSid": call_sid, "CallStatus": "in-progress"})
    await w.post(create["Url"], {"CallSid": call_sid, "CallStatus": "in-progress", "AnsweredBy": "human"})
    await w.drive(1)
    with transaction(core.sessions) as s:
        contact = s.scalars(select(DeskContact.id).where(DeskContact.agent_id == ag1)).one()

    async def control(n: int, kind: str, **args: Any) -> None:
        answer = await w.engine.command_requested(ClaimedCommand(n, kind, contact, None, ag1, core.clock(), args))
        assert answer[0] is True, (kind, answer)  # type: ignore[index]

    await control(1, "mute")
    assert api.participant_updates(leg1) == [{"Muted": "true"}]
    await control(2, "unmute")
    await control(3, "dtmf", digits="8#")
    keys = api.updates(call_sid)[-1]["Twiml"]
    assert keys.startswith('<Response><Play digits="8w#"/>') and f">agent-{ag1}</Conference>" in keys
    dialer.agent_ready(core, ag2)
    await w.drive(2)
    await control(4, "conference", target=ag2)
    await w.drive(2)
    assert f">agent-{ag1}</Conference>" in api.updates(leg2)[-1]["Twiml"]  # agent 2 into agent 1's conference
    assert agent(core, ag2).state == "talking"
    await control(5, "conference_leave")
    await w.drive(1)
    assert api.updates(leg2)[-1]["Twiml"].count("<Dial>") == 1  # back in their own room
    assert agent(core, ag2).state == "wrap_up" and agent(core, ag1).state == "talking"
