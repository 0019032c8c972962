"""Twilio call controls and recording: the REST requests the backend makes through the twilio library (its
HTTP-client hook answered by a fake of Twilio's API) and the callbacks it is fed, as Twilio sends them."""

from __future__ import annotations

import pytest
from twilio.rest import Client

from callcenter.adapters.telephony.twilio_calls import TwilioCalls
from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    CallControls,
    Connected,
    Ended,
    TelephonyError,
)
from callcenter.ports.recordings import wav_duration_s
from tests.adapters.twilio_api import ACCOUNT, TwilioApi, wav_bytes

PUBLIC = "https://cc.example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


async def room_world() -> tuple[TwilioCalls, TwilioApi, Clock, str]:
    """Agents 7 and 8 in their conferences; call c1 answered and moved into agent 7's."""
    api, clock = TwilioApi(), Clock()
    calls = TwilioCalls(Client(ACCOUNT, "token", http_client=api), "+15005550006", PUBLIC, clock=clock,
                        prompt_url=lambda name: f"{PUBLIC}/prompts/sig/{name}.wav", recording_wait_s=5)
    await calls.start()
    for n, agent in enumerate(("7", "8"), start=1):
        await calls.agent_login(agent, f"+861390000000{agent}")
        calls.conference_event(agent, {"StatusCallbackEvent": "participant-join", "CallSid": calls._agents[agent],
                                       "ConferenceSid": f"CF{agent * 32}", "FriendlyName": f"agent-{agent}",
                                       "SequenceNumber": "1"})
    await calls.originate("c1", "+8613800000001", "95555", {"CC_AMD": "0"}, 25)
    sid = calls._sids["c1"]
    calls.status_callback("c1", {"CallSid": sid, "CallStatus": "in-progress"})
    await calls.connect("c1", "7")
    calls.stream.pending()
    return calls, api, clock, sid


async def test_the_backend_is_a_call_controls_port_and_holds_through_the_participant() -> None:
    calls, api, _, sid = await room_world()
    assert isinstance(calls, CallControls)
    await calls.hold("c1")
    [held] = api.participant_updates(sid)
    assert api.requests[-1]["uri"].endswith(f"/Conferences/CF{'7' * 32}/Participants/{sid}.json")
    assert held == {"Hold": "true", "HoldUrl": f"{PUBLIC}/twilio/calls/c1/hold", "HoldMethod": "POST"}
    twiml = calls.hold_twiml("c1")  # what Twilio fetches at the hold URL: our prompt, looped
    assert f"<Play>{PUBLIC}/prompts/sig/cc/zh-CN/please_wait.wav</Play>" in twiml
    assert twiml.endswith(f'<Redirect method="POST">{PUBLIC}/twilio/calls/c1/hold</Redirect></Response>')
    with pytest.raises(TelephonyError, match="on hold"):
        await calls.send_dtmf("c1", "1")
    await calls.unhold("c1", "7")
    assert api.participant_updates(sid)[-1] == {"Hold": "false"}
    assert calls.stream.pending() == []  # no second Connected


async def test_mute_dtmf_and_monitoring() -> None:
    calls, api, _, sid = await room_world()
    leg7 = calls._agents["7"]
    await calls.mute_agent("7", True)
    assert api.participant_updates(leg7) == [{"Muted": "true"}]
    await calls.mute_agent("7", False)
    await calls.send_dtmf("c1", "12#")
    twiml = api.updates(sid)[-1]["Twiml"]
    assert twiml.startswith('<Response><Play digits="1w2w#"/><Dial><Conference') and ">agent-7</Conference>" in twiml
    with pytest.raises(ValueError):
        await calls.send_dtmf("c1", "1A")  # Twilio plays no A-D
    await calls.monitor("99", "+8613900000099", "7", "listen")
    [added] = api.to(f"/Conferences/CF{'7' * 32}/Participants.json")
    assert (added["To"], added["Muted"], added["Coaching"]) == ("+8613900000099", "true", "false")
    sup_leg = calls._monitors["99"][0]
    await calls.monitor("99", "+8613900000099", "7", "whisper")  # the same leg, now coaching the agent
    assert api.participant_updates(sup_leg)[-1] == {"Muted": "false", "Coaching": "true", "CallSidToCoach": leg7}
    await calls.stop_monitor("99")
    assert api.updates(sup_leg) == [{"Status": "completed"}]


