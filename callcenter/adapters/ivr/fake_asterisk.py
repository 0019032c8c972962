"""A fake Asterisk for FastAGI tests and the benchmark: connects to a FastAGI server over TCP, sends
the ``agi_*`` header exactly as Asterisk 22 does (../shared/fixtures/asterisk-22/fastagi_session.agi)
and answers each command the way Asterisk answers it, with a scripted caller behind it.

``inputs`` are the caller's answers to successive GET DATA commands: digits (as Asterisk returns
them, without the ``#``), ``"w"`` for silence (``200 result= (timeout)``), ``"w:12"`` for digits then
silence (``200 result=12 (timeout)``), ``"hangup"`` (``200 result=-1``, then ``HANGUP`` + ``511`` for
every later command), ``"drop"`` (the TCP connection closes instead of answering), ``"+K@MS"`` (right
after the previous answer, the caller presses key K MS milliseconds later while the engine is busy).  As
on a real Asterisk, a key pressed while no command runs is lost (res_agi drops it): it reaches only a
WAIT FOR DIGIT that is running at that moment, or a command with escape digits that starts at most
``GAP_S`` after it.  WAIT FOR DIGIT without a key waits its timeout, then answers ``200 result=0``.
When the inputs run out, the caller hangs up.

``EXEC MixMonitor <path>,i(VAR)`` records as Asterisk does: the file (an 8 kHz 16-bit WAV of a tone, as long as
the recording ran) is written when ``EXEC StopMixMonitor`` stops it or the caller hangs up; ``VAR`` gets the
MixMonitor's id. ``recorded_answers`` are the GET DATA answers given while a recording ran (a PIN must never be
one of them).
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import time
import wave
from dataclasses import dataclass, field

HEADER_TEMPLATE = [
    ("agi_network", "yes"),
    ("agi_network_script", "{script}"),
    ("agi_request", "agi://{host}:{port}/{script}"),
    ("agi_channel", "Local/123456@sim-caller-00000006;1"),
    ("agi_language", "en"),
    ("agi_type", "Local"),
    ("agi_uniqueid", "{uniqueid}"),
    ("agi_version", "22.11.0-rc1"),
    ("agi_callerid", "{callerid}"),
    ("agi_calleridname", "Client"),
    ("agi_callingpres", "0"),
    ("agi_callingani2", "0"),
    ("agi_callington", "0"),
    ("agi_callingtns", "0"),
    ("agi_dnid", "unknown"),
    ("agi_rdnis", "unknown"),
    ("agi_context", "hotline"),
    ("agi_extension", "s"),
    ("agi_priority", "2"),
    ("agi_enhanced", "0.0"),
    ("agi_accountcode", ""),
    ("agi_threadid", "140424163190464"),
]
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
GAP_S = 0.1  # how late after a key press a command may start and still see the key


@dataclass
class FakeCall:
    inputs: list[str]
    uniqueid: str = "ivr-test-3"
    callerid: str = "13912345678"
    script: str = "hotline"
    args: list[str] = field(default_factory=list)  # the dialplan's AGI arguments (agi_arg_1, ...)
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (command, answer)
    variables: dict[str, str] = field(default_factory=dict)
    turnarounds: list[float] = field(default_factory=list)  # seconds from our answer to the next command
    timeline: list[tuple[float, str]] = field(default_factory=list)  # (perf_counter when received, command)
    answered_at: list[float] = field(default_factory=list)  # perf_counter when each answer was sent
    presses: list[tuple[float, str]] = field(default_factory=list)  # (perf_counter of the press, key) pending
    lost_keys: list[str] = field(default_factory=list)  # pressed while no command ran
    closed_by_server: bool = False
    hung_up: bool = False
    hangup_announced: bool = False
    typing_s: float = 0.0  # how long the caller takes to answer each GET DATA (recordings then have a length)
    mixmonitors: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> (path, perf_counter started)
    recorded_answers: list[str] = field(default_factory=list)

    def commands(self, verb: str = "") -> list[str]:
        return [c for c, _ in self.transcript if c.startswith(verb)]


def _pressed(call: FakeCall, waiting_s: float) -> tuple[float, str] | None:
    """The key press a command starting now (and waiting up to ``waiting_s``) receives; older presses are lost."""
    now = time.perf_counter()
    while call.presses and call.presses[0][0] < now - GAP_S:
        call.lost_keys.append(call.presses.pop(0)[1])
    if call.presses and call.presses[0][0] <= now + waiting_s:
        return call.presses.pop(0)
    return None


def _close_recording(call: FakeCall, mixmon_id: str) -> None:
    path, started = call.mixmonitors.pop(mixmon_id)
    frames = int((time.perf_counter() - started) * 8000)
    tone = b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / 8000)).to_bytes(2, "little", signed=True)
                    for n in range(80))  # 10 ms of 440 Hz
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((tone * (frames // 80 + 1))[: frames * 2])


def _exec(call: FakeCall, command: str) -> str:
    parts = shlex.split(command)
    app, args = parts[1].lower(), (parts[2] if len(parts) > 2 else "")
    if app == "mixmonitor":
        path, _, options = args.partition(",")
        mixmon_id = f"0x{len(call.mixmonitors) + 7:x}{int(time.perf_counter() * 1e6) % 100000}"
        call.mixmonitors[mixmon_id] = (path, time.perf_counter())
        if options.startswith("i(") and options.endswith(")"):
            call.variables[options[2:-1]] = mixmon_id
        return "200 result=0"
    if app == "stopmixmonitor":
        wanted = args or next(iter(call.mixmonitors), "")
        if wanted not in call.mixmonitors:
            return "200 result=-1"
        _close_recording(call, wanted)
        return "200 result=0"
    return "200 result=-2"  # no such application


def _hang_up(call: FakeCall) -> None:
    call.hung_up = True
    for mixmon_id in list(call.mixmonitors):  # MixMonitor ends with the channel
        _close_recording(call, mixmon_id)


def _answer(call: FakeCall, command: str) -> str | None:
    """Asterisk's answer to one command; None = drop the connection."""
    if call.hung_up:
        if call.hangup_announced:
            return DEAD
        call.hangup_announced = True
        return "HANGUP\n" + DEAD
    verb = command.split(" ", 2)
    head = " ".join(verb[:2]).upper()
    if head.startswith("ANSWER") or head.startswith("NOOP"):
        return "200 result=0"
    if head == "STREAM FILE":
        press = _pressed(call, waiting_s=0.0) if len(shlex.split(command)) > 3 else None
        if press:
            return f"200 result={ord(press[1])} endpos=4000"  # the key cut the prompt
        return "200 result=0 endpos=11234"
    if head == "WAIT FOR":
        return "200 result=0"  # run_fake_call waits for a key or the timeout first
    if head in ("SAY DIGITS", "SAY NUMBER"):
        return "200 result=0"
    if head == "GET DATA":
        if not call.inputs:
            _hang_up(call)
            return "200 result=-1"
        given = call.inputs.pop(0)
        if given == "drop":
            return None
        if given == "hangup":
            _hang_up(call)
            return "200 result=-1"
        if call.mixmonitors:
            call.recorded_answers.append(given)
        if given == "w":
            return "200 result= (timeout)"
        if given.startswith("w:"):
            return f"200 result={given[2:]} (timeout)"
        return f"200 result={given}"
    if head == "SET VARIABLE":
        parts = shlex.split(command)
        call.variables[parts[2]] = parts[3] if len(parts) > 3 else ""
        return "200 result=1"
    if head == "GET VARIABLE":
        name = shlex.split(command)[2]
        return f"200 result=1 ({call.variables[name]})" if name in call.variables else "200 result=0"
    if verb[0].upper() == "EXEC":
        return _exec(call, command)
    if head.startswith("HANGUP"):
        _hang_up(call)
        return "200 result=1"
    return "510 Invalid or unknown command"


