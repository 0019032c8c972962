"""Twilio Programmable Voice adapter: the same IVR flow as TwiML webhooks.

``POST /twilio/voice`` starts a call; each ``<Gather input="dtmf">`` posts to
``/twilio/voice/input?step=N`` (and a ``<Redirect>`` to ``...&timeout=1`` follows it for silence);
``POST /twilio/voice/status`` records status callbacks.  The interpreter's state lives server-side
per CallSid in a :class:`CallStateStore`.

Every request's ``X-Twilio-Signature`` is checked against the public URL (403 otherwise).  The
signature has no timestamp, so a replayed request must have no second effect: each input is tied
to its step, a step is consumed once, and a replay (same step, or same ``I-Twilio-Idempotency-Token``)
gets the TwiML that was returned the first time.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from callcenter.ivr.backend import CallContext, IvrBackend, run_action
from callcenter.ivr.interpreter import (
    SPEECH_COMMANDS,
    Collect,
    Command,
    DigitsEntered,
    Event,
    Handoff,
    HangUp,
    Hangup,
    IvrSession,
    Record,
    RunAction,
    Timeout,
)
from callcenter.ivr.model import Flow
from callcenter.ivr.textphone import speech_text

TWILIO_LANG = {"zh-CN": "zh-CN", "en": "en-US"}
XML = "application/xml"


class CallStateStore(Protocol):
    """Server-side state of Twilio calls, one JSON-able dict per CallSid."""

    def load(self, call_sid: str) -> dict[str, Any] | None: ...

    def save(self, call_sid: str, state: dict[str, Any]) -> None: ...


class InMemoryCallStateStore:
    def __init__(self) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def load(self, call_sid: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._states.get(call_sid)
            return None if state is None else _copy(state)

    def save(self, call_sid: str, state: dict[str, Any]) -> None:
        with self._lock:
            self._states[call_sid] = _copy(state)


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(state))  # JSON round trip: what a DB-backed store would keep


class _Voice:
    def __init__(self, backend: IvrBackend, flow: Flow, public_url: str, store: CallStateStore,
                 limits: dict[str, int] | None, handoff_queue: str) -> None:
        self.backend = backend
        self.flow = flow
        self.public_url = public_url.rstrip("/")
        self.store = store
        self.limits = limits or {}
        self.handoff_queue = handoff_queue
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, call_sid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(call_sid, threading.Lock())

    def input_url(self, step: int, **extra: str) -> str:
        return f"{self.public_url}/twilio/voice/input?{urlencode({'step': step, **extra})}"

    def start(self, call_sid: str, caller: str, token: str | None) -> str:
        with self.lock(call_sid):
            state = self.store.load(call_sid)
            if state is not None:  # replay of the first webhook
                return str(state["responses"]["start"])
            session = IvrSession(self.flow, caller=caller, call_id=call_sid, limits=self.limits)
            state = {"step": 0, "responses": {}, "tokens": {}}
            twiml = self._run(session, session.start(), state)
            state["responses"]["start"] = twiml
            if token:
                state["tokens"][token] = twiml
            self.store.save(call_sid, state)
            return twiml

    def input(self, call_sid: str, step: int, event: Event, token: str | None) -> str:
        with self.lock(call_sid):
            state = self.store.load(call_sid)
            if state is None:
                return _hangup_twiml()
            if token and token in state["tokens"]:
                return str(state["tokens"][token])
            if step != state["step"]:  # replayed or stale: never fed twice
                cached = state["responses"].get(str(step))
                return str(cached) if cached is not None else _hangup_twiml()
            session = IvrSession.restore(self.flow, state["session"])
            twiml = self._run(session, session.feed(event), state)
            state["responses"][str(step)] = twiml
            if token:
                state["tokens"][token] = twiml
            self.store.save(call_sid, state)
            return twiml

    def end(self, call_sid: str, status: str) -> None:
        """The call is over (status callback): close the session and record why."""
        with self.lock(call_sid):
            state = self.store.load(call_sid)
            if state is None or "session" not in state:
                return
            session = IvrSession.restore(self.flow, state["session"])
            for cmd in session.feed(Hangup(f"twilio_{status}")):
                if isinstance(cmd, Record):
                    self.backend.record_event(call_sid, cmd.step, cmd.detail)
            state["session"] = session.snapshot()
            self.store.save(call_sid, state)

    def _run(self, session: IvrSession, queue: list[Command], state: dict[str, Any]) -> str:
        ctx = CallContext(session.call_id, session.caller, "ivr-twilio")
        response = VoiceResponse()
        says: list[tuple[str, str]] = []
        state["step"] = int(state["step"]) + (1 if "session" in state else 0)
        while queue:
            cmd = queue.pop(0)
            if isinstance(cmd, SPEECH_COMMANDS):
                text = speech_text(cmd)
                if text:
                    lang = getattr(cmd, "lang", session.lang)
                    if says and says[-1][0] == lang:
                        says[-1] = (lang, f"{says[-1][1]} {text}")
                    else:
                        says.append((lang, text))
                continue
            if isinstance(cmd, Record):
                self.backend.record_event(session.call_id, cmd.step, cmd.detail)
            elif isinstance(cmd, RunAction):
                queue.extend(session.feed(run_action(self.backend, cmd, ctx, session.lang)))
            elif isinstance(cmd, Collect):
                step = int(state["step"])
                gather = Gather(input="dtmf", num_digits=cmd.max_digits, timeout=max(1, math.ceil(cmd.timeout_s)),
                                finish_on_key=cmd.terminator or "", action=self.input_url(step), method="POST",
                                action_on_empty_result=False)
                _says(gather, says)
                response.append(gather)
                response.redirect(self.input_url(step, timeout="1"), method="POST")
            elif isinstance(cmd, Handoff):
                _says(response, says)
                response.enqueue(self.handoff_queue)
            elif isinstance(cmd, HangUp):
                _says(response, says)
                response.hangup()
        _says(response, says)
        state["session"] = session.snapshot()
        return str(response)


def _says(target: Any, says: list[tuple[str, str]]) -> None:
    for lang, text in says:
        target.say(text, language=TWILIO_LANG.get(lang, "en-US"))
    says.clear()


def _hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def make_router(backend: IvrBackend, flow: Flow, auth_token: str, public_url: str, state_store: CallStateStore,
                limits: dict[str, int] | None = None, handoff_queue: str = "agents") -> APIRouter:
    """Routes ``POST /twilio/voice``, ``/twilio/voice/input`` and ``/twilio/voice/status``.

    Refuses to build without an auth token: a signature keyed with the empty string is one anyone can compute."""
    if not auth_token:
        raise ValueError("Twilio webhooks need an auth token: an empty key verifies forged signatures")
    validator = RequestValidator(auth_token)
    voice = _Voice(backend, flow, public_url, state_store, limits, handoff_queue)
    router = APIRouter()

    async def verified_form(request: Request) -> dict[str, str] | None:
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        url = voice.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not validator.validate(url, params, signature):
            return None
        return params

    def forbidden() -> Response:
        return Response("invalid signature", status_code=403, media_type="text/plain")

    @router.post("/twilio/voice")
    async def start(request: Request) -> Response:
        params = await verified_form(request)
        if params is None or not params.get("CallSid"):
            return forbidden()
        twiml = await asyncio.to_thread(voice.start, params["CallSid"], params.get("From", ""),
                                        request.headers.get("I-Twilio-Idempotency-Token"))
        return Response(twiml, media_type=XML)

    @router.post("/twilio/voice/input")
    async def gathered(request: Request, step: int, timeout: int = 0) -> Response:
        params = await verified_form(request)
        if params is None or not params.get("CallSid"):
            return forbidden()
        event: Event = DigitsEntered(params["Digits"]) if "Digits" in params and not timeout else Timeout()
        twiml = await asyncio.to_thread(voice.input, params["CallSid"], step, event,
                                        request.headers.get("I-Twilio-Idempotency-Token"))
        return Response(twiml, media_type=XML)

    @router.post("/twilio/voice/status")
    async def status(request: Request) -> Response:
        params = await verified_form(request)
        if params is None or not params.get("CallSid"):
            return forbidden()
        detail: dict[str, Any] = {k: params[k] for k in ("CallStatus", "CallDuration", "Direction", "Timestamp")
                                  if k in params}
        await asyncio.to_thread(backend.record_event, params["CallSid"], "twilio_status", detail)
        if params.get("CallStatus") in ("completed", "busy", "failed", "no-answer", "canceled"):
            await asyncio.to_thread(voice.end, params["CallSid"], params["CallStatus"])
        return Response(status_code=204)

    return router
