"""The dialler part of the engine (``callcenter run``, ``callcenter dialer run``): builds the telephony backend
from the settings and runs a ``DialerEngine`` on it in real time until stopped."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from callcenter.bootstrap import App
from callcenter.ports.telephony import Telephony
from callcenter.services.care.notify_calls import NotificationCaller
from callcenter.services.call_recording import CallRecorder
from callcenter.services.dialer.engine import DialerDeps, DialerEngine, NotifyCalls


def dialer_deps(core: App, *, notify: NotifyCalls | None = None, telephony: object | None = None) -> DialerDeps:
    """The dialler engine's wiring from the app (``wall``: the app's clock as it is now). With ``telephony``
    (the backend the engine runs on) every call that reaches an agent is recorded (``record_calls``): MixMonitor
    on Asterisk, the Recordings API on Twilio, a synthesised WAV on the simulated PBX."""
    recorder = None
    if telephony is not None and core.recordings is not None and core.settings.record_calls:
        recorder = CallRecorder(core.recordings, core.sessions, core.clock, telephony)
    return DialerDeps(sessions=core.sessions, bus=core.bus, is_trading_day=core.calendar.is_trading_day,
                      wall=core.clock, scripts_dir=core.settings.scripts_path, notify=notify, tz=core.settings.tz,
                      process_lease=timedelta(seconds=core.settings.dialer_lease_s), recorder=recorder)



def build_engine(core: App, telephony: Telephony, *, auto_wrap_up_s: float | None = None
                 ) -> tuple[NotificationCaller, DialerEngine]:
    """The notification caller and the dialler engine on ``telephony``, their limits from the settings."""
    from callcenter.bootstrap import prompt_files

    s = core.settings
    # each message is rendered to speech (the prompts tree) before its call; the caller id is the settings'
    notify = NotificationCaller(core, telephony, renderer=prompt_files(s), timeout_s=s.originate_timeout_s)
    # IVR hand-offs are inbound calls of the engine's call core (routed like outbound calls), on every carrier
    engine = DialerEngine(dialer_deps(core, notify=notify, telephony=telephony), telephony,
                          auto_wrap_up_s=auto_wrap_up_s if auto_wrap_up_s is not None else (s.wrap_up_limit_s or None),
                          handoff_wait_s=s.handoff_wait_s, abandon_after_s=s.abandon_after_s,
                          originate_timeout_s=s.originate_timeout_s,
                          callback_grace=timedelta(seconds=s.callback_grace_s))
    return notify, engine


async def dialer_runner(core: App, stop: asyncio.Event, *, auto_wrap_up_s: float | None = None) -> None:
    """Engine part for ``callcenter run``: the dialler on the configured telephony backend, real time.
    ``auto_wrap_up_s``: simulated agents end their wrap-up by themselves after that long (``bench loop``);
    by default an agent's wrap-up ends on their screen, or after the setting ``wrap_up_limit_s``. The abandon
    limit, originate timeout and callback grace are settings too (``abandon_after_s``...).

    Every start takes a backend from ``core.telephony`` (a fresh one from the settings, unless the composition
    root was given one), so the supervisor can restart this part after a failure (a refused AMI login, no
    Asterisk reachable: ``telephony.start()`` raises and nothing is left running). While it runs, the part's
    state on ``core.parts`` follows the backend's connection (``problem()``, when it has one). The notification
    caller built on the same backend is plugged into ``core.notifications`` for the care part while it runs."""
    telephony = core.telephony()
    core.metrics.watch_telephony(telephony)  # /metrics: each AMI server's connection
    probe = getattr(telephony, "problem", None)
    if callable(probe):
        core.parts.watch("dialler", probe)
    try:
        await telephony.start()
    except BaseException:
        core.parts.unwatch("dialler")
        raise
    notify, engine = build_engine(core, telephony, auto_wrap_up_s=auto_wrap_up_s)
    from callcenter.services.desk import scripts

    if core.notifications is not None:
        core.notifications.plug(notify)
    given_up = getattr(telephony, "wait_given_up", None)
    running = asyncio.Event()  # ``stop``, or the backend gave up for good (every AMI login refused on reconnect)
    relay = asyncio.create_task(_first_of(stop, given_up() if callable(given_up) else None, running))
    try:
        # the talk scripts a connected call's desk contact starts: loaded (and checked) once, now, not inside
        # the first connect's transaction
        await asyncio.to_thread(scripts, core.settings.scripts_path)
        await engine.run(running)
        failure = relay.result() if relay.done() else None
        if failure is not None:
            raise failure  # the supervisor restarts this part with backoff, with a fresh backend
    finally:
        relay.cancel()
        core.parts.unwatch("dialler")
        if core.notifications is not None:  # no notification calls on a telephony that is closing
            core.notifications.unplug(notify)
        await telephony.aclose()
        core.metrics.telephony_closed(telephony)


async def _first_of(stop: asyncio.Event, fatal: Any, done: asyncio.Event) -> BaseException | None:
    """Set ``done`` when ``stop`` is set or the awaitable ``fatal`` returns an error; return that error."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if fatal is not None:
        waits.append(asyncio.ensure_future(fatal))
    try:
        finished, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    done.set()
    if stop.is_set():
        return None
    return next((f.result() for f in finished if f is not waits[0]), None)