async def _wait_for_digit(call: FakeCall, timeout_s: float) -> str:
    press = _pressed(call, waiting_s=timeout_s)
    if press is None:
        await asyncio.sleep(timeout_s)  # nothing pressed: the wait runs out
        return "200 result=0"
    await asyncio.sleep(max(0.0, press[0] - time.perf_counter()))  # answered when the key is pressed
    return f"200 result={ord(press[1])}"


async def run_fake_call(host: str, port: int, call: FakeCall, timeout_s: float = 30.0) -> FakeCall:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        header = "".join(f"{k}: {v}\n" for k, v in HEADER_TEMPLATE)
        header = header.format(script=call.script, host=host, port=port, uniqueid=call.uniqueid,
                               callerid=call.callerid)
        header += "".join(f"agi_arg_{n}: {value}\n" for n, value in enumerate(call.args, start=1))
        writer.write(header.encode() + b"\n")
        await writer.drain()
        answered_at: float | None = None
        while True:
            raw = await asyncio.wait_for(reader.readline(), timeout_s)
            if not raw:
                call.closed_by_server = True
                return call
            if answered_at is not None:
                call.turnarounds.append(time.perf_counter() - answered_at)
            command = raw.decode("utf-8").rstrip("\n")
            call.timeline.append((time.perf_counter(), command))
            answer = _answer(call, command)
            if answer == "200 result=0" and command.upper().startswith("WAIT FOR DIGIT"):
                answer = await _wait_for_digit(call, max(0, int(command.split()[3])) / 1000)
            if call.typing_s and command.upper().startswith("GET DATA"):
                await asyncio.sleep(call.typing_s)
            call.transcript.append((command, answer or "<dropped>"))
            if answer is None:
                return call
            writer.write(answer.encode("utf-8") + b"\n")
            await writer.drain()
            answered_at = time.perf_counter()
            call.answered_at.append(answered_at)
            while call.inputs and call.inputs[0].startswith("+") and command.upper().startswith("GET DATA"):
                key, _, ms = call.inputs.pop(0)[1:].partition("@")
                call.presses.append((answered_at + int(ms or 0) / 1000, key))
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
