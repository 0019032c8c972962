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


def test_the_dialler_limits_are_settings(core: App) -> None:
    """Issue 16: the 2-second abandon limit, the originate timeout, the callback grace and the wrap-up limit come
    from the settings, not from constructor defaults."""
    from datetime import timedelta

    from callcenter.parts.dialer import build_engine

    s = core.settings
    s.abandon_after_s, s.originate_timeout_s, s.callback_grace_s, s.wrap_up_limit_s = 1.5, 45.0, 600.0, 90.0
    notify, engine = build_engine(core, OneEventPort(None))  # type: ignore[arg-type]
    config = engine.core.config
    assert (config.abandon_after_s, config.callback_grace, config.auto_wrap_up_s) == (1.5, timedelta(minutes=10), 90.0)
    assert engine.originate_timeout_s == 45.0 and notify.timeout_s == 45.0
    s.wrap_up_limit_s = 0.0
    assert build_engine(core, OneEventPort(None))[1].core.config.auto_wrap_up_s is None  # ends on the screen
