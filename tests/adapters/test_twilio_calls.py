"""Twilio backend: requests made through the library with its http_client swapped (no network)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from callcenter.ports.telephony import Answered, Connected, Ended, Failed, OriginateRejected, Ringing, TelephonyError
from callcenter.adapters.telephony.twilio_calls import CallState, TwilioCalls, map_status

SID = "AC" + "0" * 32


class FakeHttp(HttpClient):
    def __init__(self, status: int = 201) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.requests: list[dict] = []
        self.status = status

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False):
        self.requests.append({"method": method, "uri": uri, "data": data or {}})
        if self.status >= 400:
            return Response(self.status, json.dumps({"code": 21211, "message": "Invalid 'To' number", "status": self.status}))
        return Response(self.status, json.dumps({"sid": "CA" + "1" * 32, "account_sid": SID, "status": "queued"}))


def make(status: int = 201):
    http = FakeHttp(status)
    client = Client(SID, "token", http_client=http)
    return TwilioCalls(client, "+15005550006", "https://cc.example.com/"), http


async def test_originate_uses_machine_detection_and_status_callbacks():
    calls, http = make()
    await calls.start()
    await calls.originate("c1", "+8613800000001", "95555", {"CC_CLIENT_ID": "9"}, 25)
    req = http.requests[-1]
    assert req["method"] == "POST" and req["uri"].endswith(f"/Accounts/{SID}/Calls.json")
    data = req["data"]
    assert data["To"] == "+8613800000001"
    assert data["MachineDetection"] == "Enable"
    assert data["StatusCallback"] == "https://cc.example.com/twilio/calls/c1/status"
    assert data["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert data["Timeout"] == 25


async def test_rejected_by_twilio():
    calls, _ = make(status=400)
    with pytest.raises(OriginateRejected, match="Invalid"):
        await calls.originate("c1", "+8613800000001", "95555", {}, 25)


async def test_network_failure_is_a_telephony_error_not_a_crash():
    """Hardening finding 2: a telephony error is the attempt's outcome; the dialler catches TelephonyError."""
    import requests

    from callcenter.ports.telephony import TelephonyError

    calls, http = make()

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise requests.ConnectionError("connection refused")

    http.request = down  # type: ignore[method-assign]
    with pytest.raises(TelephonyError, match="did not confirm"):
        await calls.originate("c1", "+8613800000001", "95555", {}, 25)
    assert "c1" not in calls._states


async def test_status_callbacks_to_events_and_connect():
    calls, http = make()
    await calls.originate("c1", "+8613800000001", "95555", {}, 25)
    assert [type(e) for e in calls.status_callback("c1", {"CallStatus": "ringing"}, 1.0)] == [Ringing]
    answered = calls.status_callback("c1", {"CallStatus": "in-progress", "AnsweredBy": "human"}, 5.0)
    assert answered == [Answered("c1", 5.0, "human", "human")]
    assert calls.status_callback("c1", {"CallStatus": "in-progress", "AnsweredBy": "human"}, 5.5) == []
    with pytest.raises(TelephonyError, match="not in their conference"):  # never into an empty room
        await calls.connect("c1", "7")
    await calls.agent_login("7", "+8613900000007")
    calls.conference_event("7", {"StatusCallbackEvent": "participant-join", "CallSid": "CA" + "1" * 32})
    await calls.connect("c1", "7")
    update = http.requests[-1]
    assert update["uri"].endswith(".json") and ">agent-7</Conference>" in update["data"]["Twiml"]
    ended = calls.status_callback("c1", {"CallStatus": "completed", "CallDuration": "30"})
    assert isinstance(ended[0], Ended) and ended[0].talk_s is not None
    assert any(isinstance(e, Connected) for e in calls.stream.pending())


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"CallStatus": "busy"}, ("busy", 17)),
        ({"CallStatus": "no-answer"}, ("no_answer", 19)),
        ({"CallStatus": "failed", "SipResponseCode": "404"}, ("invalid", 1)),
        ({"CallStatus": "failed", "SipResponseCode": "503"}, ("congestion", 34)),
        ({"CallStatus": "failed"}, ("error", None)),
        ({"CallStatus": "completed", "SipResponseCode": "486"}, ("busy", 17)),
    ],
)
def test_failures(params, expected):
    out = map_status("c", params, 1.0, CallState())
    assert [(type(e), e.reason, e.cause) for e in out] == [(Failed, *expected)]


