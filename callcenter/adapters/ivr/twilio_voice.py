"""Twilio Programmable Voice adapter: the same IVR flow as TwiML webhooks.

``POST /twilio/voice`` starts a call (``?entry=<menu>&visit=<id>``: an agent sent the caller back to the IVR at
that entry, ``TwilioCalls.to_ivr``); each ``<Gather input="dtmf">`` posts to
``/twilio/voice/input?step=N`` (and a ``<Redirect>`` to ``...&timeout=1`` follows it for silence);
``POST /twilio/voice/status`` records status callbacks.  The interpreter's state lives server-side
per CallSid in a :class:`CallStateStore` (the database in production: any web process can take any
webhook), driven by the one carrier loop (:mod:`callcenter.services.ivr.carrier`).

Every request's ``X-Twilio-Signature`` is checked against the public URL (403 otherwise).  The
signature has no timestamp, so a replayed request must have no second effect, whichever process it
reaches: each webhook (the start, input step N, one status) is *claimed* in the store before anything
is done, the first delivery's claim wins, and its TwiML is stored with the call's new state in one
transaction.  A replay (same step, or same ``I-Twilio-Idempotency-Token``) gets the stored TwiML; one
that arrives while the first is still being handled waits for it (``replay_wait_s``) and is otherwise
told to ask again (``<Pause>`` + ``<Redirect>`` to the same URL).

Keys typed ahead: Twilio delivers keys only inside a ``<Gather>``, so every ``<Say>`` before a key is awaited is
nested in that ``<Gather>`` (a key pressed during a prompt is taken), and backend work that outlasts
``action_inline_s`` does not hold the webhook: the action goes on in this process's pool (``ActionRunning``
through the carrier loop), the webhook answers with a silent ``<Gather>`` (after "please wait" for a slow
action) whose keys the next webhooks add to the call's state (``typed``), and the action's result is stored as
the claim ``action:<step>``, so the webhook that finds it — in any process — goes on from it, the keys kept
answering the next questions (``domain/ivr/typeahead.py``, the rule AGI uses; a beginning of an answer becomes
the next ``<Gather>``'s ``prefix``). A result never stored (the process died) is taken as ``error`` after
``claim_stale_s``: the caller hears it, the action never runs twice.

Speech: with the prompt files and their signer (``adapters/ivr/prompt_files.py``; the web app gives them), each
spoken command plays the rendered prompts AGI would stream (``cc/<lang>/<stem>``, a number or amount as its
token files) as ``<Play>`` of their signed URLs (served by ``web/routes/prompts.py``, rendered on demand); a
command no prompt file renders (free text, a prompt with parameters, the speech tools missing) falls back to
``<Say>`` of its words. Without them every command is a ``<Say>``.

Recording (``rest`` and ``recorder`` given): each run of the flow starts a Recordings-API recording of the caller's
call (its ``recordingStatusCallback`` is ``/twilio/voice/recording``, signed like every webhook); the webhook
whose TwiML ``<Gather>``s a secret (a ``Collect`` with ``secret``: PIN, trading password) pauses it first
(``status=paused``, ``pauseBehavior=silence``: the span keeps its length as silence, no key of the secret is
heard in it), the first webhook whose TwiML does not resumes it, a hand-off stops it (the agent's leg is then
recorded as the agent's call). The spans live in the call's state. The ``completed`` callback — claimed, so a
replay has no effect; a recording the call's state does not know is ignored — fetches the WAV through the
client's HTTP client and keeps it with :meth:`services.ivr.recording.IvrRecorder.keep_whole`, the same row logic
as on Asterisk (``pin`` spans, linked to the session and client, ``order`` with its confirmations).

A hand-off: the caller is redirected to ``/twilio/calls/cc-h<IVR session id>/parked`` (the telephony backend's
webhooks, ``adapters/telephony/twilio_webhooks.py``), where the dialler's call core finds them as a parked
inbound call and moves them into an agent's conference; the call's final status callback is passed on to that
backend (``calls_line``) so the core sees the caller hang up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from twilio.base.exceptions import TwilioException
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from callcenter import i18n
from callcenter.services.ivr.backend import CallContext, Claim, IvrBackend, run_action
from callcenter.services.ivr.carrier import after_hangup, drive_sync, run_sync
from callcenter.domain.ivr.interpreter import (
    ActionResult,
    Collect,
    Command,
    DigitsEntered,
    Event,
    Handoff,
    EndCall,
    FlowRun,
    Record,
    RunAction,
    SetLanguage,
    Timeout,
)
from callcenter.domain.ivr.model import ACTIONS, Flow
from callcenter.domain.ivr.typeahead import apply_typed, kept_after
from callcenter.adapters.ivr.textphone import speech_text
from callcenter.adapters.ivr.prompts import prompt_stem, token_stem
from callcenter.domain.ivr import speech
from callcenter.domain.ivr.interpreter import Say, SayAmount, SayDigits, SayNumber
from callcenter.ports.channel_variables import handoff_call_id

log = logging.getLogger(__name__)
TWILIO_LANG = {"zh-CN": "zh-CN", "en": "en-US"}
XML = "application/xml"


class CallStateStore(Protocol):
    """Server-side state of Twilio calls (one JSON-able dict per CallSid) and the webhooks already handled."""

    def load(self, call_sid: str) -> dict[str, Any] | None: ...

    def claim(self, call_sid: str, key: str, token: str | None) -> Claim:
        """Atomically claim webhook ``key`` ("start", "3", "status:completed") of a call; a replay (the same
        key, or the same idempotency token) gets the first delivery's answer instead."""
        ...

    def answer(self, call_sid: str, key: str, response: str, state: dict[str, Any] | None) -> None:
        """Store a claimed webhook's answer and (unless None) the call's new state, in one transaction."""
        ...

    def answered(self, call_sid: str, key: str) -> str | None:
        """The stored answer of webhook ``key``, if it has one yet."""
        ...


