"""Replay real AMI captures (``.ami`` files) from a fake Asterisk on 127.0.0.1.

Used by the adapter tests (tests/adapters/fake_ami.py) and by ``callcenter bench ami``.

Format of a capture: lines starting ``>>> `` are what the client sent (one action per block),
``### `` lines are annotations (``connection closed by peer`` ends the session), every other
line is verbatim server bytes (CRLF kept).  The ``Asterisk Call Manager/x`` banner is sent on
connect wherever the recording shows it.

The server is driven only by what the client sends, never by time: it waits for each recorded
client action, checks it (Action name and, when recorded, Channel / ChannelId / Context / Exten /
Priority; a recorded ``/regex/`` Channel matches by regex), and answers with the recorded server
bytes that followed it.  ActionIDs: the client keeps its own; every ``ActionID:`` the recording
used for that block is rewritten to the client's in all later server bytes.  A recorded client
block that falls in the middle of a server message (the recording client sent it while Asterisk
was still writing) is not waited for.  Unrecorded actions get ``Response: Error`` and are listed
in ``unexpected``; mismatching fields are listed in ``mismatches``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

BANNER_PREFIX = b"Asterisk Call Manager/"
DEFAULT_BANNER = b"Asterisk Call Manager/11.0.0\r\n"
COMPARED = ("action", "channel", "channelid", "context", "exten", "priority")
_ACTIONID = re.compile(rb"^ActionID: ([^\r\n]*)(?=\r?$)", re.MULTILINE)


def fixtures_dir() -> Path:
    """The real Asterisk 22 captures: tests/fixtures/asterisk-22 (a byte-exact copy kept in the repository),
    else ../shared/fixtures/asterisk-22 beside it; CALLCENTER_AMI_FIXTURES overrides both."""
    import os

    env = os.environ.get("CALLCENTER_AMI_FIXTURES")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]
    for candidate in (root / "tests" / "fixtures" / "asterisk-22", root.parent / "shared" / "fixtures" / "asterisk-22"):
        if candidate.is_dir():
            return candidate
    return root / "tests" / "fixtures" / "asterisk-22"


@dataclass
class ClientBlock:
    fields: list[tuple[str, str]]

    def get(self, key: str) -> str | None:
        for k, v in self.fields:
            if k.lower() == key.lower():
                return v
        return None

    @property
    def action(self) -> str:
        return (self.get("Action") or "").lower()


@dataclass
class Capture:
    name: str
    banner: bytes = DEFAULT_BANNER
    opening: bytes = b""  # server bytes before the first client block
    steps: list[tuple[ClientBlock, bytes]] = field(default_factory=list)
    closes: bool = False  # the recording ends with the peer closing the socket

    def server_bytes(self) -> bytes:
        return self.opening + b"".join(chunk for _, chunk in self.steps)


def parse_capture(data: bytes, name: str = "capture") -> Capture:
    cap = Capture(name)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    chunk = bytearray()
    banner_seen = False
    current: ClientBlock | None = None
    for raw in lines:
        if raw.startswith(b">>> ") or raw == b">>>":
            text = raw[4:].rstrip(b"\r").decode("utf8", "replace")
            if current is None:
                # a new client block: what came before belongs to the previous step
                _close_chunk(cap, chunk)
                chunk = bytearray()
                current = ClientBlock([])
                cap.steps.append((current, b""))
            if text and ": " in text:
                k, v = text.split(": ", 1)
                current.fields.append((k, v))
            continue
        current = None
        if raw.startswith(b"### "):
            if b"connection closed by peer" in raw:
                cap.closes = True
            continue
        if raw.startswith(BANNER_PREFIX) and not banner_seen:
            cap.banner = raw + b"\n"
            banner_seen = True
            continue
        chunk += raw + b"\n"
    _close_chunk(cap, chunk)
    return cap


def _close_chunk(cap: Capture, chunk: bytearray) -> None:
    if not chunk:
        return
    if not cap.steps:
        cap.opening += bytes(chunk)
    else:
        blk, prev = cap.steps[-1]
        cap.steps[-1] = (blk, prev + bytes(chunk))


def load_capture(name: str, directory: Path | None = None) -> Capture:
    path = (directory or fixtures_dir()) / (name if name.endswith(".ami") else f"{name}.ami")
    return parse_capture(path.read_bytes(), path.stem)


def parse_action(raw: bytes) -> list[tuple[str, str]]:
    out = []
    for line in raw.decode("utf8", "replace").split("\r\n"):
        if ": " in line:
            k, v = line.split(": ", 1)
            out.append((k, v))
    return out


@dataclass
class Mismatch:
    step: int
    key: str
    recorded: str
    sent: str | None


class ReplayServer:
    """A fake Asterisk: each accepted connection replays the next capture of ``scripts``
    (the last one again when there are more connections than scripts)."""

    def __init__(self, *scripts: Capture) -> None:
        if not scripts:
            raise ValueError("at least one capture")
        self.scripts = list(scripts)
        self.connections = 0
        self.received: list[list[tuple[str, str]]] = []  # every client action, in order
        self.unexpected: list[list[tuple[str, str]]] = []
        self.mismatches: list[Mismatch] = []
        self.bytes_sent = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> "ReplayServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # the handlers see EOF and end on their own
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> "ReplayServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        try:
            await self._replay(script, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _replay(self, script: Capture, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ids: dict[bytes, bytes] = {}

        def rewrite(chunk: bytes) -> bytes:
            if not ids:
                return chunk
            return _ACTIONID.sub(lambda m: b"ActionID: " + ids.get(m.group(1), m.group(1)), chunk)

        async def send(chunk: bytes) -> None:
            if chunk:
                writer.write(chunk)
                self.bytes_sent += len(chunk)
                await writer.drain()

        await send(script.banner)
        await send(rewrite(script.opening))
        tail = script.opening
        skipped: list[ClientBlock] = []
        for index, (block, chunk) in enumerate(script.steps):
            at_boundary = not tail or tail.endswith(b"\r\n\r\n")
            if at_boundary:
                fields = await self._next_matching(block, index, reader, writer, skipped)
                recorded_id = block.get("ActionID")
                sent_id = dict((k.lower(), v) for k, v in fields).get("actionid")
                if recorded_id and sent_id:
                    ids[recorded_id.encode()] = sent_id.encode()
            else:
                skipped.append(block)
            await send(rewrite(chunk))
            if chunk:
                tail = chunk
        if script.closes:
            writer.close()
            return
        while True:  # the recording stops here: answer whatever else comes, until EOF
            raw = await reader.readuntil(b"\r\n\r\n")
            await self._unexpected(parse_action(raw), writer)

    async def _next_matching(
        self,
        block: ClientBlock,
        index: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        skipped: list[ClientBlock],
    ) -> list[tuple[str, str]]:
        while True:
            raw = await reader.readuntil(b"\r\n\r\n")
            fields = parse_action(raw)
            self.received.append(fields)
            sent = {k.lower(): v for k, v in fields}
            if sent.get("action", "").lower() == block.action:
                for key in COMPARED:
                    recorded = block.get(key)
                    if recorded is None:
                        continue
                    got = sent.get(key)
                    if key == "action":
                        continue
                    if got == recorded:  # also a regex the client itself sends (Hangup Channel=/^Local.../)
                        ok = True
                    elif len(recorded) > 2 and recorded.startswith("/") and recorded.endswith("/"):
                        ok = got is not None and re.search(recorded[1:-1], got) is not None
                    else:
                        ok = False
                    if not ok:
                        self.mismatches.append(Mismatch(index, key, recorded, got))
                return fields
            if any(s.action == sent.get("action", "").lower() for s in skipped):
                continue  # the recording client sent this mid-message; it was answered already
            await self._unexpected(fields, writer)

    async def _unexpected(self, fields: list[tuple[str, str]], writer: asyncio.StreamWriter) -> None:
        self.unexpected.append(fields)
        action_id = dict((k.lower(), v) for k, v in fields).get("actionid", "")
        writer.write(f"Response: Error\r\nActionID: {action_id}\r\nMessage: Not in the capture\r\n\r\n".encode())
        await writer.drain()


# After a restart Asterisk is back: a login and an empty channel list. Synthetic (no capture of
# the reconnect exists), in the capture format, built from the Login/CoreShowChannels/Logoff
# replies recorded in answered_to_agent.ami.
AFTER_RESTART = (
    b">>> Action: Login\r\n>>> ActionID: l1\r\n"
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 1\r\nLastReload: 1\r\nStatus: Fully Booted\r\n\r\n"
    b">>> Action: CoreShowChannels\r\n>>> ActionID: chans-1\r\n"
    b"Response: Success\r\nActionID: chans-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
    b"Event: CoreShowChannelsComplete\r\nActionID: chans-1\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
    b">>> Action: Logoff\r\n>>> ActionID: bye\r\n"
    b"Response: Goodbye\r\nActionID: bye\r\nMessage: Thanks for all the fish.\r\n\r\n"
    b"### connection closed by peer\r\n"
)
