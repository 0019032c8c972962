"""Live events across engine processes over PostgreSQL LISTEN/NOTIFY (channel ``cc_events``).

``PgEventBridge(conninfo, bus)`` is attached to the process's ``EventBus`` by ``start()``; from then on
``bus.emit(event)`` delivers locally and calls ``send(event)`` here, which only puts the notification on a
bounded queue (never blocks, never awaits). Two tasks, each on its own autocommit ``psycopg.AsyncConnection``:

* the sender sends each queued notification with ``SELECT pg_notify('cc_events', <json>)``; the JSON is
  ``{"origin": <this bridge's id>, "topics": [...], "event": <event.to_payload()>}``;
* the listener runs ``LISTEN cc_events`` and hands every notification of another origin to ``bus.deliver``
  (this process's subscribers only), parsed with ``callcenter.domain.events.from_payload``. Its own
  notifications are skipped (``emit`` delivered them here already). A notification that is not JSON, not of
  this shape or of an unknown event type is logged in one line and dropped; the listener goes on.

Limits, on purpose:

* NOTIFY payloads must be shorter than 8000 bytes: a bigger event (or one that is not JSON-safe) is delivered
  locally only and logged, never sent.
* At most once: a notification sent while a listener is reconnecting is lost to it, and the queue drops its
  oldest entry when full (``queue_max``). Every live event is a nudge about something already in the
  database; screens re-read their state (the wall board every second), so a lost event only delays a screen.
* When a connection drops (PostgreSQL restarts, ``pg_terminate_backend``), the task logs one line and connects
  again after a capped exponential backoff; the engine keeps running meanwhile. ``state()`` and ``problem()``
  say how the bridge is doing (``/healthz``, the wall board's parts line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from collections import deque
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from callcenter.domain.events import Event, EventError, from_payload
from callcenter.services.bus import EventBus

log = logging.getLogger(__name__)

CHANNEL = "cc_events"
MAX_PAYLOAD_BYTES = 7999  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more


def conninfo_from_url(url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://...`` -> ``postgresql://...``)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.drivername}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def encode(event: Event, origin: str) -> str:
    """The notification text of ``event`` (compact JSON); raises TypeError/ValueError if not JSON-safe."""
    body = {"origin": origin, "topics": list(event.topics()), "event": event.to_payload()}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode(text: str) -> tuple[str, Event]:
    """``(origin, event)`` of a notification text; ``EventError`` for anything else."""
    try:
        body = json.loads(text)
    except ValueError:
        raise EventError("not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), dict) or not isinstance(body.get("origin"), str):
        raise EventError("not an event notification")
    return body["origin"], from_payload(body["event"])


class PgEventBridge:
    def __init__(self, conninfo: str, bus: EventBus, *, channel: str = CHANNEL, origin: str | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0, queue_max: int = 10_000,
                 connect_timeout_s: float = 10.0) -> None:
        self.conninfo = conninfo
        self.bus = bus
        self.channel = channel
        self.origin = origin or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self._queue: deque[str] = deque(maxlen=queue_max)
        self._wake = asyncio.Event()
        self._listening = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: dict[str, psycopg.AsyncConnection[Any]] = {}
        self._closing = False
        self._status = {"listener": "stopped", "sender": "stopped"}
        self._errors = {"listener": "", "sender": ""}
        self.counts = {"sent": 0, "received": 0, "own_skipped": 0, "too_big": 0, "not_json_safe": 0,
                       "refused": 0, "malformed": 0, "queue_dropped": 0, "reconnects": 0}

    # --- the bus side -----------------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Enqueue ``event`` for the other processes (``EventBus.emit`` calls this after delivering locally)."""
        try:
            text = encode(event, self.origin)
        except (TypeError, ValueError) as exc:
            self.counts["not_json_safe"] += 1
            log.warning("live event %s not sent to other processes: not JSON-safe (%s)", event.type, exc)
            return
        size = len(text.encode("utf-8"))
        if size > MAX_PAYLOAD_BYTES:
            self.counts["too_big"] += 1
            log.warning("live event %s not sent to other processes: %d bytes, NOTIFY takes fewer than 8000 "
                        "(delivered in this process only)", event.type, size)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if loop is not None and running is not loop:  # emitted from another thread: hand over to our loop
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._enqueue, text)
            return
        self._enqueue(text)

    def _enqueue(self, text: str) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.counts["queue_dropped"] += 1  # the deque drops the oldest one
        self._queue.append(text)
        self._wake.set()

    # --- life-cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Attach to the bus and start the sender and the listener (returns at once; they connect in the
        background and keep reconnecting, see ``wait_listening``)."""
        if self._tasks:
            return
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self.bus.attach(self)
        self._tasks = [asyncio.create_task(self._run("listener", self._listen), name="pg-events-listener"),
                       asyncio.create_task(self._run("sender", self._send), name="pg-events-sender")]

    async def wait_listening(self, timeout: float) -> bool:
        """True once the listener is listening (False after ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self._listening.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self, drain_timeout_s: float = 1.0) -> None:
        """Detach from the bus, give the sender up to ``drain_timeout_s`` to send what is queued, then stop."""
        if self.bus.bridge is self:
            self.bus.attach(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout_s
        while self._queue and self._status["sender"] in ("connecting", "connected") and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for conn in list(self._conns.values()):
            await _close_quietly(conn)
        self._conns.clear()
        self._listening.clear()
        self._status = {"listener": "stopped", "sender": "stopped"}

    # --- health -----------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """How the bridge is doing: each connection's status (connecting / connected / retrying / stopped),
        its last error (kept after it connected again), the queue length and the counters."""
        return {"channel": self.channel, "origin": self.origin, "listener": self._status["listener"],
                "sender": self._status["sender"], "errors": dict(self._errors), "queued": len(self._queue),
                **self.counts}

    def problem(self) -> str | None:
        """None when both connections are up; else one sentence (a ``PartBoard`` probe)."""
        down = [f"{name} {self._status[name]}" + (f" ({self._errors[name]})" if self._errors[name] else "")
                for name in ("listener", "sender") if self._status[name] != "connected"]
        return "PostgreSQL events: " + "; ".join(down) if down else None

    # --- the two tasks ----------------------------------------------------------------------------------

    async def _run(self, name: str, body: Any) -> None:
        """Run ``body(conn)`` on a fresh connection; when the connection fails, log one line and reconnect
        after a capped exponential backoff (reset after a connection that worked)."""
        delay = self.backoff_initial_s
        first = True
        while not self._closing:
            self._status[name] = "connecting"
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True,
                                                             connect_timeout=max(1, int(self.connect_timeout_s)))
                self._conns[name] = conn
                if not first:
                    self.counts["reconnects"] += 1
                first = False
                delay = self.backoff_initial_s
                await body(conn)
                raise psycopg.OperationalError("connection ended")  # the bodies loop forever
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                if self._closing:
                    return
                message = _one_line(exc)
                self._errors[name] = message
                self._status[name] = "retrying"
                log.warning("PostgreSQL events %s: %s; reconnecting in %.1f s", name, message, delay)
            finally:
                if name == "listener":
                    self._listening.clear()
                self._conns.pop(name, None)
                if conn is not None:
                    await _close_quietly(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f'LISTEN "{self.channel}"')
        self._status["listener"] = "connected"
        self._listening.set()
        async for note in conn.notifies():
            self._receive(note.payload)

    def _receive(self, text: str) -> None:
        try:
            origin, event = decode(text)
        except EventError as exc:
            self.counts["malformed"] += 1
            log.warning("PostgreSQL events: dropped a notification on %s (%s): %.120r", self.channel, exc, text)
            return
        if origin == self.origin:
            self.counts["own_skipped"] += 1
            return
        self.counts["received"] += 1
        try:
            self.bus.deliver(event)
        except Exception:  # a subscriber's bug must not end the listener
            log.exception("PostgreSQL events: delivering %s failed", event.type)

    async def _send(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._status["sender"] = "connected"
        while True:
            while self._queue:
                text = self._queue[0]  # kept until sent: a dropped connection retries it on the next one
                try:
                    await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, text))
                except psycopg.Error as exc:
                    if conn.broken or conn.closed:
                        raise
                    self.counts["refused"] += 1  # the server refused this one (e.g. too long in its encoding)
                    log.warning("PostgreSQL events: a notification was refused and dropped: %s", _one_line(exc))
                else:
                    self.counts["sent"] += 1
                if self._queue and self._queue[0] is text:
                    self._queue.popleft()
            self._wake.clear()
            if not self._queue:
                await self._wake.wait()


async def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.close()
    except Exception:  # closing a broken connection: nothing more to do
        pass


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
