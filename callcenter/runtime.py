"""Run the whole engine in one process: web service, FastAGI server, dialler, care and scheduler, each a part.

Each part is a coroutine ``runner(core, stop: asyncio.Event)`` with a name (a plain list: areas add theirs to
``default_runners``). The web part is the engine's life: when it stops (Ctrl-C) ``stop`` is set and every other
part ends. Every other part is kept alive by ``callcenter.supervisor.keep_alive``: a part that fails is logged in
one line, restarted with exponential backoff (settings ``restart_backoff_*``), and its state is on ``core.parts``
(``/healthz`` and the wall board show it). A failing part never ends another one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

import uvicorn

from callcenter.bootstrap import App
from callcenter.supervisor import Backoff, Wait, keep_alive, stop_or_timeout
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
    from callcenter.ivr.agi import agi_config, load_flows, start_agi_server
    from callcenter.ivr.prompts import render_text_cached

    s = core.settings
    config = agi_config(s)
    prompts_dir = s.prompts_path
    config.render_text = lambda text, lang: render_text_cached(text, lang, prompts_dir)
    server, app = await start_agi_server(core.ivr, s.agi_host, s.agi_port, flows=load_flows(s.flows_path),
                                         config=config)
    log.info("FastAGI listening on %s:%s", s.agi_host, s.agi_port)
    try:
        async with server:
            await stop.wait()
            try:  # sessions in progress finish (and record) before the executor they record through closes
                await asyncio.wait_for(app.wait_idle(), 5.0)
            except TimeoutError:
                pass
    finally:
        app.close()


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
                ("dialler", "callcenter.parts.dialer", "dialer_runner"),
                ("scheduler", "callcenter.scheduling", "scheduler_runner")]
    import importlib

    for name, module, attr in optional:
        try:
            parts.append((name, getattr(importlib.import_module(module), attr)))
        except (ImportError, AttributeError) as exc:
            log.warning("%s not started: %s", name, exc)
    return parts


async def run_engine(core: App, runners: list[tuple[str, Runner]] | None = None, *,
                     web: Runner | None = None, stop: asyncio.Event | None = None,
                     wait: Wait = stop_or_timeout) -> None:
    """Run the web part (``web``, by default ``serve_web``) and keep every other part alive until it stops
    (or until ``stop`` is set: embedding and tests). ``wait`` is the backoff wait (tests pass a gate)."""
    stop = stop or asyncio.Event()
    core.bus.bind_loop(asyncio.get_running_loop())
    parts = runners if runners is not None else default_runners()
    backoff = Backoff(core.settings.restart_backoff_initial_s, core.settings.restart_backoff_max_s)
    async with asyncio.TaskGroup() as tg:
        log.info("starting web")
        tg.create_task(_essential("web", web or serve_web, core, stop))
        for name, runner in parts:
            log.info("starting %s", name)
            tg.create_task(keep_alive(name, functools.partial(runner, core, stop), stop, core.parts, backoff,
                                      wait=wait))


async def _essential(name: str, runner: Runner, core: App, stop: asyncio.Event) -> None:
    """The web part: when it ends, for whatever reason, the engine ends."""
    core.parts.set(name, "running")
    try:
        await runner(core, stop)
    finally:
        stop.set()
        core.parts.set(name, "stopped")
        log.info("%s stopped", name)
