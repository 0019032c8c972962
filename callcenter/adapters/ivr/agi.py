"""FastAGI adapter: runs IVR flows for Asterisk (``AGI(agi://host:4573/hotline)``), on panoramisk.

One asyncio task per call; the pure interpreter decides, the one carrier loop (:mod:`callcenter.services.ivr.carrier`)
drives it, and :class:`AgiCall` only translates its commands into AGI commands (ANSWER, STREAM FILE, GET DATA,
WAIT FOR DIGIT, SAY DIGITS, SAY NUMBER, SET VARIABLE, HANGUP) and AGI answers back into events.  Backend calls
run in the application's worker threads, so hundreds of calls share one process; while one runs longer than a
short grace, keys typed meanwhile are read with WAIT FOR DIGIT slices and kept for the next question (type-ahead;
the interpreter never sees the polling), and while the slow PIN check runs the caller also hears "please wait".

Answer forms handled (see ../shared/fixtures/asterisk-22/fastagi_session.agi): ``200 result=<digits>``,
``200 result= (timeout)`` and ``200 result=<digits> (timeout)``, ``200 result=-1`` (GET DATA: the caller
hung up; STREAM FILE: file missing), ``endpos=``, ``(value)``, ``510``/``520`` (our bug, logged),
an unsolicited ``HANGUP`` line followed by the command's ``511``, and the socket closing.

A RunAction taken from the interpreter is always carried out to its end, even when the caller has
already gone: a transfer the caller confirmed completes exactly once (the backend de-duplicates on
the interpreter's idempotency key), and nothing else moves money.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from panoramisk.fast_agi import Application, Request

from callcenter import i18n
from callcenter.domain.ivr import speech
from callcenter.domain.masking import mask_phone
from callcenter.services.ivr.backend import CallContext, IvrBackend, run_action
from callcenter.services.ivr.carrier import CallerGone, UnhandledCommand, after_hangup, drive
from callcenter.services.ivr.flow import FLOWS_DIR, load_flow
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
from callcenter.domain.ivr.model import ACTIONS, Flow
from callcenter.domain.ivr.typeahead import apply_typed, kept_after
from callcenter.adapters.ivr.prompts import DEFAULT_DIR, prompt_stem, token_stem
from callcenter.ports import channel_variables as V
from callcenter.ports.recordings import read_wav_if_closed
from callcenter.services.ivr.recording import IvrTape

log = logging.getLogger(__name__)

ESCAPE_DIGITS = "0123456789*#"
ASTERISK_LANG = {"zh-CN": "zh", "en": "en"}
MAX_HEADER_BYTES = 16_384
GRACE_S = 0.05  # a slow action that finishes within this needs no WAIT FOR DIGIT
MAX_SLICE_MS = 2000  # the longest WAIT FOR DIGIT slice while a slow action runs
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RESULT = re.compile(r"^(\d{3})([ -])(.*)$")


# --- protocol: sanitising, parsing -------------------------------------------------------------
def agi_quote(value: object, limit: int = 1024) -> str:
    """A value as one quoted AGI argument: control characters (CR, LF, NUL...) dropped, \\ and " escaped."""
    text = _CONTROL.sub(" ", str(value))[:limit]
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def safe_token(value: object, allowed: str = r"A-Za-z0-9_.\-/", limit: int = 256) -> str:
    """Something placed unquoted in a command (file names, numbers): only ``allowed`` characters survive."""
    return re.sub(f"[^{allowed}]", "", str(value))[:limit]


@functools.lru_cache(maxsize=4096)
def _sound_file(prefix: str, lang: str, stem: str) -> str:
    """A prompt's file as STREAM FILE names it, made safe once per prompt (not per play)."""
    return safe_token(f"{prefix}/{lang}/{stem}")


def caller_number(raw: str | None) -> str:
    """agi_callerid as data: digits and a leading + only ("unknown" -> "")."""
    raw = (raw or "").strip()
    digits = re.sub(r"[^0-9]", "", raw)[:32]
    return ("+" + digits) if raw.startswith("+") and digits else digits


@dataclass(frozen=True)
class AgiResult:
    code: int
    result: str = ""
    data: str | None = None  # the "(...)" part: "timeout", a variable's value
    endpos: int | None = None
    text: str = ""

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"