class InMemoryCallStateStore:
    """One process only (tests, demos): production uses the database (StoreCallStateStore)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._states: dict[str, str] = {}
        self._hooks: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def load(self, call_sid: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._states.get(call_sid)
            return None if state is None else json.loads(state)

    def claim(self, call_sid: str, key: str, token: str | None) -> Claim:
        with self._lock:
            hook = next((h for (sid, _), h in self._hooks.items() if sid == call_sid and token and
                         h["token"] == token), None) or self._hooks.get((call_sid, key))
            if hook is not None:
                return Claim(False, hook["response"], hook["claimed_at"])
            self._hooks[(call_sid, key)] = {"token": token, "response": None, "claimed_at": self._clock()}
            return Claim(True)

    def answer(self, call_sid: str, key: str, response: str, state: dict[str, Any] | None) -> None:
        with self._lock:
            self._hooks[(call_sid, key)]["response"] = response
            if state is not None:
                self._states[call_sid] = json.dumps(state)  # JSON round trip: what the database keeps

    def answered(self, call_sid: str, key: str) -> str | None:
        with self._lock:
            hook = self._hooks.get((call_sid, key))
            return None if hook is None else hook["response"]


class _TwilioCarrier:
    """One webhook's worth of the call as a carrier of :mod:`callcenter.services.ivr.carrier`: builds the TwiML."""

    def __init__(self, voice: "_Voice", session: FlowRun, step: int, typed: str = "") -> None:
        self.voice = voice
        self.session = session
        self.step = step
        self.ctx = CallContext(session.call_id, session.caller, "ivr-twilio")
        self.response = VoiceResponse()
        self.says: list[tuple[str, str]] = []  # (lang, words) to <Say>, or ("", url) to <Play>
        self.record_id: int | None = None  # the IVR session's id, from the record of the hand-off
        self.typeahead = typed  # keys typed while backend work ran, for the next questions
        self.prefix = ""  # keys typed ahead that only began the answer of the <Gather> being sent
        self.secret = False  # the <Gather> being sent asks for a secret (PIN, trading password)
        self.handed_off = False

    def speak(self, cmd: Command) -> None:
        urls = self.voice.prompt_urls(cmd)
        if urls:
            self.says += [("", url) for url in urls]
            return
        text = speech_text(cmd)
        if text:
            lang = getattr(cmd, "lang", self.session.lang)
            if self.says and self.says[-1][0] == lang:
                self.says[-1] = (lang, f"{self.says[-1][1]} {text}")
            else:
                self.says.append((lang, text))

    def record(self, cmd: Record) -> None:
        record_id = self.voice.backend.record_event(self.session.call_id, cmd.step, cmd.detail)
        if cmd.step == "handoff" and isinstance(record_id, int):
            self.record_id = record_id

    def run_action(self, cmd: RunAction) -> ActionResult:
        """The action in the voice's worker pool: answered in this webhook when it is done within
        ``action_inline_s``, else the webhook answers at once with a ``<Gather>`` that keeps the caller's keys
        while the work goes on (``ActionRunning``, taken up by the next webhook)."""
        spec = ACTIONS.get(cmd.name)
        future = self.voice.pool.submit(run_action, self.voice.backend, cmd, self.ctx, self.session.lang)
        try:
            result = future.result(timeout=self.voice.action_inline_s)
        except FutureTimeout:
            raise ActionRunning(cmd, future, spec.wait_prompt if spec else False) from None
        self.typeahead = kept_after(result.outcome, spec.keep_typeahead if spec else (), self.typeahead)
        return result

    def set_language(self, cmd: SetLanguage) -> None:
        """Nothing to send: every <Say> carries its own language."""

    def collect(self, cmd: Collect) -> DigitsEntered | None:
        if self.typeahead:  # keys typed ahead answer it: its prompts are skipped, as a key would have cut them
            self.says.clear()
            ahead = apply_typed(self.typeahead, cmd)
            self.typeahead = ahead.rest
            if ahead.answer is not None:
                return DigitsEntered(ahead.answer)
            self.prefix = ahead.prefix  # the next webhook's keys come after these
        gather = Gather(input="dtmf", num_digits=cmd.max_digits - len(self.prefix),
                        timeout=max(1, math.ceil(cmd.timeout_s)), finish_on_key=cmd.terminator or "",
                        action=self.voice.input_url(self.step), method="POST", action_on_empty_result=False)
        _says(gather, self.says)
        self.response.append(gather)
        self.response.redirect(self.voice.input_url(self.step, timeout="1"), method="POST")
        self.secret = cmd.secret
        return None  # the caller's keys arrive with the next webhook

    def waiting(self, please_wait: bool) -> str:
        """The TwiML while an action runs: what was queued before it (and "please wait" for a slow one) inside a
        short ``<Gather>`` that takes any keys typed meanwhile; its action and its silence both come back here."""
        if please_wait:
            self.speak(Say("ivr.please_wait", self.session.lang))
        gather = Gather(input="dtmf", num_digits=WAIT_MAX_KEYS, timeout=1, finish_on_key="",
                        action=self.voice.input_url(self.step), method="POST", action_on_empty_result=False)
        _says(gather, self.says)
        self.response.append(gather)
        self.response.redirect(self.voice.input_url(self.step, timeout="1"), method="POST")
        return str(self.response)

    def handoff(self, cmd: Handoff) -> None:
        _says(self.response, self.says)
        self.handed_off = True
        if self.record_id is None:  # no record of the hand-off: nobody can route the call
            self.response.hangup()
            return
        self.response.redirect(f"{self.voice.public_url}/twilio/calls/{handoff_call_id(self.record_id)}/parked",
                               method="POST")

    def hang_up(self, cmd: EndCall) -> None:
        _says(self.response, self.says)
        self.response.hangup()

    def twiml(self) -> str:
        _says(self.response, self.says)
        return str(self.response)


