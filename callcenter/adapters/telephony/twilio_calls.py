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

``webhooks.py`` holds the signed routes (``TwilioLine``: the dialler's backend of this process, which they feed);
``map_status`` is the pure mapping of status callbacks. The twilio library is synchronous: its calls run in a
worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from twilio.base.exceptions import TwilioException
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
    OriginateRejected,
    Ringing,
    ServerUp,
    TelephonyError,
    TelephonyEvent,
    check_dial_string,
    check_id,
    check_number,
    check_prompt,
    check_originate,
)
from callcenter.ports import channel_variables as V
from callcenter.ports.calendar import Monotonic
from callcenter.ports.channel_variables import agent_room

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


HOLD_S = 30  # an answered call waits in <Pause> this long between two <Redirect>s to its hold webhook


def hold_twiml(url: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="{HOLD_S}"/>'
            f'<Redirect method="POST">{escape(url)}</Redirect></Response>')


class TwilioCalls:
    """Telephony port over Twilio. ``client`` is a ``twilio.rest.Client`` (tests pass one whose ``http_client``
    is a fake, so no network is used); ``prompt_url`` gives the signed URL of a prompt name."""

    server = "twilio"

    def __init__(self, client: Client, from_number: str, public_url: str, *, machine_detection: bool = True,
                 prompt_url: Callable[[str], str] | None = None, gather_timeout_s: int = 6,
                 line: "TwilioLine | None" = None, clock: Monotonic | None = None) -> None:
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
            self._states.pop(call_id, None)
            self._sids.pop(call_id, None)
        for event in events:
            self.stream.publish(event)
        return events

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

    def agent_status(self, agent_id: str, params: Mapping[str, str]) -> None:
        """The agent leg's own status callback: a final status is ``AgentLeft``."""
        if params.get("CallStatus", "") in ("completed", "busy", "failed", "no-answer", "canceled"):
            if self._agents.get(agent_id) == params.get("CallSid") or agent_id in self._joined:
                self._agents.pop(agent_id, None)
                if agent_id in self._joined:
                    self._joined.discard(agent_id)
                    self.stream.publish(AgentLeft(agent_id, self._now(), 16))

    def conference_event(self, agent_id: str, params: Mapping[str, str]) -> None:
        """The agent's conference: their own leg joining is ``AgentJoined``, leaving ``AgentLeft``."""
        event, sid = params.get("StatusCallbackEvent", ""), params.get("CallSid", "")
        if sid != self._agents.get(agent_id):
            return  # a customer entering or leaving the room
        if event == "participant-join" and agent_id not in self._joined:
            self._joined.add(agent_id)
            self.stream.publish(AgentJoined(agent_id, self._now()))
        elif event == "participant-leave" and agent_id in self._joined:
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
        room = escape(agent_room(agent_id))
        await self._update(sid, twiml='<Response><Dial><Conference beep="false" startConferenceOnEnter="true" '
                                      f'endConferenceOnExit="false">{room}</Conference></Dial></Response>')
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
        room = escape(agent_room(agent_id))
        events = escape(self._agent_url(agent_id, "conference"))
        twiml = (f'<Response><Dial><Conference beep="false" startConferenceOnEnter="true" endConferenceOnExit="true" '
                 f'statusCallback="{events}" statusCallbackEvent="join leave" statusCallbackMethod="POST">{room}'
                 f'</Conference></Dial></Response>')
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
        if sid is not None:
            await self._update(sid, status="completed")
        if agent_id in self._joined:
            self._joined.discard(agent_id)
            self.stream.publish(AgentLeft(agent_id, self._now(), 16))


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