def parse_result(line: str) -> AgiResult:
    m = _RESULT.match(line)
    if not m:
        raise AgiProtocolError(f"unexpected AGI line {line[:80]!r}")
    code, rest = int(m.group(1)), m.group(3)
    if code != 200:
        return AgiResult(code, text=rest)
    rm = re.match(r"result=(\S*)\s*(.*)$", rest)
    if not rm:
        return AgiResult(code, text=rest)
    result, tail = rm.group(1), rm.group(2)
    data = None
    dm = re.search(r"\((.*)\)", tail)
    if dm:
        data = dm.group(1)
    em = re.search(r"endpos=(\d+)", tail)
    return AgiResult(code, result, data, int(em.group(1)) if em else None, rest)


class AgiProtocolError(Exception):
    pass


class AgiHangup(Exception):
    """The caller hung up (HANGUP / 511 / GET DATA -1) or the connection dropped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AgiChannel:
    """Commands and answers on one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_s: float = 120.0,
                 on_turnaround: Callable[[float], None] | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout_s = timeout_s
        self.hung_up = False
        self.commands = 0
        self.on_turnaround = on_turnaround

    async def _readline(self, timeout_s: float | None = None) -> str:
        try:  # asyncio.timeout: a timer on this task, not a new task and a timer per line as wait_for made
            async with asyncio.timeout(timeout_s or self.timeout_s):
                raw = await self.reader.readline()
        except TimeoutError as exc:  # Asterisk (or whoever connected) went silent
            raise AgiHangup("reply_timeout") from exc
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise AgiHangup("connection_lost") from exc
        if not raw:
            raise AgiHangup("connection_lost")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def command(self, command: str, timeout_s: float | None = None) -> AgiResult:
        """Send one command and read its answer; each line of the answer must come within ``timeout_s``."""
        if "\n" in command or "\r" in command:
            raise ValueError("AGI command with a line break")
        self.commands += 1
        started = time.perf_counter()
        try:
            self.writer.write(command.encode("utf-8") + b"\n")
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise AgiHangup("connection_lost") from exc
        while True:
            line = await self._readline(timeout_s)
            if line == "HANGUP":  # sent when the channel hangs up; the command's own answer follows
                self.hung_up = True
                continue
            result = parse_result(line)
            if result.code == 100:  # "100 Trying..."
                continue
            if result.code == 520 and line[3:4] == "-":  # usage text until "520 End of proper usage."
                while not (await self._readline()).startswith("520 "):
                    pass
            break
        if self.on_turnaround:
            self.on_turnaround(time.perf_counter() - started)
        if result.code == 511:
            self.hung_up = True
            raise AgiHangup("caller_hangup")
        if result.code in (510, 520):
            log.error("Asterisk refused AGI command %r: %s", command.split(" ", 1)[0], result.text)
        return result


# --- a call -----------------------------------------------------------------------------------
@dataclass
class AgiConfig:
    prompts_dir: Path = DEFAULT_DIR  # where this engine renders prompts (callcenter prompts build, bulletins)
    # where Asterisk finds them: relative to its sounds directory (copy prompts_dir's contents to <sounds>/cc/),
    # so STREAM FILE never names a path on the engine's host (a remote Asterisk would play silence)
    sound_prefix: str = "cc"
    limits: dict[str, int] = field(default_factory=dict)
    # free text (bulletins) -> stem of a rendered file under prompts_dir/<lang>/, or None to skip it
    render_text: Callable[[str, str], str | None] | None = None
    # FastAGI limits (settings agi_*): the whole AGI environment must arrive within header_timeout_s; each
    # command's answer within reply_timeout_s (plus the command's own wait); at most max_connections calls
    header_timeout_s: float = 5.0
    reply_timeout_s: float = 60.0
    max_connections: int = 500
    # while a slow action runs (the PIN check): "please wait" after wait_prompt_after_s, and keys typed
    # meanwhile collected with WAIT FOR DIGIT of typeahead_poll_ms (res_agi drops DTMF between commands)
    wait_prompt_after_s: float = 0.0
    typeahead_poll_ms: int = 250
    # a hand-off waits in the dialplan's [cc-handoff-wait] for the engine's Redirect; the engine gives up after
    # handoff_wait_s (setting), the dialplan itself a little later (CC_HANDOFF_WAIT_S) should no engine run
    handoff_wait_s: float = 120.0
    # told +1 when a session is accepted and -1 when it ends (metrics: sessions in progress and total); must not raise
    on_session: Callable[[int], None] | None = None
    # recording the session (services.ivr.recording): with a recorder and ``recordings_dir`` — the folder the
    # dialplan's CC_RECORDINGS_DIR names, as this engine reads it — each session is recorded in MixMonitor
    # segments, stopped while the caller types a secret; empty/None: sessions are not recorded
    recorder: Any = None
    recordings_dir: str = ""


