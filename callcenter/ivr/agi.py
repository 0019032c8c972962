"""FastAGI adapter: runs IVR flows for Asterisk (``AGI(agi://host:4573/hotline)``), on panoramisk.

One asyncio task per call; the pure interpreter decides, this module only translates its commands
into AGI commands (ANSWER, STREAM FILE, GET DATA, SAY DIGITS, SAY NUMBER, SET VARIABLE, HANGUP) and
AGI answers back into events.  Backend calls run in worker threads (``asyncio.to_thread``), so
hundreds of calls share one process.

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
import logging
import re
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from panoramisk.fast_agi import Application, Request

from callcenter import i18n
from callcenter.ivr import speech
from callcenter.ivr.backend import CallContext, IvrBackend, run_action
from callcenter.ivr.flow import FLOWS_DIR, load_flow
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
    mask_phone,
)
from callcenter.ivr.model import Flow
from callcenter.ivr.prompts import DEFAULT_DIR, prompt_stem, token_stem
from callcenter.telephony import variables as V

log = logging.getLogger(__name__)

ESCAPE_DIGITS = "0123456789*#"
ASTERISK_LANG = {"zh-CN": "zh", "en": "en"}
MAX_HEADER_BYTES = 16_384
HEADER_TIMEOUT_S = 10.0
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

    async def _readline(self) -> str:
        try:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout_s)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            raise AgiHangup("connection_lost") from exc
        if not raw:
            raise AgiHangup("connection_lost")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def command(self, command: str) -> AgiResult:
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
            line = await self._readline()
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
    prompts_dir: Path = DEFAULT_DIR
    limits: dict[str, int] = field(default_factory=dict)
    # free text (bulletins) -> stem of a rendered file under prompts_dir/<lang>/, or None to skip it
    render_text: Callable[[str, str], str | None] | None = None
    command_timeout_s: float = 120.0


@dataclass
class _Play:
    kind: str  # "file" | "digits" | "number"
    value: str


class AgiCall:
    def __init__(self, channel: AgiChannel, flow: Flow, backend: IvrBackend, headers: dict[str, str],
                 config: AgiConfig) -> None:
        self.channel = channel
        self.flow = flow
        self.backend = backend
        self.config = config
        self.call_id = safe_token(headers.get("agi_uniqueid", ""), r"A-Za-z0-9_.\-", 64) or f"agi-{id(self)}"
        self.caller = caller_number(headers.get("agi_callerid"))
        self.session = IvrSession(flow, caller=self.caller, call_id=self.call_id, limits=config.limits)
        self.ctx = CallContext(self.call_id, self.caller, "ivr-agi")
        self.pending: list[_Play] = []
        self.started = time.monotonic()

    async def run(self) -> str:
        """Run the call to its end; returns the end reason."""
        log.info("IVR call %s from %s (%s)", self.call_id, mask_phone(self.caller), self.flow.name)
        queue: list[Command] = self.session.start()
        try:
            await self.channel.command("ANSWER")
            while queue:
                event = await self._do(queue.pop(0))
                if event is not None:
                    queue.extend(self.session.feed(event))
        except AgiHangup as exc:
            # Nothing can be played any more. An action the interpreter already decided on (e.g. a
            # transfer the caller confirmed) is still carried out; then only records remain.
            tail: list[Command] = []
            for cmd in queue:
                if isinstance(cmd, RunAction):
                    result = await asyncio.to_thread(run_action, self.backend, cmd, self.ctx, self.session.lang)
                    tail += [c for c in self.session.feed(result) if isinstance(c, Record)]
                elif isinstance(cmd, Record):
                    tail.append(cmd)
            tail += self.session.feed(Hangup(exc.reason))
            for cmd in tail:
                if isinstance(cmd, Record):
                    await self._record(cmd)
        return self.session.end_reason or "unknown"

    async def _record(self, cmd: Record) -> None:
        detail = dict(cmd.detail)
        if cmd.step == "end":
            detail["duration_s"] = round(time.monotonic() - self.started, 1)
        try:
            await asyncio.to_thread(self.backend.record_event, self.call_id, cmd.step, detail)
        except Exception:  # noqa: BLE001 - a lost record must not drop the call
            log.exception("could not record IVR step %s of %s", cmd.step, self.call_id)

    def _file(self, key_stem: str, lang: str) -> str:
        return safe_token(str(self.config.prompts_dir / lang / key_stem))

    async def _queue_speech(self, cmd: Command) -> None:
        if isinstance(cmd, Say):
            if cmd.optional and not i18n.has(cmd.key, cmd.lang):
                return
            self.pending.append(_Play("file", self._file(prompt_stem(cmd.key), cmd.lang)))
        elif isinstance(cmd, SayDigits):
            self.pending.append(_Play("digits", safe_token(cmd.digits, "0-9", 64)))
        elif isinstance(cmd, SayNumber):
            self.pending.append(_Play("number", str(int(cmd.number))))
        elif isinstance(cmd, SayAmount):
            words = speech.amount_text(cmd.fen, cmd.lang)
            self.pending += [_Play("file", self._file(token_stem(t), cmd.lang))
                             for t in speech.tokens(words, cmd.lang)]
        elif isinstance(cmd, SayText) and self.config.render_text is not None:
            try:
                stem = await asyncio.to_thread(self.config.render_text, cmd.text, cmd.lang)
            except Exception:  # noqa: BLE001
                log.exception("could not render free text for %s", self.call_id)
                stem = None
            if stem:
                self.pending.append(_Play("file", self._file(stem, cmd.lang)))

    async def _play(self, item: _Play, escape: str) -> str | None:
        """Play one item; returns the key that interrupted it, if any."""
        if item.kind == "file":
            res = await self.channel.command(f"STREAM FILE {item.value} {agi_quote(escape)}")
        elif item.kind == "digits":
            res = await self.channel.command(f"SAY DIGITS {item.value} {agi_quote(escape)}")
        else:
            res = await self.channel.command(f"SAY NUMBER {item.value} {agi_quote(escape)}")
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

    async def _collect(self, cmd: Collect) -> Event:
        timeout_ms = int(cmd.timeout_s * 1000)
        last = self.pending.pop() if self.pending and self.pending[-1].kind == "file" else None
        first = await self._flush(ESCAPE_DIGITS)
        if first is not None:
            if first == "#" or cmd.max_digits == 1:
                return DigitsEntered("" if first == "#" else first)
            prompt, wanted = "silence/1", cmd.max_digits - 1
        else:
            prompt, wanted = (last.value if last else "silence/1"), cmd.max_digits
        res = await self.channel.command(f"GET DATA {prompt} {timeout_ms} {wanted}")
        if res.code != 200:
            raise AgiHangup("agi_error")
        if res.result == "-1":
            raise AgiHangup("caller_hangup")
        digits = (first or "") + safe_token(res.result, "0-9*#", 64)
        if not digits and res.timed_out:
            return Timeout()
        return DigitsEntered(digits)

    async def _do(self, cmd: Command) -> Event | None:
        if isinstance(cmd, (Say, SayDigits, SayNumber, SayAmount, SayText)):
            await self._queue_speech(cmd)
            return None
        if isinstance(cmd, Collect):
            return await self._collect(cmd)
        if isinstance(cmd, Record):
            await self._record(cmd)
            return None
        if isinstance(cmd, RunAction):
            # decided: carry it out before anything else can fail (the caller may already be gone)
            result = await asyncio.to_thread(run_action, self.backend, cmd, self.ctx, self.session.lang)
            return result
        await self._flush()
        if isinstance(cmd, SetLanguage):
            await self.channel.command(f"SET VARIABLE CHANNEL(language) {agi_quote(ASTERISK_LANG[cmd.lang])}")
        elif isinstance(cmd, SetVariable):
            await self._set(cmd.name, cmd.value)
        elif isinstance(cmd, Handoff):
            await self._set(V.CC_CLIENT_ID, cmd.client_id or "")
            await self._set(V.CC_IVR_SUMMARY, cmd.summary)
            await self._set(V.CC_HANDOFF, "1")
            # returning ends the AGI: the dialplan goes on to the agent queue
        elif isinstance(cmd, HangUp):
            await self.channel.command("HANGUP")
        return None

    async def _set(self, name: str, value: str) -> None:
        await self.channel.command(f"SET VARIABLE {safe_token(name, r'A-Za-z0-9_()', 64)} {agi_quote(value)}")


# --- server -----------------------------------------------------------------------------------
async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    """The ``agi_*: value`` block that starts a FastAGI session, up to the blank line."""
    headers: OrderedDict[str, str] = OrderedDict()
    size = 0
    while True:
        raw = await asyncio.wait_for(reader.readline(), HEADER_TIMEOUT_S)
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


class IvrAgiApplication(Application):
    """panoramisk's FastAGI application (routes keyed on the script name) with a stricter handler:
    bounded header read, no swallowed cancellation, sockets closed and awaited."""

    def __init__(self, backend: IvrBackend, flows: dict[str, Flow], config: AgiConfig | None = None,
                 on_turnaround: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.config = config or AgiConfig()
        self.on_turnaround = on_turnaround
        self.active = 0
        self.calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        for name, flow in flows.items():
            self.add_route(name, self._endpoint(flow))

    def _endpoint(self, flow: Flow) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> None:
            channel = AgiChannel(request.reader, request.writer, self.config.command_timeout_s, self.on_turnaround)
            await AgiCall(channel, flow, self.backend, dict(request.headers), self.config).run()

        return endpoint

    async def wait_idle(self) -> None:
        """Until no call is in progress (tests, graceful shutdown)."""
        await self._idle.wait()

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        self._idle.clear()
        self.calls += 1
        try:
            headers = await read_headers(reader)
            script = headers.get("agi_network_script", "").split("?", 1)[0].strip("/")
            route = self._route.get(script)
            if route is None:
                log.error("no FastAGI route for %r", script[:64])
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
            if self.active == 0:
                self._idle.set()


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
                        echo: Callable[[str], None] = print, flows_dir: Path = FLOWS_DIR,
                        prompts_dir: Path = DEFAULT_DIR) -> None:
    from callcenter.ivr.prompts import render_text_cached

    config = AgiConfig(prompts_dir=prompts_dir, limits=dict(limits or {}),
                       render_text=lambda text, lang: render_text_cached(text, lang, prompts_dir))
    server, app = await start_agi_server(backend, host, port, flows=load_flows(flows_dir), config=config)
    echo(f"FastAGI listening on {host}:{port} (routes: {', '.join(app._route)})")
    async with server:
        await server.serve_forever()
