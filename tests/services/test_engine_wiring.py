"""The running engine hands agentless notification calls' events to the care caller, not to the dialler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from callcenter.bootstrap import App
from callcenter.services.dialer.engine import DialerEngine
from callcenter.parts.dialer import dialer_deps
from callcenter.ports.telephony import Ended


class OneEventPort:
    """Just enough of the telephony port: one event, then silence."""

    def __init__(self, event: object) -> None:
        self.event = event

    async def events(self) -> AsyncIterator[object]:
        yield self.event
        await asyncio.Event().wait()

    def __getattr__(self, name: str):  # any command: a coroutine that does nothing
        async def nothing(*args: object, **kwargs: object) -> None:
            return None

        return nothing


class Recorder:
    def __init__(self, stop: asyncio.Event) -> None:
        self.events: list[object] = []
        self.stop = stop

    async def handle(self, event: object) -> None:
        self.events.append(event)
        self.stop.set()


async def test_care_calls_go_to_the_notification_caller(core: App) -> None:
    stop = asyncio.Event()
    recorder = Recorder(stop)
    event = Ended("care-7-1", 1.0, 16, "Normal Clearing")
    engine = DialerEngine(dialer_deps(core, notify=recorder), OneEventPort(event))  # type: ignore[arg-type]
    seen: list[object] = []
    original = engine.handle

    async def spy(ev: object) -> None:
        seen.append(ev)
        await original(ev)  # type: ignore[arg-type]

    engine.handle = spy  # type: ignore[method-assign]
    await asyncio.wait_for(engine.run(stop), timeout=30)
    assert recorder.events == [event] and seen == []