# Languages whose digits and numbers are spoken from our own rendered prompts (``num_*``), not by SAY DIGITS /
# SAY NUMBER, for which Asterisk ships no Chinese sounds (it falls back to English digits).
OWN_NUMBER_VOICE = frozenset({"zh-CN"})


@dataclass
class _Play:
    kind: str  # "file" | "digits" | "number"
    value: str


class AgiCall:
    """One FastAGI call: the carrier of :mod:`callcenter.services.ivr.carrier` for Asterisk.

    The call id is generated per session (``agi-<uuid4>``): Asterisk's ``agi_uniqueid`` and the channel name
    are kept as attributes and in the start record, never as the key, so two sessions never share a call
    record or a transfer idempotency key (``ivr:<call id>:<step>``)."""

    def __init__(self, channel: AgiChannel, flow: Flow, backend: IvrBackend, headers: dict[str, str],
                 config: AgiConfig, executor: Executor | None = None, call_id: str | None = None) -> None:
        self.channel = channel
        self.flow = flow
        self.backend = backend
        self.config = config
        self.executor = executor
        self.call_id = call_id or new_call_id()
        self.asterisk_uniqueid = safe_token(headers.get("agi_uniqueid", ""), r"A-Za-z0-9_.\-", 64)
        self.asterisk_channel = _CONTROL.sub("", headers.get("agi_channel", ""))[:80]
        self.caller = caller_number(headers.get("agi_callerid"))
        # the dialplan's first AGI argument is the entry (CC_IVR_ENTRY: "orders" when an agent handed the caller to
        # the order menu; empty otherwise)
        self.entry = safe_token(headers.get("agi_arg_1", ""), r"a-z_", 16)
        self.session = FlowRun(flow, caller=self.caller, call_id=self.call_id, limits=config.limits, entry=self.entry)
        self.ctx = CallContext(self.call_id, self.caller, "ivr-agi")
        self.pending: list[_Play] = []
        self.typeahead = ""  # keys the caller typed while the engine was busy, for the next Collect
        self.gone: str | None = None  # the caller left during a slow action; raised at the next command
        self.started = time.monotonic()
        self._records: asyncio.Future[None] | None = None  # the last call-record write (each waits for the one before)
        self.ivr_session_id: int | None = None  # the call record's id (from the backend's record of the hand-off)
        self.tape: IvrTape | None = None  # the session's recording, when it is recorded
        self._tape_dir = ""  # CC_RECORDINGS_DIR: where Asterisk writes the segments
        self._mixmonitor = ""  # the running segment's MixMonitor id
        self._tape_t0 = 0.0
        self._taping = False  # a segment is being recorded

    async def run(self) -> str:
        """Run the call to its end; returns the end reason."""
        log.info("IVR call %s (Asterisk %s) from %s (%s)", self.call_id, self.asterisk_uniqueid or "-",
                 mask_phone(self.caller), self.flow.name)
        commands = self.session.start()
        try:
            try:
                await self._command("ANSWER")
            except CallerGone as gone:
                await after_hangup(self.session, commands, self, gone.reason)
            else:
                await self._tape_begin()
                await drive(self.session, commands, self)
        except Exception:
            if not self.session.ended:  # a bug or an unknown command: the record still says how it ended
                await after_hangup(self.session, [], self, "error")
            raise
        finally:
            await self._tape_end()
            await self.flush_records()  # every step is stored before the session ends (and the dialplan goes on)
            if self.tape is not None and self.tape.segments:
                self.config.recorder.keep(self.tape, self._read_segment)
        return self.session.end_reason or "unknown"

    # --- recording the session: MixMonitor segments, none while a secret is typed --------------------------
    async def _tape_begin(self) -> None:
        if self.config.recorder is None or not self.config.recordings_dir:
            return
        res = await self._command("GET VARIABLE CC_RECORDINGS_DIR")
        folder = (res.data or "") if res.code == 200 and res.result == "1" else ""
        if not folder:
            return  # the dialplan records nothing (CC_RECORDINGS_DIR empty)
        self._tape_dir = _CONTROL.sub("", folder)[:200]
        self.tape = IvrTape(self.call_id, self.config.recorder.recordings.clock())
        self._tape_t0 = time.monotonic()
        await self._tape_segment()

    async def _tape_segment(self) -> None:
        assert self.tape is not None
        # named for Asterisk's channel (unique on that server): the commands are the same in a replayed capture
        name = f"ivr-{self.asterisk_uniqueid or self.call_id}-{len(self.tape.segments) + 1}"
        path = f"{self._tape_dir}/{name}.wav"
        res = await self._command(f"EXEC MixMonitor {agi_quote(path + ',i(CC_IVR_MIXMON)')}")
        if res.code != 200 or res.result == "-2":
            log.warning("IVR call %s: MixMonitor refused (%s); not recorded", self.call_id, res.text[:80])
            return
        self.tape.began_segment(name)
        self._taping = True
        got = await self._command("GET VARIABLE CC_IVR_MIXMON")
        self._mixmonitor = safe_token(got.data or "", r"A-Za-z0-9_.\-", 64) if got.result == "1" else ""

    def _tape_now(self) -> float:
        return time.monotonic() - self._tape_t0

    async def _tape_stop(self) -> None:
        """Stop the running segment (by its id: an agent leg's MixMonitor on the same channel is not ours)."""
        self._taping = False
        await self._command(f"EXEC StopMixMonitor {agi_quote(self._mixmonitor)}")
        self._mixmonitor = ""

    async def _tape_end(self) -> None:
        tape = self.tape
        if tape is None or tape.ended_s is not None:
            return
        ended = self._tape_now()
        if self._taping and self.gone is None:
            try:
                await self._tape_stop()  # a hand-off goes on to the agent, recorded there as the agent's call
            except CallerGone:
                pass  # hung up: MixMonitor ended with the channel
        if tape.secret_spans and tape.secret_spans[-1][1] == tape.secret_spans[-1][0] \
                and len(tape.secret_spans) == len(tape.segments):
            tape.resumed(ended)  # hung up while typing a secret: the span runs to the end
        tape.ended_s = ended

    def _read_segment(self, name: str) -> bytes | None:
        return read_wav_if_closed(os.path.join(self.config.recordings_dir, name + ".wav"))

    async def flush_records(self) -> None:
        if self._records is not None:
            await self._records

    async def _command(self, command: str, wait_s: float = 0.0) -> AgiResult:
        if self.gone is not None:
            raise CallerGone(self.gone)
        try:
            return await self.channel.command(command, self.config.reply_timeout_s + wait_s)
        except AgiHangup as exc:
            raise CallerGone(exc.reason) from exc
        except AgiProtocolError as exc:
            log.warning("AGI protocol error on %s: %s", self.call_id, exc)
            raise CallerGone("protocol_error") from exc

    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # --- carrier methods (callcenter.services.ivr.carrier.HANDLERS) -------------------------------------
    async def record(self, cmd: Record) -> None:
        detail = dict(cmd.detail)
        if cmd.step == "start":
            detail.update(asterisk_uniqueid=self.asterisk_uniqueid, asterisk_channel=self.asterisk_channel)
        if cmd.step == "end":
            detail["duration_s"] = round(time.monotonic() - self.started, 1)
        # written in the background, in order: the caller never waits for the call record (on a busy database
        # the PIN step's record held the caller in silence before the check even started)
        self._records = asyncio.ensure_future(self._write_record(self._records, cmd.step, detail))

    async def _write_record(self, previous: "asyncio.Future[None] | None", step: str, detail: dict[str, Any]) -> None:
        if previous is not None:
            await previous  # never raises: each write logs its own failure
        try:
            record_id = await self._thread(self.backend.record_event, self.call_id, step, detail)
            if step == "handoff" and isinstance(record_id, int):
                self.ivr_session_id = record_id
        except Exception:  # noqa: BLE001 - a lost record must not drop the call
            log.exception("could not record IVR step %s of %s", step, self.call_id)

    def _say_tokens(self, words: str, lang: str) -> None:
        self.pending += [_Play("file", self._file(token_stem(t), lang)) for t in speech.tokens(words, lang)]

    async def speak(self, cmd: Command) -> None:
        if isinstance(cmd, Say):
            if cmd.optional and not i18n.has(cmd.key, cmd.lang):
                return
            self.pending.append(_Play("file", self._file(prompt_stem(cmd.key), cmd.lang)))
        elif isinstance(cmd, SayDigits):
            digits = safe_token(cmd.digits, "0-9", 64)
            if cmd.lang in OWN_NUMBER_VOICE:  # Asterisk has no Chinese digits: SAY DIGITS would read them in English
                self._say_tokens(speech.digits_text(digits, cmd.lang), cmd.lang)
            else:
                self.pending.append(_Play("digits", digits))
        elif isinstance(cmd, SayNumber):
            if cmd.lang in OWN_NUMBER_VOICE:
                self._say_tokens(speech.number_text(int(cmd.number), cmd.lang), cmd.lang)
            else:
                self.pending.append(_Play("number", str(int(cmd.number))))
        elif isinstance(cmd, SayAmount):
            self._say_tokens(speech.amount_text(cmd.fen, cmd.lang), cmd.lang)
        elif isinstance(cmd, SayText):
            if self.config.render_text is None:
                return  # no synthesiser configured: free text is skipped (bulletins have a spoken title)
            try:
                stem = await self._thread(self.config.render_text, cmd.text, cmd.lang)
            except Exception:  # noqa: BLE001
                log.exception("could not render free text for %s", self.call_id)
                stem = None
            if stem:
                self.pending.append(_Play("file", self._file(stem, cmd.lang)))
        else:
            raise UnhandledCommand(self, cmd)

    async def collect(self, cmd: Collect) -> Event:
        if not (cmd.secret and self._taping):
            return await self._collect(cmd)
        # a secret (PIN, trading password): the recording stops before its prompt, so no key of it is ever in a
        # file, and starts again after the answer; the span between is silence in the kept recording
        assert self.tape is not None
        await self._tape_stop()
        self.tape.stopped_for_secret(self._tape_now())
        event = await self._collect(cmd)  # CallerGone: the span runs to the end (_tape_end)
        self.tape.resumed(self._tape_now())
        await self._tape_segment()
        return event

    async def _collect(self, cmd: Collect) -> Event:
        if self.typeahead:
            return await self._collect_typed_ahead(cmd)
        timeout_ms = int(cmd.timeout_s * 1000)
        last = self.pending.pop() if self.pending and self.pending[-1].kind == "file" else None
        first = await self._flush(ESCAPE_DIGITS)
        if first is not None:
            if first == "#" or cmd.max_digits == 1:
                return DigitsEntered("" if first == "#" else first)
            prompt, wanted = "silence/1", cmd.max_digits - 1
        else:
            prompt, wanted = (last.value if last else "silence/1"), cmd.max_digits
        return await self._get_data(cmd, prompt, timeout_ms, wanted, first or "")

    async def _collect_typed_ahead(self, cmd: Collect) -> Event:
        """Keys typed ahead answer the next question: its prompt is skipped, as a key would have cut it."""
        self.pending.clear()
        typed, self.typeahead = self.typeahead, ""
        ahead = apply_typed(typed, cmd)
        if ahead.answer is not None:
            self.typeahead = ahead.rest
            return DigitsEntered(ahead.answer)
        return await self._get_data(cmd, "silence/1", int(cmd.timeout_s * 1000), cmd.max_digits - len(typed), typed)

    async def _get_data(self, cmd: Collect, prompt: str, timeout_ms: int, wanted: int, before: str) -> Event:
        res = await self._command(f"GET DATA {prompt} {timeout_ms} {wanted}", timeout_ms / 1000)
        if res.code != 200:
            raise CallerGone("agi_error")
        if res.result == "-1":
            raise CallerGone("caller_hangup")
        digits = before + safe_token(res.result, "0-9*#", 64)
        if not digits and res.timed_out:
            return Timeout()
        return DigitsEntered(digits)

    async def run_action(self, cmd: RunAction) -> ActionResult:
        # decided: carry it out before anything else can fail (the caller may already be gone)
        spec = ACTIONS.get(cmd.name)
        if spec is None:
            return await self._thread(run_action, self.backend, cmd, self.ctx, self.session.lang)
        return await self._run_while_waiting(cmd, spec.wait_prompt, spec.keep_typeahead)

    async def _run_while_waiting(self, cmd: RunAction, wait_prompt: bool,
                                 keep_typeahead: tuple[str, ...]) -> ActionResult:
        """Backend work (the PIN check waits for the hashing pool; a balance lookup or a transfer waits for the
        back office): every key typed meanwhile is read with WAIT FOR DIGIT slices (res_agi drops DTMF that
        arrives while no command runs) and kept for the next question; a ``wait_prompt`` action also plays
        "please wait" (first the prompts queued before it) when it takes longer than ``wait_prompt_after_s``."""
        task = asyncio.ensure_future(self._thread(run_action, self.backend, cmd, self.ctx, self.session.lang))
        started = time.monotonic()
        prompted = not wait_prompt
        grace = min(GRACE_S, self.config.wait_prompt_after_s) if wait_prompt else GRACE_S
        try:
            if self.pending and wait_prompt:
                key = await self._flush(ESCAPE_DIGITS)
                self.typeahead += key or ""
            # work that is done at once (a free pool, a quick lookup) costs no WAIT FOR DIGIT slice: only this
            # short grace is a window in which a key could be lost, as between any two AGI commands
            await asyncio.wait({task}, timeout=grace)
            while not task.done():
                if not prompted and time.monotonic() - started >= self.config.wait_prompt_after_s:
                    prompted = True
                    key = await self._play(_Play("file", self._file("please_wait", self.session.lang)), ESCAPE_DIGITS)
                    self.typeahead += key or ""
                    continue
                # slices grow with the wait (a quarter of it, at most MAX_SLICE_MS): a caller queued behind many
                # PIN checks costs few commands, and hears the outcome at most a quarter later than it was ready
                elapsed_ms = (time.monotonic() - started) * 1000
                slice_ms = int(max(self.config.typeahead_poll_ms, min(MAX_SLICE_MS, elapsed_ms / 4)))
                res = await self._command(f"WAIT FOR DIGIT {slice_ms}", slice_ms / 1000)
                if res.code == 200 and res.result.isdigit() and int(res.result) > 0:
                    self.typeahead += safe_token(chr(int(res.result)), "0-9*#", 1)
                elif res.code == 200 and res.result == "-1":
                    raise CallerGone("caller_hangup")
        except CallerGone as gone:
            self.gone = gone.reason  # the action still completes; the call ends at the next command
        result: ActionResult = await task
        self.typeahead = kept_after(result.outcome, keep_typeahead, self.typeahead)
        return result

    async def set_language(self, cmd: SetLanguage) -> None:
        await self._flush()
        await self._command(f"SET VARIABLE CHANNEL(language) {agi_quote(ASTERISK_LANG[cmd.lang])}")

    async def set_variable(self, cmd: SetVariable) -> None:
        await self._flush()
        await self._set(cmd.name, cmd.value)

    async def handoff(self, cmd: Handoff) -> None:
        await self._flush()
        await self._set(V.CC_CLIENT_ID, cmd.client_id or "")
        await self._set(V.CC_IVR_SUMMARY, cmd.summary)
        await self._set(V.CC_LANG, cmd.lang)
        await self.flush_records()  # the hand-off's record first: the engine loads waiting hand-offs from it
        if self.ivr_session_id is not None:
            await self._set(V.CC_CALL_ID, V.handoff_call_id(self.ivr_session_id))
            await self._set(V.CC_HANDOFF_WAIT_S, str(int(self.config.handoff_wait_s) + 30))
        await self._set(V.CC_HANDOFF, "1")
        # returning ends the AGI: the dialplan parks the caller in [cc-handoff-wait] (no CC_CALL_ID: the record
        # failed, nobody can route the call: the dialplan plays the sorry prompt), and the engine's call core
        # routes it to an agent like an answered outbound call

    async def hang_up(self, cmd: EndCall) -> None:
        await self._flush()
        await self._command("HANGUP")

    # --- playing --------------------------------------------------------------------------------
    def _file(self, key_stem: str, lang: str) -> str:
        return _sound_file(self.config.sound_prefix, lang, key_stem)

    async def _play(self, item: _Play, escape: str) -> str | None:
        """Play one item; returns the key that interrupted it, if any."""
        if item.kind == "file":
            res = await self._command(f"STREAM FILE {item.value} {agi_quote(escape)}")
        elif item.kind == "digits":
            res = await self._command(f"SAY DIGITS {item.value} {agi_quote(escape)}")
        else:
            res = await self._command(f"SAY NUMBER {item.value} {agi_quote(escape)}")
        if res.code == 200 and res.result.isdigit() and int(res.result) > 0:
            return chr(int(res.result))
        return None

    async def _flush(self, escape: str = "") -> str | None:
        items, self.pending = self.pending, []
        for item in items:
            key = await self._play(item, escape)
            if key:
                return key
        return None

    async def _set(self, name: str, value: str) -> None:
        await self._command(f"SET VARIABLE {safe_token(name, r'A-Za-z0-9_()', 64)} {agi_quote(value)}")


