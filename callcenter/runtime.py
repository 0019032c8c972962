"""Run the engine's parts in this process: web service, FastAGI server, dialler, care, scheduler and the simulated
bank, each a part (``callcenter serve --parts web,agi,dialer,care,scheduler,bank``, default all).

Each part is a coroutine ``runner(core, stop: asyncio.Event)`` (``part_runners``). The web part, when this process
runs it, is the engine's life: when it stops (Ctrl-C) ``stop`` is set and every other part ends; without it the
process runs until Ctrl-C or SIGTERM. Every other part is kept alive by ``callcenter.supervisor.keep_alive``: a
part that fails is logged in one line, restarted with exponential backoff (settings ``restart_backoff_*``), and
its state is on ``core.parts`` (``/healthz`` and the wall board show it). A failing part never ends another one.

Several processes share one PostgreSQL (``check_parts_for_database``): live events cross between them through
the LISTEN/NOTIFY bridge (``_event_bridge``), agents and leads are leased by one dialler process at a time, and
commands and hand-offs wait in the database. SQLite is the one-process embedded default and refuses parts apart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import uvicorn

from callcenter.bootstrap import App, event_bridge_for
from callcenter.services.metrics import watch_loop_lag
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
    from callcenter.adapters.ivr.agi import agi_config, load_flows, start_agi_server
    from callcenter.adapters.ivr.prompts import render_text_cached

    s = core.settings
    config = agi_config(s)
    prompts_dir = s.prompts_path
    config.render_text = lambda text, lang: render_text_cached(text, lang, prompts_dir)
    config.on_session = core.metrics.agi_session
    recorder = None
    if s.record_ivr and s.asterisk_recordings_dir and core.recordings is not None:
        from callcenter.services.ivr.recording import IvrRecorder

        recorder = IvrRecorder(core.recordings, core.sessions)
        config.recorder, config.recordings_dir = recorder, s.asterisk_recordings_dir
    server, app = await start_agi_server(core.ivr, s.agi_host, s.agi_port, flows=load_flows(s.flows_path),
                                         config=config)
    log.info("FastAGI listening on %s:%s", s.agi_host, s.agi_port)
    try:
        async with server:
            await stop.wait()
            try:  # sessions in progress finish (and record) before the executor they record through closes
                await asyncio.wait_for(app.wait_idle(), 5.0)
                if recorder is not None:
                    await asyncio.wait_for(recorder.drain(), 15.0)
            except TimeoutError:
                pass
    finally:
        app.close()


async def serve_care(core: App, stop: asyncio.Event) -> None:
    """Reminders, greetings, regulatory call-backs at their local times on the trading calendar; the recordings
    purge and the 质检 sampling every night."""
    from callcenter.parts.care import APPOINTMENT_JOBS, DEFAULT_JOBS, RECORDING_JOBS, CareWork, care_runner
    from callcenter.bootstrap import sms_sender

    work = CareWork(core, sms_sender(core.settings), line=core.notifications)
    await care_runner(core, stop, work=work, jobs=DEFAULT_JOBS + RECORDING_JOBS + APPOINTMENT_JOBS)


# The parts ``callcenter serve --parts`` names, in start order: CLI name -> (part name on the board, runner).
PART_NAMES = ("web", "bank", "agi", "dialer", "care", "scheduler")


def part_runners() -> dict[str, tuple[str, Runner]]:
    from callcenter.bank.runner import bank_runner
    from callcenter.parts.dialer import dialer_runner
    from callcenter.parts.scheduler import scheduler_runner

    return {"agi": ("fastagi", serve_agi), "dialer": ("dialler", dialer_runner), "care": ("care", serve_care),
            "scheduler": ("scheduler", scheduler_runner), "bank": ("bank", bank_runner)}


class PartsError(ValueError):
    """``--parts`` names a part that does not exist, or asks SQLite to run parts in several processes."""


def parse_parts(text: str) -> tuple[str, ...]:
    """``web,dialer,agi`` -> the parts in start order; ``all`` (or empty) -> every part."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names or names == ["all"]:
        return PART_NAMES
    unknown = [n for n in names if n not in PART_NAMES]
    if unknown:
        raise PartsError(f"unknown part {', '.join(unknown)} (parts: {', '.join(PART_NAMES)})")
    return tuple(n for n in PART_NAMES if n in names)