async def test_consult_links_the_second_agents_leg_and_a_transfer_moves_the_customer() -> None:
    calls, api, _, sid = await room_world()
    leg8 = calls._agents["8"]
    await calls.hold("c1")
    await calls.link_rooms("7", "8")
    twiml = api.updates(leg8)[-1]["Twiml"]
    first, then = twiml.split("</Dial>", 1)
    assert ">agent-7</Conference>" in first and 'endConferenceOnExit="false"' in first
    assert ">agent-8</Conference>" in then and 'endConferenceOnExit="true"' in then  # back home when room 7 ends
    # their own room ends as they leave it, and they join room 7 (its callbacks go to agent 7's route)
    calls.conference_event("8", {"StatusCallbackEvent": "participant-leave", "CallSid": leg8,
                                 "ConferenceSid": "CF" + "8" * 32, "FriendlyName": "agent-8", "SequenceNumber": "2"})
    calls.conference_event("7", {"StatusCallbackEvent": "participant-join", "CallSid": leg8,
                                 "ConferenceSid": "CF" + "7" * 32, "FriendlyName": "agent-7", "SequenceNumber": "3"})
    assert calls.stream.pending() == []  # still on shift
    await calls.mute_agent("8", True)  # muted where their leg is: room 7
    assert api.requests[-1]["uri"].endswith(f"/Conferences/CF{'7' * 32}/Participants/{leg8}.json")
    await calls.unlink_rooms("7", "8")
    assert api.updates(leg8)[-1]["Twiml"].count("<Dial>") == 1 and ">agent-8</Conference>" in api.updates(leg8)[-1]["Twiml"]
    calls.conference_event("8", {"StatusCallbackEvent": "participant-join", "CallSid": leg8,
                                 "ConferenceSid": "CF" + "9" * 32, "FriendlyName": "agent-8", "SequenceNumber": "1"})
    assert calls._conferences["agent-8"] == "CF" + "9" * 32
    # the consultation completes: the customer into agent 8's conference (a transfer), held no more
    await calls.connect("c1", "8")
    assert ">agent-8</Conference>" in api.updates(sid)[-1]["Twiml"]
    [connected] = calls.stream.pending()
    assert isinstance(connected, Connected) and connected.agent_id == "8"
    await calls.hold("c1")
    assert api.requests[-1]["uri"].endswith(f"/Conferences/CF{'9' * 32}/Participants/{sid}.json")


async def test_back_to_the_ivr_at_an_entry_ends_the_call_for_us() -> None:
    calls, api, clock, sid = await room_world()
    clock.now = 30.0
    await calls.to_ivr("c1", "orders")
    moved = api.updates(sid)[-1]
    assert moved["Url"].startswith(f"{PUBLIC}/twilio/voice?entry=orders&visit=c1-") and moved["Method"] == "POST"
    [ended] = calls.stream.pending()
    assert isinstance(ended, Ended) and (ended.cause_text, ended.talk_s) == ("to_ivr", 30.0)
    assert calls.status_callback("c1", {"CallSid": sid, "CallStatus": "completed"}) == []  # no longer ours


async def test_conference_callbacks_replayed_have_no_effect_and_a_room_sid_is_looked_up() -> None:
    calls, api, _, _ = await room_world()
    leave = {"StatusCallbackEvent": "participant-leave", "CallSid": calls._agents["7"],
             "ConferenceSid": "CF" + "7" * 32, "FriendlyName": "agent-7", "SequenceNumber": "5"}
    calls.conference_event("7", leave)
    [left] = calls.stream.pending()
    assert isinstance(left, AgentLeft)
    await calls.agent_login("7", "+8613900000007")  # back on shift: a new leg, a new conference
    join = {"StatusCallbackEvent": "participant-join", "CallSid": calls._agents["7"],
            "ConferenceSid": "CF" + "6" * 32, "FriendlyName": "agent-7", "SequenceNumber": "1"}
    calls.conference_event("7", join)
    calls.conference_event("7", join)
    calls.conference_event("7", leave)  # the old leave replayed: no effect
    assert [type(e) for e in calls.stream.pending()] == [AgentJoined]
    calls._conferences.clear()  # callbacks lost: the SID is asked of Twilio by the room's name
    api.conferences["agent-8"] = "CF" + "5" * 32
    await calls.mute_agent("8", True)
    assert api.to("/Conferences.json", "GET") == [{}] and api.requests[-2]["params"]["FriendlyName"] == "agent-8"
    assert api.requests[-1]["uri"].endswith(f"/Conferences/CF{'5' * 32}/Participants/{calls._agents['8']}.json")


