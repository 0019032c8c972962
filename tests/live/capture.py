"""A recording TCP proxy between the engine and a real Asterisk's AMI: what passes through becomes a
capture in the ``.ami`` format of ``callcenter.adapters.telephony.ami_replay`` (``>>> `` client lines, ``### ``
annotations, server bytes verbatim), so the ordinary suite can replay what a live test proved."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

_SECRET = re.compile(rb"(?im)^(Secret): [^\r\n]*")


class RecordingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sessions: list[list[tuple[float, str, bytes]]] = []  # one list per connection: (t, who, data)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        return "127.0.0.1", self._server.sockets[0].getsockname()[1]

    async def start(self) -> "RecordingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log: list[tuple[float, str, bytes]] = []
        self.sessions.append(log)
        t0 = time.monotonic()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:  # Asterisk is down (restarting): the engine sees a refused connection, as it would
            self.sessions.pop()
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, who: str) -> None:
            try:
                while data := await src.read(65536):
                    log.append((time.monotonic() - t0, who, data))
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                log.append((time.monotonic() - t0, who + "-closed", b""))
                dst.close()

        tasks = [asyncio.create_task(pump(reader, up_writer, "client")),
                 asyncio.create_task(pump(up_reader, writer, "server"))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    def write(self, path: Path, session: int = 0, note: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(self.sessions[session], note))


def render(log: list[tuple[float, str, bytes]], note: str = "") -> bytes:
    out = bytearray()
    if note:
        for line in note.splitlines():
            out += b"### " + line.encode() + b"\n"
    server = bytearray()  # server bytes not yet written: flushed up to a line end before each client block
    client = bytearray()
    for at, who, data in log:
        if who == "server":
            server += data
        elif who == "client":
            client += data
            while b"\r\n\r\n" in client:
                block, _, rest = bytes(client).partition(b"\r\n\r\n")
                client = bytearray(rest)
                cut = server.rfind(b"\n") + 1
                out += server[:cut]
                del server[:cut]
                out += f"### sent at +{at:.2f}s\n".encode()
                for line in _SECRET.sub(rb"\1: ccsecret", block).split(b"\r\n"):
                    out += b">>> " + line + b"\n"
        elif who == "server-closed":
            out += server
            server.clear()
            out += f"### connection closed by peer at +{at:.2f}s\n".encode()
            return bytes(out)
    out += server
    return bytes(out)


class AgiRecordingProxy:
    """A recording TCP proxy between a real Asterisk's ``AGI(agi://...)`` and the engine's FastAGI server: it
    listens where the shipped dialplan sends calls and forwards to the engine; each session becomes a capture
    in the ``.agi`` format of :mod:`callcenter.adapters.ivr.agi_replay` (Asterisk's bytes verbatim, line by line)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen = listen
        self.target = target
        self.sessions: list[list[tuple[float, str, bytes]]] = []
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> "AgiRecordingProxy":
        self._server = await asyncio.start_server(self._handle, *self.listen)
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log: list[tuple[float, str, bytes]] = []
        self.sessions.append(log)
        t0 = time.monotonic()
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, who: str) -> None:
            try:
                while data := await src.read(65536):
                    log.append((time.monotonic() - t0, who, data))
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                log.append((time.monotonic() - t0, who + "-closed", b""))
                dst.close()

        tasks = [asyncio.create_task(pump(reader, up_writer, "asterisk")),
                 asyncio.create_task(pump(up_reader, writer, "engine"))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    def write(self, path: Path, session: int = 0, note: str = "") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render_agi(self.sessions[session], note))


def render_agi(log: list[tuple[float, str, bytes]], note: str = "") -> bytes:
    """``=== connection``, Asterisk's header lines (``<<< ``), then each command (``>>> ``) and every line
    Asterisk sent (``<<< [+N.NNs] ``, seconds since the session began), in the order they passed; the end
    is ``### closed by asterisk|engine at +N.NNs``."""
    out = bytearray()
    for line in note.splitlines():
        out += b"### " + line.encode() + b"\n"
    out += b"=== connection\n"
    pending = {"asterisk": bytearray(), "engine": bytearray()}
    in_header = True
    for at, who, data in log:
        if who.endswith("-closed"):
            out += f"### closed by {who.removesuffix('-closed')} at +{at:.2f}s\n".encode()
            break
        buf = pending[who]
        buf += data
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            if who == "engine":
                out += b">>> " + line + b"\n"
            elif in_header:
                out += b"<<< " + line + b"\n"
                in_header = line != b""
            else:
                out += f"<<< [+{at:.2f}s] ".encode() + line + b"\n"
    return bytes(out)