def check_parts_for_database(parts: tuple[str, ...], dialect: str) -> None:
    """Several processes share one PostgreSQL; SQLite is the one-process embedded default."""
    if set(parts) != set(PART_NAMES) and dialect != "postgresql":
        raise PartsError("running parts in separate processes needs PostgreSQL (CALLCENTER_DATABASE_URL); "
                         "SQLite is the one-process embedded default: run every part in one process")


def default_runners(parts: tuple[str, ...] = PART_NAMES) -> list[tuple[str, Runner]]:
    """The runners of ``parts`` besides the web service."""
    table = part_runners()
    return [table[name] for name in PART_NAMES if name in parts and name != "web"]


async def run_engine(core: App, runners: list[tuple[str, Runner]] | None = None, *,
                     web: Runner | None = None, with_web: bool = True, stop: asyncio.Event | None = None,
                     wait: Wait = stop_or_timeout) -> None:
    """Run the web part (``web``, by default ``serve_web``) and keep every other part alive until it stops
    (or until ``stop`` is set: embedding, tests, SIGTERM). Without the web part (``with_web=False``:
    ``serve --parts dialer,agi``) the engine runs until ``stop``. ``wait`` is the backoff wait (tests pass a
    gate)."""
    stop = stop or asyncio.Event()
    _stop_on_sigterm(stop)
    core.bus.bind_loop(asyncio.get_running_loop())
    parts = runners if runners is not None else default_runners()
    backoff = Backoff(core.settings.restart_backoff_initial_s, core.settings.restart_backoff_max_s)
    async with _event_bridge(core), asyncio.TaskGroup() as tg:  # the bridge starts first and closes last
        tg.create_task(watch_loop_lag(core.metrics.loop_lag_observed, stop))  # metrics: the loop's lag
        if with_web:
            log.info("starting web")
            tg.create_task(_essential("web", web or serve_web, core, stop))
        for name, runner in parts:
            log.info("starting %s", name)
            tg.create_task(keep_alive(name, functools.partial(runner, core, stop), stop, core.parts, backoff,
                                      wait=wait))


def _stop_on_sigterm(stop: asyncio.Event) -> None:
    """SIGTERM (a service manager stopping the process) ends the engine as Ctrl-C does: parts stop, leases and
    claims are given back."""
    import signal

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        pass


# --- live events across processes: the LISTEN/NOTIFY bridge (bootstrap.event_bridge_for) ---------------------

EVENTS_PART = "events"


@asynccontextmanager
async def _event_bridge(core: App) -> AsyncIterator[None]:
    """The bridge, when the settings ask for one, runs around the parts (their first events cross already);
    its health is the ``events`` part on ``core.parts`` (a probe: down while a connection is retrying)."""
    bridge = event_bridge_for(core.settings, core.bus)
    if bridge is None:
        yield
        return
    await bridge.start()
    core.parts.set(EVENTS_PART, "running")
    core.parts.watch(EVENTS_PART, bridge.problem)
    log.info("live events across processes: PostgreSQL LISTEN %s", bridge.channel)
    try:
        yield
    finally:
        core.parts.unwatch(EVENTS_PART)
        await bridge.aclose()
        core.parts.set(EVENTS_PART, "stopped")


async def _essential(name: str, runner: Runner, core: App, stop: asyncio.Event) -> None:
    """The web part: when it ends, for whatever reason, the engine ends."""
    core.parts.set(name, "running")
    try:
        await runner(core, stop)
    finally:
        stop.set()
        core.parts.set(name, "stopped")
        log.info("%s stopped", name)
