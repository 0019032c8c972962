"""A text test phone: run a flow with scripted keys and print what the caller hears and does.

Keys: digits, ``*`` and ``#`` as typed; ``w`` = the caller waits (the input times out; digits typed
before it are taken as entered).  When the keys run out, the caller hangs up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from callcenter import i18n
from callcenter.domain.ivr import speech
from callcenter.services.ivr.backend import CallContext, IvrBackend, run_action
from callcenter.services.ivr.carrier import CallerGone, drive_sync
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
    Say,
    SayAmount,
    SayDigits,
    SayNumber,
    SayText,
    SetLanguage,
    SetVariable,
    Timeout,
)
from callcenter.domain.ivr.model import Flow


def speech_text(cmd: Command) -> str | None:
    """The words of a speech command in its language; None when there is nothing to say."""
    if isinstance(cmd, Say):
        if cmd.optional and not i18n.has(cmd.key, cmd.lang):
            return None
        return i18n.t(cmd.key, cmd.lang, **cmd.params)
    if isinstance(cmd, SayDigits):
        return speech.digits_text(cmd.digits, cmd.lang)
    if isinstance(cmd, SayNumber):
        return speech.number_text(cmd.number, cmd.lang)
    if isinstance(cmd, SayAmount):
        return speech.amount_text(cmd.fen, cmd.lang)
    if isinstance(cmd, SayText):
        return cmd.text
    return None


def join_speech(parts: list[tuple[str, str]]) -> str:
    """Consecutive spoken pieces on one line, a space between pieces."""
    out = ""
    for _lang, text in parts:
        out += (" " if out else "") + text
    return out


@dataclass
class TextPhoneResult:
    lines: list[str]
    end_reason: str | None
    handoff: Handoff | None
    session: FlowRun


@dataclass
class TextPhone:
    flow: Flow
    backend: IvrBackend
    caller: str = ""
    call_id: str = field(default_factory=lambda: f"text-{uuid.uuid4().hex[:12]}")
    lang: str = "zh-CN"
    limits: dict[str, int] | None = None
    echo: Callable[[str], None] | None = None  # print lines as they happen
    entry: str = ""  # where the call entered ("orders": handed to the order menu by an agent)

    def run(self, keys: str) -> TextPhoneResult:
        session = FlowRun(self.flow, lang=self.lang, caller=self.caller, call_id=self.call_id, limits=self.limits,
                          entry=self.entry)
        carrier = _TextCarrier(self, session, list(keys))
        drive_sync(session, session.start(), carrier)
        carrier.flush()
        return TextPhoneResult(carrier.lines, session.end_reason, carrier.handoff_cmd, session)


class _TextCarrier:
    """The text phone as a carrier of :mod:`callcenter.services.ivr.carrier`: prints, and types the scripted keys."""

    def __init__(self, phone: TextPhone, session: FlowRun, pending: list[str]) -> None:
        self.phone = phone
        self.session = session
        self.pending = pending
        self.ctx = CallContext(phone.call_id, phone.caller, "ivr-text", phone.lang)
        self.lines: list[str] = []
        self.speech: list[tuple[str, str]] = []
        self.handoff_cmd: Handoff | None = None

    def emit(self, line: str) -> None:
        self.lines.append(line)
        if self.phone.echo:
            self.phone.echo(line)

    def flush(self) -> None:
        if self.speech:
            self.emit(f"IVR: {join_speech(self.speech)}")
            self.speech.clear()

    def speak(self, cmd: Command) -> None:
        text = speech_text(cmd)
        if text:
            self.speech.append((getattr(cmd, "lang", self.phone.lang), text))

    def record(self, cmd: Record) -> None:
        self.flush()
        self.phone.backend.record_event(self.phone.call_id, cmd.step, cmd.detail)

    def set_language(self, cmd: SetLanguage) -> None:
        self.flush()
        self.emit(f"[language] {cmd.lang}")

    def set_variable(self, cmd: SetVariable) -> None:
        self.flush()
        self.emit(f"[set] {cmd.name}={cmd.value}")

    def run_action(self, cmd: RunAction) -> ActionResult:
        self.flush()
        result = run_action(self.phone.backend, cmd, self.ctx, self.session.lang)
        self.emit(f"[{cmd.name}] {result.outcome}")
        return result

    def collect(self, cmd: Collect) -> Event:
        self.flush()
        return self._press(cmd)

    def handoff(self, cmd: Handoff) -> None:
        self.flush()
        self.handoff_cmd = cmd
        self.emit(f"[hand-off to agent] client={cmd.client_id or '-'} {cmd.summary}")

    def hang_up(self, cmd: EndCall) -> None:
        self.flush()
        self.emit(f"[hang-up] {cmd.reason}")

    def _press(self, cmd: Collect) -> Event:
        typed = ""
        pending = self.pending
        while True:
            if not pending:
                self.emit(f"Caller: {'*' * len(typed) if cmd.secret else typed} (hangs up)" if typed
                          else "Caller: (hangs up)")
                raise CallerGone("caller_hangup")
            key = pending.pop(0)
            if key in " ,":
                continue
            if key.lower() == "w":
                if typed:
                    self.emit(f"Caller: {'*' * len(typed) if cmd.secret else typed} (waits)")
                    return DigitsEntered(typed)
                self.emit("Caller: (silence)")
                return Timeout()
            if cmd.terminator and key == cmd.terminator:
                self.emit(f"Caller: {'*' * len(typed) if cmd.secret else typed}{key}")
                return DigitsEntered(typed)
            typed += key
            if len(typed) >= cmd.max_digits:
                self.emit(f"Caller: {'*' * len(typed) if cmd.secret else typed}")
                return DigitsEntered(typed)