class _Voice:
    def __init__(self, backend: IvrBackend, flow: Flow, public_url: str, store: CallStateStore,
                 limits: dict[str, int] | None, calls_line: Any = None, replay_wait_s: float = 10.0,
                 claim_stale_s: float = 60.0, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 prompt_files: Any = None, prompt_signer: Any = None, action_inline_s: float = 0.3,
                 action_workers: int = 8, rest: Any = None, recorder: Any = None) -> None:
        self.backend = backend
        self.flow = flow
        self.public_url = public_url.rstrip("/")
        self.store = store
        self.limits = limits or {}
        self.calls_line = calls_line  # twilio_calls.TwilioLine: the dialler's backend, for hand-offs' statuses
        self.replay_wait_s = replay_wait_s
        self.claim_stale_s = claim_stale_s
        self.clock = clock  # the store's clock: claims are stamped with it
        self.prompt_files = prompt_files  # PromptFiles: prompt name -> file, rendered on demand
        self.prompt_signer = prompt_signer  # PromptSigner: prompt name -> signed URL
        self.action_inline_s = action_inline_s  # an action done within this is answered in its own webhook
        self.pool = ThreadPoolExecutor(max_workers=action_workers, thread_name_prefix="twilio-ivr-action")
        # recording the session: the twilio REST client (its HTTP client a MediaHttpClient, so the media are bytes)
        # and services.ivr.recording.IvrRecorder; either missing: sessions are not recorded
        self.rest = rest
        self.recorder = recorder

    # --- recording the session: one Recordings-API recording of the caller's call, paused around secrets -------
    def _tape_start(self, call_sid: str) -> dict[str, Any] | None:
        if self.rest is None or self.recorder is None:
            return None
        try:
            created = self.rest.calls(call_sid).recordings.create(
                recording_status_callback=f"{self.public_url}/twilio/voice/recording",
                recording_status_callback_event=["completed", "absent"], recording_status_callback_method="POST",
                recording_channels="mono", recording_track="both", trim="do-not-trim")
        except (TwilioException, OSError) as exc:
            log.warning("IVR call %s: recording not started (%s)", call_sid, type(exc).__name__)
            return None
        return {"sid": str(created.sid), "t0": self.clock().isoformat(), "spans": [], "paused": False, "on": True}

    def _tape_sync(self, call_sid: str, state: dict[str, Any], secret: bool, handed_off: bool) -> None:
        """Before the webhook's TwiML goes out: the recording paused (silence) when it asks for a secret, running
        again when it does not, stopped at a hand-off (the agent's leg is recorded as the agent's call). The spans
        are kept in the call's state, as offsets from the recording's start."""
        tapes = state.get("tapes") or []
        tape = tapes[-1] if tapes else None
        if tape is None or not tape["on"]:
            return
        at = round((self.clock() - datetime.fromisoformat(tape["t0"])).total_seconds(), 3)
        recording = self.rest.calls(call_sid).recordings(tape["sid"])
        if handed_off or (secret and not tape["paused"]):
            try:
                if handed_off:
                    recording.update(status="stopped")
                else:
                    recording.update(status="paused", pause_behavior="silence")
            except (TwilioException, OSError) as exc:  # never a secret on tape: stopped if it cannot be paused
                log.warning("IVR call %s: recording %s not paused (%s): stopped", call_sid, tape["sid"],
                            type(exc).__name__)
                handed_off = True
                try:
                    recording.update(status="stopped")
                except (TwilioException, OSError):
                    log.error("IVR call %s: recording %s could not be stopped before a secret", call_sid, tape["sid"])
            if secret and not tape["paused"]:
                tape["spans"].append([at, None])
                tape["paused"] = True
            if handed_off:
                if tape["paused"] and not secret:
                    tape["spans"][-1][1] = at
                tape["on"] = False
        elif not secret and tape["paused"]:
            try:
                recording.update(status="in-progress")
            except (TwilioException, OSError) as exc:  # the span then runs on: silence to the end
                log.warning("IVR call %s: recording %s not resumed (%s)", call_sid, tape["sid"], type(exc).__name__)
                return
            tape["spans"][-1][1] = at
            tape["paused"] = False

    def recording(self, params: dict[str, str], token: str | None) -> None:
        """A recording's status callback: once ``completed``, its media fetched and kept as the session's one
        recording (``IvrRecorder.keep_whole``); claimed first, so a replay has no effect; a recording this call's
        state does not know (another call's, a forged SID) is ignored."""
        call_sid, sid = params.get("CallSid", ""), params.get("RecordingSid", "")
        if self.rest is None or self.recorder is None or not sid:
            return
        state = self.store.load(call_sid)
        tape = next((t for t in (state or {}).get("tapes", []) if t["sid"] == sid), None)
        if tape is None or params.get("RecordingStatus") != "completed":
            return
        key = f"rec:{sid}"[:40]
        if not self.store.claim(call_sid, key, token).mine:
            return  # a replay
        outcome = "kept"
        try:
            url = f"https://api.twilio.com/2010-04-01/Accounts/{self.rest.account_sid}/Recordings/{sid}.wav"
            got = self.rest.request("GET", url, allow_redirects=True)
            if got.status_code != 200 or not isinstance(got.content, bytes):
                raise ValueError(f"media not fetched (HTTP {got.status_code})")
            spans = [(float(a), None if b is None else float(b)) for a, b in tape["spans"]]
            self.recorder.keep_whole(call_sid, datetime.fromisoformat(tape["t0"]), got.content, spans)
        except (TwilioException, OSError, ValueError) as exc:
            outcome = "failed"
            log.warning("IVR recording %s of %s not kept: %s", sid, call_sid, exc)
        self.store.answer(call_sid, key, outcome, None)  # the call's state is not written: other webhooks own it

    def prompt_urls(self, cmd: Command) -> list[str] | None:
        """The signed URLs of the rendered prompts that say ``cmd``; None when one of them cannot be rendered (or
        there are no prompt files): the caller then hears ``<Say>``."""
        if self.prompt_files is None or self.prompt_signer is None:
            return None
        names = prompt_names(cmd)
        if not names:
            return None
        for name in names:
            try:
                path = self.prompt_files.ensure(name)
            except Exception:  # noqa: BLE001 - the speech tools failed: spoken by Twilio instead
                log.warning("prompt %s could not be rendered: <Say> instead", name, exc_info=True)
                return None
            if path is None:
                return None
        return [self.prompt_signer.url(name) for name in names]

    def input_url(self, step: int, **extra: str) -> str:
        return f"{self.public_url}/twilio/voice/input?{urlencode({'step': step, **extra})}"

    def _replayed(self, call_sid: str, key: str, claim: Claim, again_url: str) -> str:
        """A replay: the first delivery's answer, once it has one (waiting a bounded time for it)."""
        deadline = time.monotonic() + self.replay_wait_s
        response = claim.response
        while response is None and time.monotonic() < deadline:
            time.sleep(0.05)
            response = self.store.answered(call_sid, key)
        if response is not None:
            return response
        claimed_at = claim.claimed_at
        if claimed_at is not None and claimed_at.tzinfo is None:
            claimed_at = claimed_at.replace(tzinfo=timezone.utc)
        if claimed_at is not None and self.clock() - claimed_at > timedelta(seconds=self.claim_stale_s):
            return _hangup_twiml()  # the process that took it died mid-way: never handle it a second time
        return _ask_again_twiml(again_url)

    def start(self, call_sid: str, caller: str, token: str | None, entry: str = "", visit: str = "") -> str:
        """The IVR begins on this call: its first webhook, or (``visit``) an agent sent the caller back to it at
        ``entry`` (``TwilioCalls.to_ivr``): a new run of the flow on the same call, claimed under its visit, its
        steps numbered on after the last run's so none of its webhooks is taken for a replay of the earlier ones."""
        key = f"start:{visit}" if visit else "start"
        claim = self.store.claim(call_sid, key, token)
        if not claim.mine:  # replay of the first webhook
            query = f"?{urlencode({'entry': entry, 'visit': visit})}" if visit else ""
            return self._replayed(call_sid, key, claim, f"{self.public_url}/twilio/voice{query}")
        before = self.store.load(call_sid) if visit else None
        step = int(before["step"]) + 1 if before is not None else 0
        session = FlowRun(self.flow, caller=caller, call_id=call_sid, limits=self.limits, entry=entry)
        tapes = list((before or {}).get("tapes", []))
        tape = self._tape_start(call_sid)
        if tape is not None:
            tapes.append(tape)
        twiml, state = self._run(session, session.start(), {"step": step, **({"tapes": tapes} if tapes else {})})
        self.store.answer(call_sid, key, twiml, state)
        return twiml

    def input(self, call_sid: str, step: int, event: Event, token: str | None) -> str:
        state = self.store.load(call_sid)
        if state is None:
            return _hangup_twiml()
        key = str(step)
        url = self.input_url(step, **({} if isinstance(event, DigitsEntered) else {"timeout": "1"}))
        if step != state["step"]:  # replayed or stale: never fed twice
            return self.store.answered(call_sid, key) or _hangup_twiml()
        claim = self.store.claim(call_sid, key, token)
        if not claim.mine:
            return self._replayed(call_sid, key, claim, url)
        session = FlowRun.restore(self.flow, state["session"])
        if "running" in state:  # an action is still at work from an earlier webhook: this one kept keys
            twiml, new_state = self._resume(call_sid, session, state, event, step + 1)
        else:
            if state.get("prefix") and isinstance(event, (DigitsEntered, Timeout)):  # keys typed ahead begin it
                event = DigitsEntered(state["prefix"] + (event.digits if isinstance(event, DigitsEntered) else ""))
            twiml, new_state = self._run(session, session.feed(event), {"step": step + 1, **_kept(state)})
        self.store.answer(call_sid, key, twiml, new_state)
        return twiml

    def _resume(self, call_sid: str, session: FlowRun, state: dict[str, Any], event: Event,
                step: int) -> tuple[str, dict[str, Any]]:
        """A webhook while an action runs: the keys it brings are kept; once the action's result is stored the
        call goes on from it (the keys answering the next questions), else the caller waits on. An action whose
        process never stored a result (it died) is an ``error``: the caller hears that, nothing runs twice."""
        running = state["running"]
        typed = str(state.get("typed", "")) + (event.digits if isinstance(event, DigitsEntered) else "")
        raw = self.store.answered(call_sid, running["key"])
        if raw is None:
            started = datetime.fromisoformat(running["since"])
            if self.clock() - started <= timedelta(seconds=self.claim_stale_s):
                carrier = _TwilioCarrier(self, session, step)
                return carrier.waiting(False), {**state, "step": step, "typed": typed}
            log.warning("IVR action %s of %s left no result: taken as an error", running["action"], call_sid)
            result = ActionResult(running["action"], "error", {"error_code": "lost"})
        else:
            result = ActionResult(**json.loads(raw))
        spec = ACTIONS.get(result.name)
        typed = kept_after(result.outcome, spec.keep_typeahead if spec else (), typed)
        return self._run(session, session.feed(result), {"step": step, **_kept(state)}, typed)

    def status(self, call_sid: str, detail: dict[str, str], token: str | None) -> None:
        """A status callback: recorded once; a final one closes the session and records why."""
        status = detail.get("CallStatus", "")
        claim = self.store.claim(call_sid, f"status:{status}"[:40], token)
        if not claim.mine:
            return
        self.backend.record_event(call_sid, "twilio_status", detail)
        state = self.store.load(call_sid) if status in FINAL_STATUSES else None
        if state is not None and "session" in state:
            session = FlowRun.restore(self.flow, state["session"])
            run_sync(after_hangup(session, [], _TwilioCarrier(self, session, int(state["step"])),
                                  f"twilio_{status}"))
            state = {**state, "session": session.snapshot()}
        self.store.answer(call_sid, f"status:{status}"[:40], "", state)

    def _run(self, session: FlowRun, queue: list[Command], state: dict[str, Any],
             typed: str = "") -> tuple[str, dict[str, Any]]:
        carrier = _TwilioCarrier(self, session, int(state["step"]), typed)
        try:
            drive_sync(session, queue, carrier)
        except ActionRunning as running:  # answered now; the result is stored when the work is done
            key = f"action:{state['step']}"
            self._store_when_done(session.call_id, key, running.future)
            self._tape_sync(session.call_id, state, False, False)
            return carrier.waiting(running.please_wait), {
                **state, "session": session.snapshot(), "typed": carrier.typeahead,
                "running": {"key": key, "action": running.command.name, "since": self.clock().isoformat()}}
        self._tape_sync(session.call_id, state, carrier.secret, carrier.handed_off)
        out = {**state, "session": session.snapshot()}
        if carrier.typeahead:
            out["typed"] = carrier.typeahead
        if carrier.prefix:
            out["prefix"] = carrier.prefix
        return carrier.twiml(), out

    def _store_when_done(self, call_sid: str, key: str, future: Future[ActionResult]) -> None:
        """The action's result as the answer of webhook-like key ``action:<step>`` (any process reads it)."""
        if not self.store.claim(call_sid, key, None).mine:
            return  # a replay of the webhook that started it: the first delivery's action is the one
        def done(f: Future[ActionResult]) -> None:
            result = f.result()  # run_action turns backend errors into the "error" outcome: it does not raise
            try:
                self.store.answer(call_sid, key, json.dumps({"name": result.name, "outcome": result.outcome,
                                                              "data": result.data}), None)
            except Exception:  # noqa: BLE001 - the waiting webhooks then take it as lost ("error")
                log.exception("result of IVR action %s of %s not stored", result.name, call_sid)
        future.add_done_callback(done)