@pytest.mark.parametrize("by,amd", [("machine_end_beep", "machine"), ("fax", "machine"), ("unknown", "notsure"), ("", None)])
def test_answered_by(by, amd):
    out = map_status("c", {"CallStatus": "in-progress", "AnsweredBy": by}, 1.0, CallState())
    assert out[0].amd == amd


async def test_injection_refused():
    calls, http = make()
    with pytest.raises(ValueError):
        await calls.originate("c1", "+86138\r\n", "95555", {}, 25)
    with pytest.raises(ValueError):
        await calls.originate("c1", "+8613800000001", "95555", {"X": "a\r\nb"}, 25)
    assert http.requests == []


async def test_amd_per_campaign_and_the_pick_up_time():
    """CC_AMD from the campaign: off places the call without machine detection (the status callback's answer
    is the answer); on, the pick-up is only noted and the answer webhook brings AMD's verdict, timed at pick-up."""
    calls, http = make()
    await calls.originate("c1", "+8613800000001", "95555", {"CC_AMD": "0"}, 25)
    assert "MachineDetection" not in http.requests[-1]["data"]
    assert calls.status_callback("c1", {"CallStatus": "in-progress"}, 3.0) == [Answered("c1", 3.0)]
    await calls.originate("c2", "+8613800000002", "95555", {"CC_AMD": "1"}, 25)
    assert http.requests[-1]["data"]["MachineDetection"] == "Enable"
    assert calls.status_callback("c2", {"CallStatus": "in-progress"}, 3.0) == []  # AMD still listening
    calls.clock = type("Fixed", (), {"time": staticmethod(lambda: 5.5)})()
    twiml = calls.answered_webhook("c2", {"AnsweredBy": "machine_end_beep"})
    assert "<Pause" in twiml and "/twilio/calls/c2/answered</Redirect>" in twiml
    [answered] = [e for e in calls.stream.pending() if isinstance(e, Answered) and e.call_id == "c2"]
    assert (answered.at, answered.picked_up_at, answered.amd) == (5.5, 3.0, "machine")


def test_agent_phones_twilio_can_call():
    from callcenter.adapters.telephony.twilio_calls import twilio_address

    assert twilio_address("+8613900000101") == twilio_address("PSTN/8613900000101") == "+8613900000101"
    assert twilio_address("SIP/1001@pbx.example.com") == "sip:1001@pbx.example.com"
    assert twilio_address("Client/ag1") == "client:ag1"
    with pytest.raises(ValueError):
        twilio_address("PJSIP/1001")


def test_prompt_names_map_into_the_built_tree_and_urls_are_signed(tmp_path):
    from callcenter.adapters.ivr.prompt_files import PromptFiles, PromptSigner

    files = PromptFiles(tmp_path)
    assert files.path_of("cc/safe-harbour") == tmp_path / "safe-harbour.wav"
    assert files.path_of("cc/zh-CN/main_menu") == tmp_path / "zh-CN" / "main_menu.wav"
    assert files.path_of("cc/care/notify-12") == tmp_path / "care" / "notify-12.wav"
    for bad in ("cc/../etc/passwd", "cc/zh-CN/../../x", "cc/fr/main_menu", "safe-harbour", "cc/care/notify-x"):
        assert files.path_of(bad) is None
    assert files.ensure("cc/zh-CN/no_such_prompt") is None and files.ensure("cc/care/notify-12") is None
    signer = PromptSigner("https://cc.example.com/", b"k" * 32)
    url = signer.url("cc/safe-harbour")
    sig = url.split("/")[4]
    assert url == f"https://cc.example.com/prompts/{sig}/cc/safe-harbour.wav"
    assert signer.verify(sig, "cc/safe-harbour") and not signer.verify(sig, "cc/leave-message")
    assert PromptSigner("https://cc.example.com", b"other-key").signature("cc/safe-harbour") != sig
