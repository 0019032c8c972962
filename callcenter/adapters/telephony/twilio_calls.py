"""Twilio backend of the telephony port: the same routing model as Asterisk's ConfBridge rooms.

* An agent's shift is one call to their phone held in the ``<Conference>`` ``agent-<id>`` (started on their
  entry, ended on their exit); ``AgentJoined``/``AgentLeft`` come from that conference's participant callbacks
  and the leg's status callback, not from the REST answer.
* An outbound call is ``Client.calls.create(..., url=.../answered, status_callback=.../status)``, with
  ``machine_detection`` when the campaign runs AMD (channel variable ``CC_AMD``; else the backend default).
  Its ``answered`` webhook is the port's ``Answered`` (with ``AnsweredBy``; its time is the pick-up's, from the
  ``answered`` status callback when AMD delayed the webhook) and holds the call (``<Pause>`` + ``<Redirect>``)
  until the call core moves it: ``connect`` (``calls(sid).update(twiml=<Dial><Conference>agent-<id>``),
  ``play`` (``<Play>`` of the prompt's signed URL, then ``<Hangup/>``) or ``hangup``.
* An IVR hand-off's caller is redirected by the IVR's TwiML to ``/twilio/calls/cc-h<id>/parked``: reported
  as ``Answered`` (parked) under the hand-off's call id, held the same way, connected by the core.
* Notification calls: ``play_menu`` plays the message inside a ``<Gather>`` whose keys come back as
  ``DigitPressed``; ``reassign`` hands the call over to the core under a hand-off call id.
* Call controls (``CallControls``, as on Asterisk): hold is the customer's conference participant put on
  ``hold`` with our hold URL (``/twilio/calls/<id>/hold``: a signed TwiML of the rendered "please wait" prompt,
  looped), ``unhold`` takes the hold off (or moves the call into another agent's conference); ``mute_agent`` mutes
  the agent's participant; a transfer is ``connect`` to the other agent's conference; ``link_rooms`` moves the
  second agent's leg into the first agent's conference (a consultation while the customer is held, a three-way
  conference), ``unlink_rooms`` puts it back into its own; DTMF is ``<Play digits>`` on the customer's call, which
  then rejoins its conference; ``to_ivr`` redirects the call to the hotline's ``/twilio/voice?entry=<menu>``;
  monitoring adds the supervisor's phone to the agent's conference with the Participants API (``muted`` to
  listen, ``coaching`` to whisper, neither to barge). The conference SID of a room comes from its callbacks.
* Recording (``RecordsCalls``): the Recordings API on the customer's call from connect (``record_start``) to its
  end or the next leg (``record_stop``), ``paused`` / ``in-progress`` for the paused spans (``pauseBehavior``
  ``silence``: the span keeps its length); the signed ``recordingStatusCallback``
  (``/twilio/recordings/<name>/status``) says when the file is complete, and ``record_audio`` then fetches its WAV
  through the twilio client's HTTP client (``MediaHttpClient`` in production keeps the bytes).

``webhooks.py`` holds the signed routes (``TwilioLine``: the dialler's backend of this process, which they feed);
``map_status`` is the pure mapping of status callbacks. The twilio library is synchronous: its calls run in a
worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from requests import Session
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    AmdVerdict,
    Connected,
    DigitPressed,
    Ended,
    EventStream,
    Failed,
    FailReason,
    MONITOR_MODES,
    MonitorMode,
    OriginateRejected,
    Ringing,
    ServerUp,
    TelephonyError,
    TelephonyEvent,
    check_dial_string,
    check_dtmf,
    check_id,
    check_menu,
    check_number,
    check_prompt,
    check_originate,
)
from callcenter.ports import channel_variables as V
from callcenter.ports.calendar import Monotonic
from callcenter.ports.channel_variables import agent_room

log = logging.getLogger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]

ANSWERED_BY: dict[str, AmdVerdict] = {
    "human": "human",
    "machine_start": "machine",
    "machine_end_beep": "machine",
    "machine_end_silence": "machine",
    "machine_end_other": "machine",
    "fax": "machine",
    "unknown": "notsure",
}

# SIP final response -> (Q.850 cause, reason when the call was never answered)
SIP_CAUSES: dict[int, tuple[int, FailReason]] = {
    404: (1, "invalid"),
    484: (28, "invalid"),
    486: (17, "busy"),
    600: (17, "busy"),
    408: (18, "no_answer"),
    480: (19, "no_answer"),
    487: (19, "no_answer"),
    603: (21, "error"),
    503: (34, "congestion"),
    502: (38, "congestion"),
    500: (41, "congestion"),
}


@dataclass
class CallState:
    """What ``map_status`` remembers about one call between callbacks."""

    rang: bool = False
    answered: bool = False
    connected_at: float | None = None
    done: bool = False
    amd: bool = False  # machine detection runs: the answer webhook, not the status callback, reports the answer
    picked_up: float | None = None  # when the ``answered`` status callback came (AMD still listening)


def _sip(params: Mapping[str, str]) -> int | None:
    code = params.get("SipResponseCode", "")
    return int(code) if code.isdigit() else None


def map_status(call_id: str, params: Mapping[str, str], now: float, state: CallState) -> list[TelephonyEvent]:
    """Twilio status-callback form fields -> domain events (idempotent; ``state`` is updated)."""
    if state.done:
        return []
    status = params.get("CallStatus", "").lower()
    out: list[TelephonyEvent] = []
    if status == "ringing" and not state.rang and not state.answered:
        state.rang = True
        out.append(Ringing(call_id, now))
    elif status in ("in-progress", "answered") and not state.answered:
        answered_by = params.get("AnsweredBy", "").lower()
        if state.amd and not answered_by:  # picked up; AMD's verdict comes with the answer webhook
            state.picked_up = now if state.picked_up is None else state.picked_up
            return out
        state.answered = True
        amd = ANSWERED_BY.get(answered_by) if answered_by else None
        out.append(Answered(call_id, now, amd, answered_by or None, picked_up_at=state.picked_up))
    elif status == "completed":
        sip = _sip(params)
        if not state.answered:  # completed without an answer report: settle as failed
            unknown: tuple[int | None, FailReason] = (None, "error")
            cause, reason = SIP_CAUSES.get(sip or 0, unknown)
            state.done = True
            return [Failed(call_id, now, reason, cause)]
        state.done = True
        talk = now - state.connected_at if state.connected_at is not None else None
        out.append(Ended(call_id, now, 16, "completed", talk))
    elif status in ("busy", "no-answer", "failed", "canceled"):
        sip = _sip(params)
        mapped = SIP_CAUSES.get(sip or 0)
        if status == "busy":
            reason, cause = "busy", 17
        elif status == "no-answer" or status == "canceled":
            reason, cause = "no_answer", 19 if status == "no-answer" else None
        else:
            reason, cause = (mapped[1], mapped[0]) if mapped else ("error", None)
        state.done = True
        out.append(Failed(call_id, now, reason, cause))
    return out


def twilio_address(phone: str) -> str:
    """An agent phone as Twilio's ``To``: ``+8613900000101``, ``PSTN/8613900000101`` -> ``+8613900000101``,
    ``SIP/1001@pbx.example.com`` -> ``sip:1001@pbx.example.com``, ``Client/ag1`` -> ``client:ag1``."""
    if "/" not in phone:
        return check_number(phone)
    tech, rest = check_dial_string(phone).split("/", 1)
    tech = tech.lower()
    if tech == "pstn":
        number = check_number(rest)
        return number if number.startswith("+") else f"+{number}"
    if tech == "sip" and "@" in rest:
        return f"sip:{rest}"
    if tech == "client":
        return f"client:{check_id(rest, 'client name')}"
    raise ValueError(f"not a phone Twilio can call: {phone!r} (use PSTN/<number>, SIP/<user@host>, Client/<name>)")


SEEN_KEPT = 50_000  # conference callbacks remembered against replays

HOLD_S = 30  # an answered call waits in <Pause> this long between two <Redirect>s to its hold webhook


def hold_twiml(url: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="{HOLD_S}"/>'
            f'<Redirect method="POST">{escape(url)}</Redirect></Response>')


def room_dial(agent_id: str, *, end_on_exit: bool = False, events_url: str = "") -> str:
    """The ``<Dial><Conference>`` into agent ``agent_id``'s room. A customer's (and a linked agent's) leaving does
    not end the room; the agent's own leg does (``end_on_exit``), and its events come to ``events_url``."""
    room = escape(agent_room(check_id(agent_id, "agent id")))
    events = (f' statusCallback={quoteattr(events_url)} statusCallbackEvent="join leave" '
              f'statusCallbackMethod="POST"') if events_url else ""
    return (f'<Dial><Conference beep="false" startConferenceOnEnter="true" '
            f'endConferenceOnExit="{"true" if end_on_exit else "false"}"{events}>{room}</Conference></Dial>')


@dataclass
class TwilioRecording:
    """One leg's recording on Twilio: the Recordings API's resource on the customer's call."""

    call_id: str
    call_sid: str
    sid: str
    paused: bool = False
    status: str = "in-progress"  # the last RecordingStatus: completed, absent, failed at the end
    done: asyncio.Event | None = None


class MediaHttpClient(TwilioHttpClient):
    """The twilio library's HTTP client, except that a recording's media (``.wav``, ``.mp3``) comes back as bytes
    (the library's ``Response`` holds decoded text, which would garble audio) and follows Twilio's redirect."""

    MEDIA = (".wav", ".mp3")

    def request(self, method: str, url: str, params: Any = None, data: Any = None, headers: Any = None,
                auth: Any = None, timeout: float | None = None, allow_redirects: bool = False) -> TwilioResponse:
        if method.upper() != "GET" or not url.split("?", 1)[0].endswith(self.MEDIA):
            return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)
        session = self.session or Session()
        got = session.get(url, params=params, headers=headers, auth=auth, timeout=timeout or self.timeout or 30,
                          allow_redirects=True)
        response = TwilioResponse(got.status_code, "", got.headers)
        response.content = got.content  # bytes: the audio as sent
        return response


