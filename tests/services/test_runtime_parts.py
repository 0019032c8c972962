"""Hardening finding 2 (and real-Asterisk finding 14): a wrong AMI secret at start leaves the web service and the
IVR running; the dialler is shown down on /healthz and the wall board, logged in one clear line, and retried with
backoff until Asterisk accepts. The real runtime (uvicorn web part, FastAGI part, dialler from the settings) against
the fake Asterisk replaying bad_login.ami; the backoff wait is a gate the test opens, not a sleep."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from callcenter.bootstrap import bootstrap
from callcenter.parts.dialer import dialer_runner
from callcenter.runtime import run_engine, serve_agi
from callcenter.settings import load_settings
from tests.adapters.fake_ami import ReplayServer, load_capture, parse_capture

pytestmark = pytest.mark.db

ACCEPTED = parse_capture(
    b">>> Action: Login\r\n>>> ActionID: l1\r\n"
    b"Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 13\r\nLastReload: 13\r\nStatus: Fully Booted\r\n\r\n",
    "accepted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gate:
    """The supervisor's backoff wait: records the delay and holds until the test opens it (or the engine stops)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.open = asyncio.Event()

    async def __call__(self, delay: float, stop: asyncio.Event) -> bool:
        self.delays.append(delay)
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self.open.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        return stop.is_set()


async def health_until(web: int, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll /healthz until ``predicate`` holds (a bounded wait for a condition, not a timing assertion)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web}", timeout=5) as http:
        async with asyncio.timeout(60):
            while True:
                try:
                    r = await http.get("/healthz")
                except httpx.TransportError:
                    r = None
                if r is not None:
                    assert r.status_code == 200
                    body = r.json()
                    if predicate(body):
                        return body
                await asyncio.sleep(0.05)


def dialler_state(body: dict[str, Any]) -> str | None:
    return body.get("parts", {}).get("dialler", {}).get("state")


async def test_wrong_ami_secret_keeps_web_and_ivr_up_shows_dialler_down_then_up(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    web, agi = free_port(), free_port()
    async with ReplayServer(load_capture("bad_login"), ACCEPTED) as asterisk:
        settings = load_settings(database_url=db_url, telephony_backend="asterisk", web_port=web, agi_port=agi,
                                 ami_servers=[f"127.0.0.1:{asterisk.port}"], ami_secret="wrong")
        core = bootstrap(settings)
        gate, stop = Gate(), asyncio.Event()
        with caplog.at_level(logging.INFO):
            engine = asyncio.create_task(run_engine(core, [("fastagi", serve_agi), ("dialler", dialer_runner)],
                                                    stop=stop, wait=gate))
            try:
                down = await health_until(web, lambda b: dialler_state(b) == "restarting")
                assert down["status"] == "degraded"
                assert down["parts"]["web"]["state"] == "running" and down["parts"]["fastagi"]["state"] == "running"
                assert "AMI login refused by 127.0.0.1" in down["parts"]["dialler"]["error"]
                assert gate.delays == [settings.restart_backoff_initial_s]
                with socket.create_connection(("127.0.0.1", agi), timeout=5):
                    pass  # the IVR still takes calls
                refused = [r for r in caplog.records if r.levelno >= logging.WARNING]
                assert [r.getMessage() for r in refused] == [
                    f"dialler: AMI login refused by 127.0.0.1:{asterisk.port} (Authentication failed; check "
                    "ami_username / ami_secret); retrying in 5 s"]
                assert refused[0].exc_info is None  # an expected failure: no traceback

                gate.open.set()  # the backoff is over: the dialler starts again, and this time Asterisk accepts
                up = await health_until(web, lambda b: dialler_state(b) == "running")
                assert up["status"] == "ok" and up["parts"]["dialler"]["restarts"] == 1
                assert asterisk.connections == 2
            finally:
                stop.set()
                await asyncio.wait_for(engine, 30)
        core.close()
    assert not engine.exception()
    assert [r for r in caplog.records if r.exc_info] == []


async def test_unreachable_asterisk_is_one_line_and_the_dialler_is_down(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    web, agi, nobody = free_port(), free_port(), free_port()  # nothing listens on ``nobody``
    settings = load_settings(database_url=db_url, telephony_backend="asterisk", web_port=web, agi_port=agi,
                             ami_servers=[f"127.0.0.1:{nobody}"], ami_secret="s")
    core = bootstrap(settings)
    gate, stop = Gate(), asyncio.Event()
    with caplog.at_level(logging.INFO):
        engine = asyncio.create_task(run_engine(core, [("dialler", dialer_runner)], stop=stop, wait=gate))
        try:
            down = await health_until(web, lambda b: dialler_state(b) == "restarting")
            assert down["status"] == "degraded"
            assert down["parts"]["dialler"]["error"] == f"Asterisk unreachable (127.0.0.1:{nobody}: Connection refused)"
        finally:
            stop.set()
            await asyncio.wait_for(engine, 30)
    core.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [f"dialler: Asterisk unreachable (127.0.0.1:{nobody}: Connection refused); retrying in 5 s"]


async def test_login_refused_on_reconnect_restarts_the_dialler_with_backoff(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The secret changed on Asterisk while the engine ran: the reconnect is refused, the client gives up, and the
    dialler part fails so the supervisor retries it with backoff (rather than a dialler that runs with no PBX)."""
    closes = parse_capture(
        b">>> Action: Login\r\n>>> ActionID: l1\r\n"
        b"Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
        b"### connection closed by peer\r\n", "accepted-then-closed")
    async with ReplayServer(closes, load_capture("bad_login")) as asterisk:
        settings = load_settings(database_url=db_url, telephony_backend="asterisk",
                                 ami_servers=[f"127.0.0.1:{asterisk.port}"], ami_secret="was-right")
        core = bootstrap(settings)
        gate, stop = Gate(), asyncio.Event()

        async def web(core: Any, stop: asyncio.Event) -> None:
            await stop.wait()

        with caplog.at_level(logging.INFO):
            engine = asyncio.create_task(run_engine(core, [("dialler", dialer_runner)], web=web, stop=stop,
                                                    wait=gate))
            try:
                async with asyncio.timeout(30):
                    while core.parts.snapshot().get("dialler", {}).get("state") != "restarting":
                        await asyncio.sleep(0.01)
                part = core.parts.snapshot()["dialler"]
                assert "AMI login refused by 127.0.0.1" in str(part["error"]) and gate.delays == [5.0]
                assert core.parts.snapshot()["web"]["state"] == "running"
            finally:
                stop.set()
                await asyncio.wait_for(engine, 30)
        core.close()
    assert asterisk.connections == 2
    assert [r for r in caplog.records if r.exc_info] == []
