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


async def run_engine(core: App, runners: list[tuple[str, Runner]] | None = None) -> None:
    stop = asyncio.Event()
    parts: list[tuple[str, Runner]] = [("web", serve_web)]
    parts += runners if runners is not None else list(core.extras.get("runners", []))  # type: ignore[arg-type]
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