class TwilioCalls:
    """Telephony port over Twilio. ``client`` is a ``twilio.rest.Client`` (tests pass one whose ``http_client``
    is a fake, so no network is used); ``prompt_url`` gives the signed URL of a prompt name."""

    server = "twilio"

    def __init__(self, client: Client, from_number: str, public_url: str, *, machine_detection: bool = True,
                 prompt_url: Callable[[str], str] | None = None, gather_timeout_s: int = 6,
                 line: "TwilioLine | None" = None, clock: Monotonic | None = None,
                 recording_wait_s: float = 600.0) -> None:
        self.client = client
        self.from_number = from_number
        self.public_url = public_url.rstrip("/")
        self.machine_detection = machine_detection
        self.prompt_url = prompt_url or (lambda name: f"{self.public_url}/prompts/unsigned/{name}.wav")
        self.gather_timeout_s = gather_timeout_s
        self.stream = EventStream()
        self._sids: dict[str, str] = {}
        self._states: dict[str, CallState] = {}
        self._agents: dict[str, str] = {}  # agent id -> the CallSid of their phone leg
        self._joined: set[str] = set()
        self._rooms: dict[str, str] = {}  # call id -> the agent whose conference the customer is in
        self._held: set[str] = set()  # call ids on hold in their conference
        self._conferences: dict[str, str] = {}  # room name -> ConferenceSid of the room's current conference
        self._abandoned: set[str] = set()  # ConferenceSids their agent's leg left for another room (a link)
        self._seen: set[tuple[str, str, str]] = set()  # conference callbacks handled (a replay has no effect)
        self._seen_order: deque[tuple[str, str, str]] = deque()
        self._links: dict[str, str] = {}  # agent whose leg is in another agent's room -> that agent
        self._monitors: dict[str, tuple[str, str, str]] = {}  # supervisor -> (call sid, agent, mode)
        self._recordings: dict[str, TwilioRecording] = {}  # recording name (``rec-<id>``) -> its Twilio recording
        self.recording_wait_s = recording_wait_s  # how long ``record_audio`` waits for the completed callback
        self._loop: asyncio.AbstractEventLoop | None = None
        self.clock = clock  # the events' times (None: the event loop's); tests give a virtual clock
        self.line = line
        if line is not None:
            line.plug(self)  # this process's webhook routes feed this backend from now on

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.stream.publish(ServerUp(self.server, self._now()))

    async def aclose(self) -> None:
        if self.line is not None:
            self.line.unplug(self)
        self.stream.close()

    def events(self) -> AsyncIterator[TelephonyEvent]:
        return self.stream.__aiter__()

    def _now(self) -> float:
        return self.clock.time() if self.clock is not None else asyncio.get_running_loop().time()

    def _url(self, call_id: str, what: str) -> str:
        return f"{self.public_url}/twilio/calls/{call_id}/{what}"

    def _agent_url(self, agent_id: str, what: str) -> str:
        return f"{self.public_url}/twilio/agents/{agent_id}/{what}"

    async def originate(
        self, call_id: str, number: str, caller_id: str, variables: Mapping[str, str], timeout_s: float
    ) -> None:
        variables = check_originate(call_id, number, caller_id, variables)
        if call_id in self._states:
            raise ValueError(f"call {call_id} is already in flight")
        amd = self.machine_detection if V.CC_AMD not in variables else variables[V.CC_AMD] == "1"
        kwargs: dict[str, Any] = dict(
            to=number,
            from_=caller_id if caller_id.lstrip("+").isdigit() else self.from_number,
            url=self._url(call_id, "answered"),
            method="POST",
            status_callback=self._url(call_id, "status"),
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            timeout=int(timeout_s),
        )
        if amd:
            kwargs["machine_detection"] = "Enable"
        self._states[call_id] = CallState(amd=amd)
        try:
            call = await asyncio.to_thread(self.client.calls.create, **kwargs)
        except TwilioException as exc:
            self._states.pop(call_id, None)
            raise OriginateRejected(call_id, str(exc)) from None
        except OSError as exc:  # the network (requests' errors are OSErrors): Twilio may or may not have it
            self._states.pop(call_id, None)
            raise TelephonyError(f"Twilio did not confirm call {call_id}: {type(exc).__name__}") from None
        self._sids[call_id] = call.sid

    # --- webhooks (fed by webhooks.py, in the engine's loop) ----------------------------------------------------
    def status_callback(self, call_id: str, params: Mapping[str, str], now: float | None = None) -> list[TelephonyEvent]:
        """Feed one status callback (or answer webhook) of a call; returns and publishes the events."""
        state = self._states.get(call_id)
        sid = params.get("CallSid")
        if state is None and sid:  # a call that goes on under another id (``reassign``): its callbacks follow it
            call_id = self.call_of_sid(sid) or call_id
            state = self._states.get(call_id)
        if state is None:
            return []
        if sid and call_id not in self._sids:
            self._sids[call_id] = sid  # the REST answer is not back yet
        at = self._now() if now is None else now
        events = map_status(call_id, params, at, state)
        if state.done:
            self._forget(call_id)
        for event in events:
            self.stream.publish(event)
        return events

    def _forget(self, call_id: str) -> None:
        self._states.pop(call_id, None)
        self._sids.pop(call_id, None)
        self._rooms.pop(call_id, None)
        self._held.discard(call_id)

    def answered_webhook(self, call_id: str, params: Mapping[str, str]) -> str:
        """Twilio fetched the call's TwiML (it was picked up; after AMD when it runs): the answer, and hold."""
        self.status_callback(call_id, {**params, "CallStatus": "in-progress"})
        return hold_twiml(self._url(call_id, "answered"))

    def parked(self, call_id: str, call_sid: str) -> str:
        """An IVR hand-off's caller (``cc-h<id>``) waits: reported once as ``Answered``, held until connected."""
        if call_id not in self._states and call_id not in self._sids:
            self._states[call_id] = CallState(answered=True)
            self._sids[call_id] = call_sid
            self.stream.publish(Answered(call_id, self._now()))
        return hold_twiml(self._url(call_id, "parked"))

    def call_of_sid(self, call_sid: str) -> str | None:
        return next((cid for cid, sid in self._sids.items() if sid == call_sid), None)

    def status_of_sid(self, call_sid: str, params: Mapping[str, str]) -> list[TelephonyEvent]:
        """A status callback of a call Twilio placed to us (the hotline's number: a hand-off's caller)."""
        call_id = self.call_of_sid(call_sid)
        return [] if call_id is None else self.status_callback(call_id, params)

    def digits(self, call_id: str, digits: str) -> str:
        """Keys typed during a menu (``play_menu``'s ``<Gather>``): ``DigitPressed`` each, and hold."""
        if call_id in self._states:
            for d in digits[:4]:
                self.stream.publish(DigitPressed(call_id, self._now(), d))
        return hold_twiml(self._url(call_id, "answered"))

    def _fresh(self, kind: str, params: Mapping[str, str]) -> bool:
        """False for a callback already handled (a replay): keyed on its conference (or recording) and sequence
        number, or on its event and call when Twilio sent no sequence number."""
        key = (kind, params.get("ConferenceSid", "") or params.get("RecordingSid", ""),
               params.get("SequenceNumber", "") or
               f"{params.get('StatusCallbackEvent', '')}/{params.get('CallSid', '')}/{params.get('RecordingStatus', '')}")
        if key in self._seen:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > SEEN_KEPT:  # the oldest forgotten: Twilio retries within minutes, not days
            self._seen.discard(self._seen_order.popleft())
        return True

    def agent_status(self, agent_id: str, params: Mapping[str, str]) -> None:
        """The agent leg's own status callback: a final status is ``AgentLeft`` (an earlier leg's, replayed once
        the agent is back on a new one, is not)."""
        if params.get("CallStatus", "") in ("completed", "busy", "failed", "no-answer", "canceled"):
            current, sid = self._agents.get(agent_id), params.get("CallSid")
            if current is not None and sid and sid != current:
                return
            if current == sid or agent_id in self._joined:
                self._agents.pop(agent_id, None)
                self._links.pop(agent_id, None)
                if agent_id in self._joined:
                    self._joined.discard(agent_id)
                    self.stream.publish(AgentLeft(agent_id, self._now(), 16))

    def conference_event(self, agent_id: str, params: Mapping[str, str]) -> None:
        """The agent's conference: their own leg joining is ``AgentJoined``, leaving ``AgentLeft``."""
        event, sid = params.get("StatusCallbackEvent", ""), params.get("CallSid", "")
        conference = params.get("ConferenceSid", "")
        if not self._fresh("conference", params):
            return  # a replay
        room = params.get("FriendlyName") or agent_room(agent_id)
        if event == "participant-join" and conference and room == agent_room(agent_id):
            self._conferences[room] = conference  # the room's conference: its participants can be held, muted
        if sid != self._agents.get(agent_id):
            return  # a customer, a linked agent or a supervisor entering or leaving the room
        if room != agent_room(agent_id):
            return  # their leg in another agent's room (a link): not their shift's beginning or end
        if event == "participant-join" and agent_id not in self._joined:
            self._joined.add(agent_id)
            self.stream.publish(AgentJoined(agent_id, self._now()))
        elif event == "participant-leave" and agent_id in self._joined:
            if conference in self._abandoned or agent_id in self._links:
                return  # their leg went into another agent's room (a link): still on shift
            self._joined.discard(agent_id)
            self.stream.publish(AgentLeft(agent_id, self._now(), 16))

    # --- commands ---------------------------------------------------------------------------------------------
    def _sid(self, call_id: str) -> str:
        sid = self._sids.get(check_id(call_id))
        if sid is None:
            raise TelephonyError(f"unknown call {call_id}")
        return sid

    async def _update(self, sid: str, **kwargs: Any) -> None:
        try:
            await asyncio.to_thread(self.client.calls(sid).update, **kwargs)
        except TwilioException as exc:
            raise TelephonyError(str(exc)) from None
        except OSError as exc:
            raise TelephonyError(f"Twilio unreachable: {type(exc).__name__}") from None

    async def connect(self, call_id: str, agent_id: str) -> None:
        check_id(agent_id, "agent id")
        sid = self._sid(call_id)
        if agent_id not in self._joined:
            raise TelephonyError(f"agent {agent_id} is not in their conference")
        await self._update(sid, twiml=f"<Response>{room_dial(agent_id)}</Response>")
        self._rooms[call_id] = agent_id
        self._held.discard(call_id)
        state = self._states.get(call_id)
        now = self._now()
        if state is not None:
            state.connected_at = now
        self.stream.publish(Connected(call_id, now, agent_id))

    async def hangup(self, call_id: str) -> None:
        if call_id in self._sids:
            await self._update(self._sids[call_id], status="completed")

    async def play(self, call_id: str, prompt: str) -> None:
        check_prompt(prompt)
        url = escape(self.prompt_url(prompt))
        await self._update(self._sid(call_id), twiml=f"<Response><Play>{url}</Play><Hangup/></Response>")

    async def play_menu(self, call_id: str, prompt: str) -> None:
        """Play ``prompt`` inside a one-key ``<Gather>`` (a key pressed while it plays is taken): the key comes
        back as ``DigitPressed``; silence after it hangs up."""
        check_prompt(prompt)
        url = escape(self.prompt_url(prompt))
        action = escape(self._url(call_id, "digits"))
        await self._update(self._sid(call_id), twiml=(
            f'<Response><Gather input="dtmf" numDigits="1" timeout="{self.gather_timeout_s}" action="{action}" '
            f'method="POST" actionOnEmptyResult="false"><Play>{url}</Play></Gather><Hangup/></Response>'))

    async def reassign(self, call_id: str, new_call_id: str) -> None:
        """The call goes on under ``new_call_id`` (a notification call handed to the call core as a hand-off):
        reported there as ``Answered`` (parked); nothing more is reported under the old id."""
        check_id(new_call_id)
        sid, state = self._sid(call_id), self._states.pop(call_id, None)
        self._sids.pop(call_id, None)
        self._sids[new_call_id] = sid
        self._states[new_call_id] = CallState(answered=True)
        await self._update(sid, twiml=hold_twiml(self._url(new_call_id, "parked")))
        self.stream.publish(Answered(new_call_id, self._now()))
        del state

    async def agent_login(self, agent_id: str, phone: str) -> None:
        """Call the agent's phone into their conference. ``phone``: a number, or a dial string of the agent-phone
        template: ``PSTN/<number>``, ``SIP/<user@host>`` (-> ``sip:``), ``Client/<name>`` (-> ``client:``)."""
        check_id(agent_id, "agent id")
        phone = twilio_address(phone)
        twiml = f"<Response>{self._own_room(agent_id)}</Response>"
        try:
            call = await asyncio.to_thread(self.client.calls.create, to=phone, from_=self.from_number, twiml=twiml,
                                           status_callback=self._agent_url(agent_id, "status"),
                                           status_callback_event=["completed"], status_callback_method="POST")
        except TwilioException as exc:
            raise OriginateRejected(f"agent-{agent_id}", str(exc)) from None
        except OSError as exc:
            raise TelephonyError(f"Twilio unreachable: {type(exc).__name__}") from None
        self._agents[agent_id] = call.sid  # joined when its conference says so

    async def agent_logout(self, agent_id: str) -> None:
        sid = self._agents.pop(agent_id, None)
        self._links.pop(agent_id, None)
        if sid is not None:
            await self._update(sid, status="completed")
        if agent_id in self._joined:
            self._joined.discard(agent_id)
            self.stream.publish(AgentLeft(agent_id, self._now(), 16))


    # --- call controls (``CallControls``) -------------------------------------------------------------------------
    def _own_room(self, agent_id: str) -> str:
        return room_dial(agent_id, end_on_exit=True, events_url=self._agent_url(agent_id, "conference"))

    def _room_of(self, call_id: str) -> str:
        self._sid(call_id)
        agent_id = self._rooms.get(call_id)
        if agent_id is None:
            raise TelephonyError(f"call {call_id} is not in an agent's conference")
        return agent_id

    async def _rest(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except TwilioException as exc:
            raise TelephonyError(str(exc)) from None
        except OSError as exc:
            raise TelephonyError(f"Twilio unreachable: {type(exc).__name__}") from None

    async def _conference_sid(self, agent_id: str) -> str:
        """The SID of the conference of agent ``agent_id``'s room: from its callbacks, else asked of Twilio."""
        room = agent_room(agent_id)
        sid = self._conferences.get(room)
        if sid is None:
            found = await self._rest(self.client.conferences.list, friendly_name=room, status="in-progress", limit=1)
            if not found:
                raise TelephonyError(f"no conference {room} is in progress")
            sid = self._conferences[room] = str(found[0].sid)
        return sid

    async def _participant(self, agent_id: str, call_sid: str, **changes: Any) -> None:
        conference = await self._conference_sid(agent_id)
        await self._rest(self.client.conferences(conference).participants(call_sid).update, **changes)

    async def hold(self, call_id: str) -> None:
        """The customer's participant on hold: they hear our hold TwiML, nothing said in the room reaches them."""
        agent_id = self._room_of(call_id)
        await self._participant(agent_id, self._sid(call_id), hold=True, hold_url=self._url(call_id, "hold"),
                                hold_method="POST")
        self._held.add(call_id)

    async def unhold(self, call_id: str, agent_id: str) -> None:
        """Back to the room of ``agent_id``: the hold taken off in the same room, else moved (no second Connected)."""
        check_id(agent_id, "agent id")
        room = self._room_of(call_id)
        if room == agent_id:
            await self._participant(agent_id, self._sid(call_id), hold=False)
        else:
            if agent_id not in self._joined:
                raise TelephonyError(f"agent {agent_id} is not in their conference")
            await self._update(self._sid(call_id), twiml=f"<Response>{room_dial(agent_id)}</Response>")
            self._rooms[call_id] = agent_id
        self._held.discard(call_id)

    def hold_twiml(self, call_id: str) -> str:
        """What a held customer hears (our hold URL): the "please wait" prompt, then a pause, again and again."""
        plays = "".join(f"<Play>{escape(self.prompt_url(f'cc/{lang}/please_wait'))}</Play>" for lang in ("zh-CN", "en"))
        return (f'<?xml version="1.0" encoding="UTF-8"?><Response>{plays}<Pause length="{HOLD_S // 2}"/>'
                f'<Redirect method="POST">{escape(self._url(call_id, "hold"))}</Redirect></Response>')

    async def mute_agent(self, agent_id: str, muted: bool) -> None:
        check_id(agent_id, "agent id")
        leg = self._agents.get(agent_id)
        if leg is None or agent_id not in self._joined:
            raise TelephonyError(f"agent {agent_id} is not in their conference")
        await self._participant(self._links.get(agent_id, agent_id), leg, muted=muted)

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        """``<Play digits>`` on the customer's call (``w``: half a second between keys), then back into its room."""
        check_dtmf(digits)
        if any(d in "ABCD" for d in digits):
            raise ValueError("Twilio plays only the keys 0-9 * #")
        agent_id = self._room_of(call_id)
        if call_id in self._held:
            raise TelephonyError(f"call {call_id} is on hold")
        await self._update(self._sid(call_id), twiml=(f'<Response><Play digits="{"w".join(digits)}"/>'
                                                      f'{room_dial(agent_id)}</Response>'))

    async def link_rooms(self, agent_id: str, other_agent_id: str) -> None:
        """The second agent's leg into the first agent's room (they hear the room; when that room ends, their
        TwiML takes them back into their own)."""
        for a in (agent_id, other_agent_id):
            if check_id(a, "agent id") not in self._joined or a not in self._agents:
                raise TelephonyError(f"agent {a} is not in their conference")
        if other_agent_id in self._links or agent_id in self._links:
            raise TelephonyError(f"agent {other_agent_id} or {agent_id} is in another room already")
        own = self._conferences.get(agent_room(other_agent_id))
        if own is not None:
            self._abandoned.add(own)  # its participant-leave is not the agent leaving their shift
        self._links[other_agent_id] = agent_id
        try:
            await self._update(self._agents[other_agent_id], twiml=(
                f"<Response>{room_dial(agent_id)}{self._own_room(other_agent_id)}</Response>"))
        except TelephonyError:
            self._links.pop(other_agent_id, None)
            raise

    async def unlink_rooms(self, agent_id: str, other_agent_id: str) -> None:
        """Whichever of the two sits in the other's room goes back into their own."""
        for visitor, host in ((other_agent_id, agent_id), (agent_id, other_agent_id)):
            if self._links.get(check_id(visitor, "agent id")) == host and visitor in self._agents:
                self._conferences.pop(agent_room(visitor), None)  # their room starts anew: its SID from its callback
                await self._update(self._agents[visitor], twiml=f"<Response>{self._own_room(visitor)}</Response>")
                self._links.pop(visitor, None)
                return

    async def to_ivr(self, call_id: str, menu: str) -> None:
        """The caller goes to the hotline's IVR webhook at ``menu`` (a new visit of the IVR on the same call): the
        call is no longer ours (``Ended``, "to_ivr", now; its later callbacks are not reported)."""
        check_menu(menu)
        sid = self._sid(call_id)
        query = urlencode({"entry": menu, "visit": f"{call_id}-{secrets.token_hex(4)}"})  # new after a restart too
        await self._update(sid, url=f"{self.public_url}/twilio/voice?{query}", method="POST")
        state = self._states.get(call_id)
        now = self._now()
        talk = now - state.connected_at if state is not None and state.connected_at is not None else None
        self._forget(call_id)
        self.stream.publish(Ended(call_id, now, 16, "to_ivr", talk))

    async def monitor(self, supervisor_id: str, phone: str, agent_id: str, mode: MonitorMode) -> None:
        """The supervisor's phone into the agent's conference (Participants API): ``listen`` muted, ``whisper``
        coaching the agent (only the agent hears them), ``barge`` a full participant. A second mode on the same
        agent changes the participant."""
        check_id(supervisor_id, "supervisor id")
        address = twilio_address(phone)
        if mode not in MONITOR_MODES:
            raise ValueError(f"unknown monitor mode {mode!r}")
        leg = self._agents.get(check_id(agent_id, "agent id"))
        if leg is None or agent_id not in self._joined:
            raise TelephonyError(f"agent {agent_id} is not in their conference")
        room = self._links.get(agent_id, agent_id)
        how: dict[str, Any] = {"muted": mode == "listen", "coaching": mode == "whisper"}
        if mode == "whisper":
            how["call_sid_to_coach"] = leg
        current = self._monitors.get(supervisor_id)
        if current is not None and current[1] == agent_id:
            await self._participant(room, current[0], **how)
            self._monitors[supervisor_id] = (current[0], agent_id, mode)
            return
        if current is not None:
            await self.stop_monitor(supervisor_id)
        conference = await self._conference_sid(room)
        created = await self._rest(self.client.conferences(conference).participants.create, from_=self.from_number,
                                   to=address, beep="false", early_media=False, end_conference_on_exit=False, **how)
        self._monitors[supervisor_id] = (str(created.call_sid), agent_id, mode)

    async def stop_monitor(self, supervisor_id: str) -> None:
        current = self._monitors.pop(check_id(supervisor_id, "supervisor id"), None)
        if current is not None:
            await self._update(current[0], status="completed")

    # --- recording (``RecordsCalls``) ------------------------------------------------------------------------
    def _recording_url(self, name: str) -> str:
        return f"{self.public_url}/twilio/recordings/{name}/status"

    def _recording_of(self, call_id: str) -> TwilioRecording | None:
        return next((r for r in reversed(self._recordings.values()) if r.call_id == call_id and r.done is not None
                     and not r.done.is_set() and r.status == "in-progress"), None)

    async def record_start(self, call_id: str, name: str) -> None:
        """A recording of the customer's call (both directions, one channel) from now on, known as ``name``."""
        check_id(name, "recording name")
        sid = self._sid(call_id)
        if call_id not in self._rooms:
            raise TelephonyError(f"call {call_id} is not with an agent")
        if self._recording_of(call_id) is not None:
            raise TelephonyError(f"call {call_id} is being recorded already")
        created = await self._rest(self.client.calls(sid).recordings.create,
                                   recording_status_callback=self._recording_url(name),
                                   recording_status_callback_event=["in-progress", "completed", "absent"],
                                   recording_status_callback_method="POST", recording_channels="mono",
                                   recording_track="both", trim="do-not-trim")
        self._recordings[name] = TwilioRecording(call_id, sid, str(created.sid), done=asyncio.Event())

    async def record_mute(self, call_id: str, muted: bool) -> None:
        """Paused (Twilio writes silence: the span keeps its length in the file) or recording again."""
        rec = self._recording_of(check_id(call_id))
        if rec is None:
            raise TelephonyError(f"call {call_id} is not being recorded")
        if muted == rec.paused:
            return
        changes: dict[str, Any] = {"status": "paused", "pause_behavior": "silence"} if muted else {"status": "in-progress"}
        await self._rest(self.client.calls(rec.call_sid).recordings(rec.sid).update, **changes)
        rec.paused = muted

    async def record_stop(self, call_id: str) -> None:
        """The leg's recording stopped while the call goes on (a transfer); a call that is over stopped it itself."""
        rec = self._recording_of(check_id(call_id))
        if rec is None:
            return
        rec.status = "stopped"  # this leg's: the call's next leg may start its own recording now
        if call_id not in self._sids:
            return
        try:
            await self._rest(self.client.calls(rec.call_sid).recordings(rec.sid).update, status="stopped")
        except TelephonyError as exc:  # the call ended meanwhile: Twilio completed the recording
            log.debug("stop of Twilio recording %s: %s", rec.sid, exc)

    def recording_status(self, name: str, params: Mapping[str, str]) -> None:
        """The recording's status callback: ``completed`` (the file can be fetched), ``absent`` or ``failed`` (no
        file) end the wait of ``record_audio``; another recording's SID or a replay has no effect."""
        rec = self._recordings.get(name)
        if rec is None or params.get("RecordingSid") != rec.sid or rec.done is None or rec.done.is_set():
            return
        status = params.get("RecordingStatus", "")
        if status in ("completed", "absent", "failed"):
            rec.status = status
            rec.done.set()

    async def record_audio(self, call_id: str, name: str) -> bytes | None:
        """The finished WAV, fetched from Twilio once its completed callback came (None: no file, or no callback
        within ``recording_wait_s``)."""
        rec = self._recordings.get(name)
        if rec is None or rec.call_id != call_id or rec.done is None:
            return None
        try:
            await asyncio.wait_for(rec.done.wait(), self.recording_wait_s)
        except TimeoutError:
            log.warning("Twilio recording %s: no completed callback", rec.sid)
            return None
        finally:
            self._recordings.pop(name, None)
        if rec.status != "completed":
            return None
        url = f"https://api.twilio.com/2010-04-01/Accounts/{self.client.account_sid}/Recordings/{rec.sid}.wav"
        got = await self._rest(self.client.request, "GET", url, allow_redirects=True)
        body = got.content
        if got.status_code != 200 or not isinstance(body, bytes):
            raise TelephonyError(f"Twilio recording {rec.sid}: media not fetched (HTTP {got.status_code}"
                                 f"{', decoded as text: use MediaHttpClient' if isinstance(body, str) else ''})")
        return body


class TwilioLine:
    """Where the signed webhook routes of this process find the dialler's Twilio backend (the composition root
    builds one; the backend is plugged in while its dialler runs). With no backend plugged the routes answer 503
    (the dialler is restarting, or runs in another process: Twilio's callbacks must reach the dialler's)."""

    def __init__(self) -> None:
        self.calls: TwilioCalls | None = None

    def plug(self, calls: TwilioCalls) -> None:
        self.calls = calls

    def unplug(self, calls: TwilioCalls) -> None:
        if self.calls is calls:
            self.calls = None
