"""The live event bus: the dialler, the IVR and the services emit typed events; SSE streams subscribe.

Topics are strings: ``agent:<staff id>`` (one agent's screen), ``wallboard`` (supervisors), ``calls``.
``emit(event)`` is the way to publish: a typed event (``callcenter.domain.events``) goes to each of its
``topics()`` as its ``to_payload()`` dict. Delivery never blocks: a subscriber that falls more than ``maxsize``
events behind loses the oldest ones (a screen then re-reads its state), never stalls the dialler.

Across processes: with several engine processes on one PostgreSQL database, a bridge is attached
(``attach``; ``callcenter.adapters.pg_events.PgEventBridge``, LISTEN/NOTIFY): ``emit`` then delivers locally AND
hands the event to the bridge (which only enqueues it: ``emit`` never waits), and the bridge delivers other
processes' events here with ``deliver`` (local subscribers only, never sent back out). Without a bridge (SQLite,
one process) the bus is in-process. Delivery across processes is at most once: every event is a nudge and what
it announces is in the database already, so a screen that misses one re-reads its state and is right, only later.

``publish(topic, payload)`` (a raw dict) stays local to this process: it never crosses to another one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from callcenter.domain.events import Event


class Bridge(Protocol):
    """Carries emitted events to the other processes (``callcenter.adapters.pg_events``)."""

    def send(self, event: Event) -> None:
        """Enqueue ``event`` for the other processes; never blocks, never raises for a transport problem."""


class Subscription:
    def __init__(self, topics: tuple[str, ...], maxsize: int) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize)
        self.dropped = 0

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        return await self.queue.get()

    def offer(self, item: tuple[str, dict[str, Any]]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)


class EventBus:
    def __init__(self, maxsize: int = 1000) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._maxsize = maxsize
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bridge: Bridge | None = None

    def attach(self, bridge: Bridge | None) -> None:
        """Send every emitted event through ``bridge`` too (None: in-process only again)."""
        self._bridge = bridge

    @property
    def bridge(self) -> Bridge | None:
        return self._bridge

    def emit(self, event: Event) -> None:
        """Deliver a typed event (``callcenter.domain.events``) to every subscriber of each of its topics, here
        and, when a bridge is attached, in the other processes. Call from the event loop's thread."""
        self.deliver(event)
        bridge = self._bridge
        if bridge is not None:
            bridge.send(event)

    def deliver(self, event: Event) -> None:
        """Deliver to this process's subscribers only (the bridge hands other processes' events in here)."""
        payload = event.to_payload()
        for topic in event.topics():
            self.publish(topic, payload)

    def emit_threadsafe(self, event: Event) -> None:
        """``emit`` from a worker thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.emit, event)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Deliver a raw dict to this process's subscribers of ``topic`` (never to another process: use ``emit``).
        Call from the event loop's thread (see publish_threadsafe)."""
        event = dict(payload, seq=next(self._seq), topic=topic)
        for sub in list(self._subs.get(topic, ())):
            sub.offer((topic, event))

    def publish_threadsafe(self, topic: str, payload: dict[str, Any]) -> None:
        """From a worker thread (e.g. a service running in asyncio.to_thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.publish, topic, payload)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[Subscription]:
        self._loop = asyncio.get_running_loop()
        sub = Subscription(topics, self._maxsize)
        for topic in topics:
            self._subs[topic].add(sub)
        try:
            yield sub
        finally:
            for topic in topics:
                self._subs[topic].discard(sub)
                if not self._subs[topic]:
                    del self._subs[topic]

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscriber_count(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def subscriber_counts(self) -> dict[str, int]:
        """Subscriptions per topic (read-only; safe from another thread: one snapshot of the topic table)."""
        return {topic: len(subs) for topic, subs in list(self._subs.items())}