def agi_config(settings: Any) -> AgiConfig:
    """The FastAGI configuration from :class:`callcenter.settings.Settings`."""
    return AgiConfig(prompts_dir=settings.prompts_path, sound_prefix=settings.asterisk_sound_prefix, limits={"pin_failures": settings.ivr_pin_attempts_per_call},
                     header_timeout_s=settings.agi_header_timeout_s, reply_timeout_s=settings.agi_reply_timeout_s,
                     max_connections=settings.agi_max_connections,
                     wait_prompt_after_s=settings.ivr_wait_prompt_after_s,
                     typeahead_poll_ms=settings.ivr_typeahead_poll_ms,
                     handoff_wait_s=settings.handoff_wait_s)


def new_call_id() -> str:
    """A call id unique by construction (never derived from Asterisk's uniqueid or a memory address)."""
    return f"agi-{uuid.uuid4().hex}"


# --- server -----------------------------------------------------------------------------------
class AgiHeaderTimeout(Exception):
    """The AGI environment did not arrive within the header deadline."""


async def read_headers(reader: asyncio.StreamReader, deadline_s: float = 5.0) -> dict[str, str]:
    """The ``agi_*: value`` block that starts a FastAGI session, up to the blank line, all of it within
    ``deadline_s`` (a header drip-fed one line at a time does not hold a connection longer)."""
    headers: OrderedDict[str, str] = OrderedDict()
    size = 0
    try:
        async with asyncio.timeout(deadline_s):
            while True:
                raw = await reader.readline()
                if not raw:
                    raise ConnectionError("closed before the AGI header ended")
                size += len(raw)
                if size > MAX_HEADER_BYTES:
                    raise AgiProtocolError("AGI header too long")
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    return headers
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip()] = value.strip()
    except TimeoutError:
        raise AgiHeaderTimeout(f"AGI header not complete within {deadline_s:g} s") from None
    except ValueError as exc:  # StreamReader: a line longer than its limit
        raise AgiProtocolError("AGI header line too long") from exc