async def test_recording_with_a_paused_span_fetched_on_its_completed_callback() -> None:
    calls, api, _, sid = await room_world()
    await calls.record_start("c1", "rec-1")
    [create] = api.recording_creates(sid)
    assert create["RecordingStatusCallback"] == f"{PUBLIC}/twilio/recordings/rec-1/status"
    assert create["RecordingStatusCallbackEvent"] == ["in-progress", "completed", "absent"]
    with pytest.raises(TelephonyError, match="already"):
        await calls.record_start("c1", "rec-2")
    await calls.record_mute("c1", True)
    await calls.record_mute("c1", True)  # paused already: nothing asked
    await calls.record_mute("c1", False)
    rec_sid = calls._recordings["rec-1"].sid
    assert api.recording_updates(sid) == [(rec_sid, {"Status": "paused", "PauseBehavior": "silence"}),
                                          (rec_sid, {"Status": "in-progress"})]
    await calls.record_stop("c1")  # a transfer: the leg's recording stops, the call goes on
    assert api.recording_updates(sid)[-1] == (rec_sid, {"Status": "stopped"})
    api.media[rec_sid] = wav_bytes(12.0)
    import asyncio

    fetch = asyncio.create_task(calls.record_audio("c1", "rec-1"))
    await asyncio.sleep(0)
    calls.recording_status("rec-1", {"RecordingSid": "RE" + "f" * 32, "RecordingStatus": "completed"})  # not ours
    await asyncio.sleep(0)
    assert not fetch.done()
    calls.recording_status("rec-1", {"RecordingSid": rec_sid, "RecordingStatus": "completed",
                                     "RecordingDuration": "12", "CallSid": sid})
    audio = await asyncio.wait_for(fetch, 5)
    assert audio is not None and wav_duration_s(audio) == 12.0
    [get] = [r for r in api.requests if r["method"] == "GET" and r["uri"].endswith(".wav")]
    assert get["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec_sid}.wav"
    calls.recording_status("rec-1", {"RecordingSid": rec_sid, "RecordingStatus": "completed"})  # a replay
    assert await calls.record_audio("c1", "rec-1") is None  # handed over once


async def test_a_recording_twilio_left_absent_has_no_file() -> None:
    calls, _, _, sid = await room_world()
    await calls.record_start("c1", "rec-3")
    rec_sid = calls._recordings["rec-3"].sid
    calls.status_callback("c1", {"CallSid": sid, "CallStatus": "completed"})  # hung up: Twilio ends it
    await calls.record_stop("c1")  # nothing to stop
    calls.recording_status("rec-3", {"RecordingSid": rec_sid, "RecordingStatus": "absent"})
    assert await calls.record_audio("c1", "rec-3") is None


def test_the_production_http_client_keeps_a_recordings_bytes() -> None:
    """``MediaHttpClient`` (what bootstrap gives the twilio Client): a ``.wav`` comes back byte for byte after
    Twilio's redirect to its storage; the API's JSON still goes through the library's own path."""
    import requests
    from requests.adapters import BaseAdapter

    from callcenter.adapters.telephony.twilio_calls import MediaHttpClient

    audio = wav_bytes(0.5) + b"\xff\xfe\x80"  # not text in any encoding
    seen: list[str] = []

    class Twilio(BaseAdapter):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(f"{request.method} {request.url} {request.headers.get('Authorization', '')[:5]}")
            r = requests.Response()
            r.request, r.url = request, request.url
            if request.url.endswith(".wav") and "api.twilio.com" in request.url:
                r.status_code, r.headers["Location"] = 302, "https://media.example.com/RE1.wav"
            elif request.url.endswith(".wav"):
                r.status_code, r._content = 200, audio
                r.headers["Content-Type"] = "audio/x-wav"
            else:
                r.status_code, r._content = 200, b'{"sid": "CA1", "status": "queued"}'
                r.headers["Content-Type"] = "application/json"
            return r

        def close(self) -> None:
            pass

    http = MediaHttpClient()
    assert http.session is not None
    http.session.mount("https://", Twilio())
    client = Client(ACCOUNT, "token", http_client=http)
    got = client.request("GET", f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE1.wav")
    assert got.status_code == 200 and got.content == audio
    assert seen[0].endswith("Basic") and seen[1] == "GET https://media.example.com/RE1.wav "  # no credentials there
    assert client.calls("CA1").fetch().status == "queued"  # JSON: the library's path


async def test_an_earlier_legs_final_status_replayed_does_not_end_the_new_shift() -> None:
    calls, _, _, _ = await room_world()
    old_leg = calls._agents["8"]
    calls.agent_status("8", {"CallSid": old_leg, "CallStatus": "completed"})
    assert [type(e) for e in calls.stream.pending()] == [AgentLeft]
    await calls.agent_login("8", "+8613900000008")
    calls.conference_event("8", {"StatusCallbackEvent": "participant-join", "CallSid": calls._agents["8"],
                                 "ConferenceSid": "CF" + "4" * 32, "FriendlyName": "agent-8", "SequenceNumber": "1"})
    calls.agent_status("8", {"CallSid": old_leg, "CallStatus": "completed"})  # replayed
    assert [type(e) for e in calls.stream.pending()] == [AgentJoined]
    assert "8" in calls._joined
