"""Run the whole engine in one process: web service, FastAGI server, dialler and scheduler in one TaskGroup.

Each part is a coroutine ``runner(core, stop: asyncio.Event)``; areas add theirs to ``core.extras['runners']``
(a list of (name, runner)) in bootstrap. When any part fails or the web server stops (Ctrl-C), all stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import uvicorn

from callcenter.bootstrap import App
from callcenter.web.app import create_app

log = logging.getLogger(__name__)

Runner = Callable[[App, asyncio.Event], Awaitable[None]]


async def serve_web(core: App, stop: asyncio.Event) -> None:
    config = uvicorn.Config(create_app(core), host=core.settings.web_host, port=core.settings.web_port,
                            log_level="info", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    watcher = asyncio.create_task(_stop_when(stop, server))
    try:
        await server.serve()
    finally:
        watcher.cancel()
        stop.set()


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


async def serve_agi(core: App, stop: asyncio.Event) -> None:
    """The FastAGI server for the hotline (Asterisk's AGI(agi://host:port/hotline))."""
    from callcenter.ivr.agi import AgiConfig, start_agi_server
    from callcenter.ivr.prompts import render_text_cached

    s = core.settings
    config = AgiConfig(limits={"pin_failures": s.ivr_pin_attempts_per_call},
                       render_text=lambda text, lang: render_text_cached(text, lang))
    server, _app = await start_agi_server(core.ivr, s.agi_host, s.agi_port, config=config)
    log.info("FastAGI listening on %s:%s", s.agi_host, s.agi_port)
    async with server:
        await stop.wait()


async def serve_care(core: App, stop: asyncio.Event) -> None:
    """Reminders, greetings, regulatory call-backs at their local times on the trading calendar."""
    from callcenter.care.runner import CareWork, care_runner
    from callcenter.care.sms import make_sms_sender

    work = CareWork(core, make_sms_sender(core.settings), caller=core.extras.get("notify_caller"))
    core.extras["care_work"] = work  # the dialler hands it the notification caller when it starts later
    await care_runner(core, stop, work=work)


def default_runners() -> list[tuple[str, Runner]]:
    """Every part of the engine besides the web service, each importable on its own."""
    parts: list[tuple[str, Runner]] = [("fastagi", serve_agi), ("care", serve_care)]
    optional = [("bank", "callcenter.bank.runner", "bank_runner"),  # the simulated bank's process (bank_simulator)
                ("dialler", "callcenter.dialer.engine", "dialer_runner"),
                ("scheduler", "callcenter.scheduling", "scheduler_runner")]
    import importlib

    for name, module, attr in optional:
        try:
            parts.append((name, getattr(importlib.import_module(module), attr)))
        except (ImportError, AttributeError) as exc:
            log.warning("%s not started: %s", name, exc)
    return parts


async def run_engine(core: App, runners: list[tuple[str, Runner]] | None = None) -> None:
    stop = asyncio.Event()
    core.bus.bind_loop(asyncio.get_running_loop())
    parts: list[tuple[str, Runner]] = [("web", serve_web)]
    parts += runners if runners is not None else default_runners()
    async with asyncio.TaskGroup() as tg:
        for name, runner in parts:
            log.info("starting %s", name)
            tg.create_task(_guard(name, runner, core, stop))


async def _guard(name: str, runner: Runner, core: App, stop: asyncio.Event) -> None:
    try:
        await runner(core, stop)
    finally:
        stop.set()  # one part ending ends the engine
        log.info("%s stopped", name)