class IvrAgiApplication(Application):
    """panoramisk's FastAGI application (routes keyed on the script name) with a stricter handler:
    header deadline, reply timeouts, a connection cap, a call record for every session (also one that ends
    in a protocol error or a timeout), no swallowed cancellation, sockets closed and awaited."""

    def __init__(self, backend: IvrBackend, flows: dict[str, Flow], config: AgiConfig | None = None,
                 on_turnaround: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.config = config or AgiConfig()
        self.on_turnaround = on_turnaround
        self.active = 0
        self.calls = 0
        self.refused = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # one thread per call at most (a call has one backend call in flight): no call queues behind another's
        # PIN check; the CPU-heavy hashing is bounded separately (callcenter.services.hash_pool)
        self.executor = ThreadPoolExecutor(max_workers=max(1, self.config.max_connections),
                                           thread_name_prefix="ivr-agi")
        self._flows = flows
        for name, flow in flows.items():
            self.add_route(name, self._endpoint(flow))

    def _endpoint(self, flow: Flow) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> None:
            channel = AgiChannel(request.reader, request.writer, self.config.reply_timeout_s, self.on_turnaround)
            await AgiCall(channel, flow, self.backend, dict(request.headers), self.config, self.executor).run()

        return endpoint

    async def wait_idle(self) -> None:
        """Until no call is in progress (tests, graceful shutdown)."""
        await self._idle.wait()

    async def _record_failed(self, call_id: str, reason: str, headers: dict[str, str]) -> None:
        """The record of a session that never reached its flow (header timeout, bad header, no route)."""
        caller = caller_number(headers.get("agi_callerid"))
        detail = {"caller": mask_phone(caller), "flow": headers.get("agi_network_script", "")[:64],
                  "asterisk_uniqueid": safe_token(headers.get("agi_uniqueid", ""), r"A-Za-z0-9_.\-", 64)}
        try:
            for step, info in (("start", detail), ("end", {"reason": reason, "node": None})):
                await asyncio.get_running_loop().run_in_executor(self.executor, self.backend.record_event,
                                                                  call_id, step, info)
        except Exception:  # noqa: BLE001 - the log line below still says what happened
            log.exception("could not record failed FastAGI session %s", call_id)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.config.max_connections:
            self.refused += 1
            peer = writer.get_extra_info("peername")
            log.warning("FastAGI connection from %s refused: %d calls in progress (agi_max_connections)",
                        peer[0] if peer else "?", self.active)
            writer.close()
            with suppress(ConnectionError, OSError):
                await writer.wait_closed()
            return
        self.active += 1
        self._idle.clear()
        self.calls += 1
        self._tell_session(1)
        headers: dict[str, str] = {}
        call_id = new_call_id()
        try:
            try:
                headers = await read_headers(reader, self.config.header_timeout_s)
            except (AgiHeaderTimeout, AgiProtocolError, ConnectionError, asyncio.IncompleteReadError) as exc:
                log.warning("FastAGI session %s ended before its flow: %s", call_id, exc)
                reason = "header_timeout" if isinstance(exc, AgiHeaderTimeout) else (
                    "protocol_error" if isinstance(exc, AgiProtocolError) else "connection_lost")
                await self._record_failed(call_id, reason, headers)
                return
            script = headers.get("agi_network_script", "").split("?", 1)[0].strip("/")
            route = self._route.get(script)
            if route is None:
                log.error("no FastAGI route for %r", script[:64])
                await self._record_failed(call_id, "no_route", headers)
                return
            await route(Request(app=self, headers=headers, reader=reader, writer=writer))
        except (ConnectionError, TimeoutError, AgiProtocolError, asyncio.IncompleteReadError) as exc:
            log.warning("FastAGI connection ended: %s", exc)
        except Exception:  # noqa: BLE001 - one broken call must not stop the server
            log.exception("FastAGI call failed")
        finally:
            writer.close()
            with suppress(ConnectionError, OSError):
                await writer.wait_closed()
            self.active -= 1
            self._tell_session(-1)
            if self.active == 0:
                self._idle.set()

    def _tell_session(self, delta: int) -> None:
        if self.config.on_session is not None:
            try:
                self.config.on_session(delta)
            except Exception:  # noqa: BLE001 - counting must never break a call
                log.exception("FastAGI on_session hook failed")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def load_flows(folder: Path = FLOWS_DIR) -> dict[str, Flow]:
    return {path.stem: load_flow(path) for path in sorted(folder.glob("*.yaml"))}


async def start_agi_server(backend: IvrBackend, host: str = "127.0.0.1", port: int = 0,
                           flows: dict[str, Flow] | None = None, config: AgiConfig | None = None,
                           on_turnaround: Callable[[float], None] | None = None
                           ) -> tuple[asyncio.Server, IvrAgiApplication]:
    app = IvrAgiApplication(backend, flows if flows is not None else load_flows(), config, on_turnaround)
    server = await asyncio.start_server(app.handler, host, port, limit=MAX_HEADER_BYTES)
    return server, app


async def serve_forever(backend: IvrBackend, host: str, port: int, limits: dict[str, int] | None = None,
                        echo: Callable[[str], None] = print, config: AgiConfig | None = None,
                        flows_dir: Path = FLOWS_DIR) -> None:
    from callcenter.adapters.ivr.prompts import render_text_cached

    config = config or AgiConfig()
    config.limits = dict(limits or config.limits)
    prompts_dir = config.prompts_dir
    config.render_text = lambda text, lang: render_text_cached(text, lang, prompts_dir)
    server, app = await start_agi_server(backend, host, port, flows=load_flows(flows_dir), config=config)
    echo(f"FastAGI listening on {host}:{port} (routes: {', '.join(app._route)})")
    async with server:
        await server.serve_forever()
