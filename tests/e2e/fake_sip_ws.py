"""A fake SIP-over-WebSocket registrar (RFC 7118, subprotocol ``sip``) for the softphone's browser tests without
Asterisk: it challenges REGISTER with a digest (and checks the answer against the endpoint's HA1, as Asterisk's
``password_digest`` does), answers OPTIONS, and can be told to refuse registrations (403), to go silent (a socket
that stays open but answers nothing: a dead path without FIN), or to drop every socket."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def parse(raw: str) -> tuple[str, dict[str, list[str]]]:
    head = raw.split("\r\n\r\n", 1)[0].split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return head[0], headers


@dataclass
class FakeRegistrar:
    realm: str
    ha1: dict[str, str]  # user -> HA1 (MD5(user:realm:password))
    expires: int = 60
    mode: str = "ok"  # ok / refuse / silent
    registers: int = 0  # REGISTERs answered 200 (digest checked)
    bad_digests: int = 0
    options: int = 0
    connections: int = 0
    port: int = 0
    log: list[str] = field(default_factory=list)
    _open: set[ServerConnection] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # --- control, from the test's thread ---------------------------------------------------------------------
    def __enter__(self) -> "FakeRegistrar":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def drop(self) -> None:
        """Close every open socket (Asterisk restarted, a proxy cut the connection)."""
        assert self._loop is not None

        async def close_all() -> None:
            for ws in list(self._open):
                ws.transport.abort()

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)

    @property
    def open_sockets(self) -> int:
        return len(self._open)

    # --- the server --------------------------------------------------------------------------------------
    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, subprotocols=["sip"]) as server:  # type: ignore[list-item]
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self._open.add(ws)
        nonce = f"n{self.connections}"
        try:
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode()
                start, headers = parse(text)
                if not start.endswith("SIP/2.0") or self.mode == "silent":
                    continue  # a response from the browser, or the path is dead
                method = start.split(" ", 1)[0]
                self.log.append(method)
                if method == "REGISTER":
                    await ws.send(self._register(start, headers, nonce))
                elif method == "OPTIONS":
                    self.options += 1
                    await ws.send(self._reply(headers, "200 OK"))
                else:
                    await ws.send(self._reply(headers, "405 Method Not Allowed"))
        except Exception:  # the socket dropped: the test's drop(), or the browser closed it
            pass
        finally:
            self._open.discard(ws)

    def _register(self, start: str, headers: dict[str, list[str]], nonce: str) -> str:
        if self.mode == "refuse":
            return self._reply(headers, "403 Forbidden")
        auth = headers.get("authorization", [""])[0]
        if not auth:
            return self._reply(headers, "401 Unauthorized",
                               [f'WWW-Authenticate: Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5'])
        fields: dict[str, Any] = dict(re.findall(r'(\w+)="?([^",]*)"?', auth))
        user, uri = fields.get("username", ""), fields.get("uri", "")
        expected = _md5(f"{self.ha1.get(user, '')}:{fields.get('nonce', '')}:{_md5('REGISTER:' + uri)}")
        if fields.get("qop"):
            expected = _md5(f"{self.ha1.get(user, '')}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:"
                            f"{fields['qop']}:{_md5('REGISTER:' + uri)}")
        if user not in self.ha1 or fields.get("response") != expected:
            self.bad_digests += 1
            return self._reply(headers, "403 Forbidden")
        self.registers += 1
        contact = headers.get("contact", [""])[0].split(";expires=")[0]
        return self._reply(headers, "200 OK", [f"Contact: {contact};expires={self.expires}",
                                               f"Expires: {self.expires}"])

    @staticmethod
    def _reply(headers: dict[str, list[str]], status: str, extra: list[str] | None = None) -> str:
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for v in headers.get("via", [])]
        to = headers.get("to", [""])[0]
        lines += [f"From: {headers.get('from', [''])[0]}", f"To: {to}" + ("" if "tag=" in to else ";tag=fake1"),
                  f"Call-ID: {headers.get('call-id', [''])[0]}", f"CSeq: {headers.get('cseq', [''])[0]}"]
        lines += extra or []
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines)
