"""The dialler part of the engine (``callcenter run``, ``callcenter dialer run``): builds the telephony backend
from the settings and runs a ``DialerEngine`` on it in real time until stopped."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from callcenter.bootstrap import App
from callcenter.dialer.engine import DialerDeps, DialerEngine, NotifyCalls
from callcenter.telephony.port import Telephony


def dialer_deps(core: App, *, notify: NotifyCalls | None = None) -> DialerDeps:
    """The dialler engine's wiring from the app (``wall``: the app's clock as it is now)."""
    return DialerDeps(sessions=core.sessions, bus=core.bus, is_trading_day=core.calendar.is_trading_day,
                      wall=core.clock, scripts_dir=core.settings.scripts_path, notify=notify)


def telephony_from_settings(core: App) -> Telephony:
    backend = core.settings.telephony_backend
    if backend == "asterisk":
        from callcenter.telephony.ami import AmiOptions, AmiPool, servers_from_settings

        options = AmiOptions(dial_template=core.settings.ami_dial_template, amd=core.settings.ami_amd,
                             connect_timeout_s=core.settings.ami_connect_timeout_s)
        return AmiPool(servers_from_settings(core.settings), options)
    if backend == "twilio":
        from twilio.rest import Client

        from callcenter.telephony.twilio_calls import TwilioCalls

        client = Client(core.settings.twilio_account_sid, core.settings.twilio_auth_token.get_secret_value())
        return TwilioCalls(client, core.settings.twilio_from_number, core.settings.twilio_public_url)
    from callcenter.telephony.simulated import LoopClock, SimulatedPbx

    return SimulatedPbx(clock=LoopClock())


async def dialer_runner(core: App, stop: asyncio.Event) -> None:
    """Engine part for ``callcenter run``: the dialler on the configured telephony backend, real time.

    A telephony backend given in ``core.extras['telephony']`` (tests) is used as it is; otherwise a fresh one is
    built from the settings at every start, so the supervisor can restart this part after a failure (a refused
    AMI login, no Asterisk reachable: ``telephony.start()`` raises and nothing is left running). While it runs,
    the part's state on ``core.parts`` follows the backend's connection (``problem()``, when it has one)."""
    telephony = cast("Telephony | None", core.extras.get("telephony")) or telephony_from_settings(core)
    probe = getattr(telephony, "problem", None)
    if callable(probe):
        core.parts.watch("dialler", probe)
    try:
        await telephony.start()
    except BaseException:
        core.parts.unwatch("dialler")
        raise
    from callcenter.care.notify_calls import NotificationCaller

    notify = NotificationCaller(core, telephony, caller_id=core.settings.twilio_from_number)
    engine = DialerEngine(dialer_deps(core, notify=notify), telephony)
    core.extras["dialer"] = engine
    core.extras["notify_caller"] = notify
    care_work = core.extras.get("care_work")
    if care_work is not None:  # the care jobs started first: hand them the caller now
        # extras holds plain objects (issue 9 wiring: to be removed)
        care_work.caller = notify  # type: ignore[attr-defined]
    handoffs = None
    if core.settings.telephony_backend == "simulated":  # on Asterisk the dialplan queues IVR hand-offs itself
        from callcenter.services.handoff import handoff_runner

        handoffs = asyncio.create_task(handoff_runner(core, stop))
    elif hasattr(telephony, "add_observer"):  # Asterisk: the queue's AgentConnect pops the client
        from callcenter.services.handoff import watch_agent_connects

        core.extras["agent_connect_pops"] = watch_agent_connects(core, telephony.add_observer)
    given_up = getattr(telephony, "wait_given_up", None)
    running = asyncio.Event()  # ``stop``, or the backend gave up for good (every AMI login refused on reconnect)
    relay = asyncio.create_task(_first_of(stop, given_up() if callable(given_up) else None, running))
    try:
        await engine.run(running)
        failure = relay.result() if relay.done() else None
        if failure is not None:
            raise failure  # the supervisor restarts this part with backoff, with a fresh backend
    finally:
        relay.cancel()
        core.parts.unwatch("dialler")
        if core.extras.get("notify_caller") is notify:  # no notification calls on a telephony that is closing
            core.extras.pop("notify_caller", None)
            if care_work is not None and getattr(care_work, "caller", None) is notify:
                care_work.caller = None  # type: ignore[attr-defined]
        if handoffs is not None:
            handoffs.cancel()
            try:
                await handoffs
            except asyncio.CancelledError:
                pass
        await telephony.aclose()


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
