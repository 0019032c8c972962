"""Twilio backend of the telephony port (outbound calls over the REST API).

``TwilioCalls`` places calls with ``Client.calls.create(..., machine_detection="Enable",
status_callback=..., status_callback_event=[...])`` and moves answered calls with
``calls(sid).update(twiml=...)``.  The web layer receives Twilio's status callbacks
(``POST {public_url}/twilio/calls/{call_id}/status``) and hands the form fields to
``TwilioCalls.status_callback(call_id, params)``; ``map_status`` is the pure mapping.
The twilio library is synchronous: its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
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
    Ended,
    EventStream,
    Failed,
    FailReason,
    OriginateRejected,
    Ringing,
    ServerUp,
    TelephonyError,
    TelephonyEvent,
    check_id,
    check_number,
    check_prompt,
    check_originate,
)
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
        state.answered = True
        answered_by = params.get("AnsweredBy", "").lower()
        amd = ANSWERED_BY.get(answered_by) if answered_by else None
        out.append(Answered(call_id, now, amd, answered_by or None))
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


class TwilioCalls:
    """Telephony port over Twilio. ``client`` is a ``twilio.rest.Client`` (tests pass one whose
    ``http_client`` is a fake, so no network is used)."""

    server = "twilio"

    def __init__(self, client: Client, from_number: str, public_url: str, *, machine_detection: bool = True) -> None:
        self.client = client
        self.from_number = from_number
        self.public_url = public_url.rstrip("/")
        self.machine_detection = machine_detection
        self.stream = EventStream()
        self._sids: dict[str, str] = {}
        self._states: dict[str, CallState] = {}
        self._agents: dict[str, str] = {}

    async def start(self) -> None:
        self.stream.publish(ServerUp(self.server, asyncio.get_running_loop().time()))

    async def aclose(self) -> None:
        self.stream.close()

    def events(self) -> AsyncIterator[TelephonyEvent]:
        return self.stream.__aiter__()

    def _url(self, call_id: str, what: str) -> str:
        return f"{self.public_url}/twilio/calls/{call_id}/{what}"

    async def originate(
        self, call_id: str, number: str, caller_id: str, variables: Mapping[str, str], timeout_s: float
    ) -> None:
        check_originate(call_id, number, caller_id, variables)
        if call_id in self._states:
            raise ValueError(f"call {call_id} is already in flight")
        kwargs: dict[str, Any] = dict(
            to=number,
            from_=caller_id if caller_id.lstrip("+").isdigit() else self.from_number,
            url=self._url(call_id, "answered"),
            status_callback=self._url(call_id, "status"),
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            timeout=int(timeout_s),
        )
        if self.machine_detection:
            kwargs["machine_detection"] = "Enable"
        self._states[call_id] = CallState()
        try:
            call = await asyncio.to_thread(self.client.calls.create, **kwargs)
        except TwilioException as exc:
            self._states.pop(call_id, None)
            raise OriginateRejected(call_id, str(exc)) from None
        except OSError as exc:  # the network (requests' errors are OSErrors): Twilio may or may not have it
            self._states.pop(call_id, None)
            raise TelephonyError(f"Twilio did not confirm call {call_id}: {type(exc).__name__}") from None
        self._sids[call_id] = call.sid

    def status_callback(self, call_id: str, params: Mapping[str, str], now: float | None = None) -> list[TelephonyEvent]:
        """Feed one status callback (the web route calls this); returns and publishes the events."""
        state = self._states.get(call_id)
        if state is None:
            return []
        at = asyncio.get_running_loop().time() if now is None else now
        events = map_status(call_id, params, at, state)
        if state.done:
            self._states.pop(call_id, None)
            self._sids.pop(call_id, None)
        for event in events:
            self.stream.publish(event)
        return events

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
        room = escape(agent_room(agent_id))
        await self._update(sid, twiml=f"<Response><Dial><Conference>{room}</Conference></Dial></Response>")
        state = self._states.get(call_id)
        now = asyncio.get_running_loop().time()
        if state is not None:
            state.connected_at = now
        self.stream.publish(Connected(call_id, now, agent_id))

    async def hangup(self, call_id: str) -> None:
        if call_id in self._sids:
            await self._update(self._sids[call_id], status="completed")

    async def play(self, call_id: str, prompt: str) -> None:
        check_prompt(prompt)
        url = quoteattr(f"{self.public_url}/static/prompts/{prompt}.wav")[1:-1]
        await self._update(self._sid(call_id), twiml=f"<Response><Play>{url}</Play><Hangup/></Response>")

    async def agent_login(self, agent_id: str, phone: str) -> None:
        check_id(agent_id, "agent id")
        check_number(phone)
        room = escape(agent_room(agent_id))
        twiml = f'<Response><Dial><Conference startConferenceOnEnter="true" endConferenceOnExit="true">{room}</Conference></Dial></Response>'
        try:
            call = await asyncio.to_thread(self.client.calls.create, to=phone, from_=self.from_number, twiml=twiml)
        except TwilioException as exc:
            raise OriginateRejected(f"agent-{agent_id}", str(exc)) from None
        self._agents[agent_id] = call.sid
        self.stream.publish(AgentJoined(agent_id, asyncio.get_running_loop().time()))

    async def agent_logout(self, agent_id: str) -> None:
        sid = self._agents.pop(agent_id, None)
        if sid is not None:
            await self._update(sid, status="completed")
            self.stream.publish(AgentLeft(agent_id, asyncio.get_running_loop().time(), 16))
