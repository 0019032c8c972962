"""Replay a FastAGI capture (``tests/fixtures/asterisk-22-live/*.agi``, recorded from a real Asterisk by
``tests/live/capture.py``) against the engine's FastAGI server: a fake Asterisk connects over TCP, sends the
recorded ``agi_*`` header and answers each command the engine sends with the lines Asterisk answered it with.

Answers are given by command, not by time, so a replay is deterministic where the live call was not: while
a backend action runs the engine polls for type-ahead keys with ``WAIT FOR DIGIT <ms>`` slices whose number
and length depend on timing. A ``WAIT FOR DIGIT`` is matched to a recorded one whatever its milliseconds; an
extra one (the engine polled more often than live) is answered ``200 result=0`` (no key); a recorded one the
engine did not send is skipped if no key arrived in it (else it is a mismatch: the engine lost a key). The
test keeps the action running until the recorded keys have been handed over: :attr:`AgiReplay.keys_delivered`
is set once the last recorded ``WAIT FOR DIGIT`` of a run of them has been answered.

Format: ``### `` annotations, ``=== connection``, the header as ``<<< name: value`` lines up to ``<<< ``
(blank), then ``>>> command`` followed by the ``<<< [+N.NNs] line`` lines Asterisk sent after it.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

_STAMP = re.compile(rb"^\[\+\d+(?:\.\d+)?s\] ")
_WAIT = "WAIT FOR DIGIT"


@dataclass
class Exchange:
    command: str
    answer: list[bytes]  # Asterisk's lines, without their "\n"

    @property
    def is_wait(self) -> bool:
        return self.command.upper().startswith(_WAIT)

    @property
    def got_key(self) -> bool:
        return self.is_wait and any(line.startswith(b"200 result=") and line != b"200 result=0" for line in self.answer)


@dataclass
class AgiCapture:
    header: list[bytes]
    exchanges: list[Exchange]
    closed_by: str | None = None


def load_agi_capture(path: Path) -> AgiCapture:
    header: list[bytes] = []
    exchanges: list[Exchange] = []
    closed_by = None
    in_header = False
    for raw in path.read_bytes().split(b"\n"):
        if raw.startswith(b"### closed by "):
            closed_by = raw.split()[3].decode()
        elif raw.startswith(b"###") or raw == b"":
            continue
        elif raw == b"=== connection":
            in_header = True
        elif raw.startswith(b"<<< ") or raw == b"<<<":
            line = raw[4:]
            if in_header:
                if line == b"":
                    in_header = False
                else:
                    header.append(line)
            elif exchanges:
                exchanges[-1].answer.append(_STAMP.sub(b"", line))
            else:
                raise ValueError(f"{path.name}: Asterisk line before any command: {raw[:60]!r}")
        elif raw.startswith(b">>> "):
            exchanges.append(Exchange(raw[4:].decode("utf-8"), []))
        else:
            raise ValueError(f"{path.name}: unexpected line {raw[:60]!r}")
    return AgiCapture(header, exchanges, closed_by)


@dataclass
class AgiReplay:
    capture: AgiCapture
    sent: list[str] = field(default_factory=list)  # every command the engine sent
    mismatches: list[tuple[str, str]] = field(default_factory=list)  # (engine sent, recorded)
    extra_waits: int = 0
    skipped_waits: int = 0
    keys_delivered: threading.Event = field(default_factory=threading.Event)  # a backend may wait on it
    unanswered: list[str] = field(default_factory=list)  # commands after the recording ended
    typing_s: float = 0.0  # how long each GET DATA takes to be answered (the caller typing; live it took seconds)

    async def run(self, host: str, port: int, timeout_s: float = 10.0) -> "AgiReplay":
        reader, writer = await asyncio.open_connection(host, port)
        recorded = list(self.capture.exchanges)
        try:
            writer.write(b"".join(line + b"\n" for line in self.capture.header) + b"\n")
            await writer.drain()
            while True:
                raw = await asyncio.wait_for(reader.readline(), timeout_s)
                if not raw:
                    return self
                command = raw.decode("utf-8").rstrip("\n")
                self.sent.append(command)
                answer = self._answer(command, recorded)
                if self.typing_s and command.startswith("GET DATA"):
                    await asyncio.sleep(self.typing_s)
                if answer is None:  # past the end of the recording: Asterisk closed the session here
                    self.unanswered.append(command)
                    return self
                writer.write(b"".join(line + b"\n" for line in answer))
                await writer.drain()
        finally:
            self.keys_delivered.set()
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _answer(self, command: str, recorded: list[Exchange]) -> list[bytes] | None:
        is_wait = command.upper().startswith(_WAIT)
        while recorded:
            head = recorded[0]
            if head.command == command or (is_wait and head.is_wait):
                recorded.pop(0)
                if head.is_wait and not (recorded and recorded[0].is_wait):
                    self.keys_delivered.set()
                return head.answer
            if is_wait:  # the engine polls once more than it did live: no key in this slice
                self.extra_waits += 1
                return [b"200 result=0"]
            if head.is_wait and not head.got_key:  # it polled less often than live: nothing was missed
                recorded.pop(0)
                self.skipped_waits += 1
                continue
            self.mismatches.append((command, head.command))
            return None
        return None
