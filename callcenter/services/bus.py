"""In-process live event bus: the dialler, the IVR and the services publish; SSE streams subscribe.

Topics are strings: ``agent:<staff id>`` (one agent's screen), ``wallboard`` (supervisors), ``calls``.
Payloads are JSON-safe dicts. Publishing never blocks: a subscriber that falls more than ``maxsize``
events behind loses the oldest ones (a screen then re-reads its state), never stalls the dialler.

The bus is in-process only: with several engine processes on one database, an event reaches only the screens
connected to the process that published it (there is no cross-process bridge, e.g. PostgreSQL LISTEN/NOTIFY,
yet; one would publish into this bus so subscribers need not change). Screens re-read their state from the
database, so what they show is right, only later.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from callcenter.domain.events import Event


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

    def emit(self, event: Event) -> None:
        """Deliver a typed event (``callcenter.domain.events``) to every subscriber of each of its topics."""
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
        """Deliver to every subscriber of ``topic``. Call from the event loop's thread (see publish_threadsafe)."""
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
