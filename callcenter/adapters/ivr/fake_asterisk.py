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
"""

from __future__ import annotations

import asyncio
import shlex
import time
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
            call.hung_up = True
            return "200 result=-1"
        given = call.inputs.pop(0)
        if given == "drop":
            return None
        if given == "hangup":
            call.hung_up = True
            return "200 result=-1"
        if given == "w":
            return "200 result= (timeout)"
        if given.startswith("w:"):
            return f"200 result={given[2:]} (timeout)"
        return f"200 result={given}"
    if head == "SET VARIABLE":
        parts = shlex.split(command)
        call.variables[parts[2]] = parts[3] if len(parts) > 3 else ""
        return "200 result=1"
    if head.startswith("HANGUP"):
        call.hung_up = True
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