class ActionRunning(Exception):
    """Raised through the carrier loop: the action goes on in the pool after this webhook is answered."""

    def __init__(self, command: RunAction, future: Future[ActionResult], please_wait: bool) -> None:
        super().__init__(command.name)
        self.command, self.future, self.please_wait = command, future, please_wait


def _kept(state: dict[str, Any]) -> dict[str, Any]:
    """What a call's state keeps from one run of the flow to the next: its recordings."""
    return {"tapes": state["tapes"]} if state.get("tapes") else {}


WAIT_MAX_KEYS = 32  # a <Gather> while an action runs takes up to this many keys typed ahead


FINAL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")


def prompt_names(cmd: Command) -> list[str] | None:
    """The prompt files AGI plays for a spoken command (``cc/<lang>/<stem>``); None when no file says it."""
    if isinstance(cmd, Say):
        if cmd.params or not i18n.has(cmd.key, cmd.lang):
            return None  # words filled in at run time (or a missing optional text): no rendered file says them
        return [f"cc/{cmd.lang}/{prompt_stem(cmd.key)}"]
    if isinstance(cmd, SayDigits):
        words = speech.digits_text("".join(c for c in cmd.digits if c.isdigit()), cmd.lang)
    elif isinstance(cmd, SayNumber):
        words = speech.number_text(int(cmd.number), cmd.lang)
    elif isinstance(cmd, SayAmount):
        words = speech.amount_text(cmd.fen, cmd.lang)
    else:
        return None  # free text: <Say>
    try:
        return [f"cc/{cmd.lang}/{token_stem(t)}" for t in speech.tokens(words, cmd.lang)] or None
    except KeyError:
        return None


