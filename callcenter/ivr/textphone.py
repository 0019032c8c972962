"""A text test phone: run a flow with scripted keys and print what the caller hears and does.

Keys: digits, ``*`` and ``#`` as typed; ``w`` = the caller waits (the input times out; digits typed
before it are taken as entered).  When the keys run out, the caller hangs up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from callcenter import i18n
from callcenter.ivr import speech
from callcenter.ivr.backend import CallContext, IvrBackend, run_action
from callcenter.ivr.interpreter import (
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
    Say,
    SayAmount,
    SayDigits,
    SayNumber,
    SayText,
    SetLanguage,
    SetVariable,
    Timeout,
)
from callcenter.ivr.model import Flow


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
    session: IvrSession


@dataclass
class TextPhone:
    flow: Flow
    backend: IvrBackend
    caller: str = ""
    call_id: str = field(default_factory=lambda: f"text-{uuid.uuid4().hex[:12]}")
    lang: str = "zh-CN"
    limits: dict[str, int] | None = None
    echo: Callable[[str], None] | None = None  # print lines as they happen

    def run(self, keys: str) -> TextPhoneResult:
        session = IvrSession(self.flow, lang=self.lang, caller=self.caller, call_id=self.call_id, limits=self.limits)
        ctx = CallContext(self.call_id, self.caller, "ivr-text", self.lang)
        lines: list[str] = []
        speech_parts: list[tuple[str, str]] = []
        pending = list(keys)
        handoff: Handoff | None = None

        def emit(line: str) -> None:
            lines.append(line)
            if self.echo:
                self.echo(line)

        def flush() -> None:
            if speech_parts:
                emit(f"IVR: {join_speech(speech_parts)}")
                speech_parts.clear()

        queue: list[Command] = session.start()
        while queue:
            cmd = queue.pop(0)
            event: Event | None = None
            text = speech_text(cmd)
            if text:
                speech_parts.append((getattr(cmd, "lang", self.lang), text))
                continue
            if isinstance(cmd, (Say, SayDigits, SayNumber, SayAmount, SayText)):
                continue
            flush()
            if isinstance(cmd, Record):
                self.backend.record_event(self.call_id, cmd.step, cmd.detail)
            elif isinstance(cmd, SetLanguage):
                emit(f"[language] {cmd.lang}")
            elif isinstance(cmd, SetVariable):
                emit(f"[set] {cmd.name}={cmd.value}")
            elif isinstance(cmd, RunAction):
                result = run_action(self.backend, cmd, ctx, session.lang)
                emit(f"[{cmd.name}] {result.outcome}")
                event = result
            elif isinstance(cmd, Collect):
                event = self._press(cmd, pending, emit)
            elif isinstance(cmd, Handoff):
                handoff = cmd
                emit(f"[hand-off to agent] client={cmd.client_id or '-'} {cmd.summary}")
            elif isinstance(cmd, HangUp):
                emit(f"[hang-up] {cmd.reason}")
            if event is not None:
                queue.extend(session.feed(event))
        flush()
        return TextPhoneResult(lines, session.end_reason, handoff, session)

    @staticmethod
    def _press(cmd: Collect, pending: list[str], emit: Callable[[str], None]) -> Event:
        typed = ""
        while True:
            if not pending:
                emit(f"Caller: {'*' * len(typed) if cmd.secret else typed} (hangs up)" if typed
                     else "Caller: (hangs up)")
                return Hangup()
            key = pending.pop(0)
            if key in " ,":
                continue
            if key.lower() == "w":
                if typed:
                    emit(f"Caller: {'*' * len(typed) if cmd.secret else typed} (waits)")
                    return DigitsEntered(typed)
                emit("Caller: (silence)")
                return Timeout()
            if cmd.terminator and key == cmd.terminator:
                emit(f"Caller: {'*' * len(typed) if cmd.secret else typed}{key}")
                return DigitsEntered(typed)
            typed += key
            if len(typed) >= cmd.max_digits:
                emit(f"Caller: {'*' * len(typed) if cmd.secret else typed}")
                return DigitsEntered(typed)