def _says(target: Any, says: list[tuple[str, str]]) -> None:
    for lang, text in says:
        if lang:
            target.say(text, language=TWILIO_LANG.get(lang, "en-US"))
        else:
            target.play(text)  # a rendered prompt's signed URL
    says.clear()


def _hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def _ask_again_twiml(url: str) -> str:
    response = VoiceResponse()
    response.pause(length=1)
    response.redirect(url, method="POST")
    return str(response)


def make_router(backend: IvrBackend, flow: Flow, auth_token: str, public_url: str, state_store: CallStateStore,
                limits: dict[str, int] | None = None, calls_line: Any = None,
                replay_wait_s: float = 10.0,
                clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                prompt_files: Any = None, prompt_signer: Any = None, action_inline_s: float = 0.3,
                rest: Any = None, recorder: Any = None) -> APIRouter:
    """Routes ``POST /twilio/voice``, ``/twilio/voice/input``, ``/twilio/voice/status`` and
    ``/twilio/voice/recording``. With ``prompt_files`` and ``prompt_signer`` the prompts are ``<Play>`` of the
    rendered files (``<Say>`` what none renders). With ``rest`` (a twilio ``Client``) and ``recorder``
    (``IvrRecorder``) every session is recorded.

    Refuses to build without an auth token: a signature keyed with the empty string is one anyone can compute."""
    if not auth_token:
        raise ValueError("Twilio webhooks need an auth token: an empty key verifies forged signatures")
    validator = RequestValidator(auth_token)
    voice = _Voice(backend, flow, public_url, state_store, limits, calls_line, replay_wait_s, clock=clock,
                   prompt_files=prompt_files, prompt_signer=prompt_signer, action_inline_s=action_inline_s,
                   rest=rest, recorder=recorder)
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
    async def start(request: Request, entry: str = "", visit: str = "") -> Response:
        params = await verified_form(request)
        if params is None or not params.get("CallSid"):
            return forbidden()
        if len(entry) > 32 or len(visit) > 80 or not all(c.isalnum() or c in "._-" for c in entry + visit):
            return Response("bad entry", status_code=400, media_type="text/plain")
        # the client's number: the caller's, or on a call we placed (an outbound call an agent sent here) the callee's
        caller = params.get("To", "") if params.get("Direction", "").startswith("outbound") else params.get("From", "")
        twiml = await asyncio.to_thread(voice.start, params["CallSid"], caller,
                                        request.headers.get("I-Twilio-Idempotency-Token"), entry, visit)
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
        detail: dict[str, str] = {k: params[k] for k in ("CallStatus", "CallDuration", "Direction", "Timestamp")
                                  if k in params}
        await asyncio.to_thread(voice.status, params["CallSid"], detail,
                                request.headers.get("I-Twilio-Idempotency-Token"))
        calls = getattr(voice.calls_line, "calls", None)
        if calls is not None and detail.get("CallStatus") in FINAL_STATUSES:
            calls.status_of_sid(params["CallSid"], params)  # a hand-off's caller hung up: the core ends the call
        return Response(status_code=204)

    @router.post("/twilio/voice/recording")
    async def recording(request: Request) -> Response:
        params = await verified_form(request)
        if params is None or not params.get("CallSid"):
            return forbidden()
        await asyncio.to_thread(voice.recording, params, request.headers.get("I-Twilio-Idempotency-Token"))
        return Response(status_code=204)

    return router
