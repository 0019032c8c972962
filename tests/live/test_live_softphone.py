"""The browser softphone against a real Asterisk 22 (issue 18): Debian's headless Chromium with fake media devices
logs in as an agent whose WebRTC endpoint the engine wrote into pjsip_agents.conf (reloaded over the phones AMI
account), registers over the WebSocket of the shipped http.conf/pjsip.conf (ws:// here, through a
proxy the test can cut), answers the agent leg by itself, and a customer reached over SIP (sipp) is bridged to it:
media flows both ways (the page's getStats and Asterisk's RTP counters). Then the WebSocket is cut mid-shift and
the softphone registers again on a new one."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiServer
from callcenter.adapters.telephony.pjsip_agents import publisher_from
from callcenter.bootstrap import App
from callcenter.ports.telephony import AgentJoined, AgentLeft, Answered, Connected, Ended, Failed
from callcenter.services import phones
from callcenter.services.staff_sessions import staff_principal
from callcenter.web.app import create_app
from tests.adapters.ami_scenarios import next_of
from tests.e2e.desk_world import build
from tests.e2e.test_browser_screens import ARGS, CHROMIUM, Server, _login
from tests.live.asterisk import HTTP_PORT, PHONES_SECRET, SIPP_PORT, LiveAsterisk

pytestmark = pytest.mark.db
SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).with_name("sipp")
WAIT_MS = 30_000  # bounds against hanging, never timing assertions
T = TypeVar("T")


class WsProxy:
    """A TCP proxy in front of Asterisk's HTTP server (the softphone's WebSocket) that the test can cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.pairs.append((client, upstream))
            self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        for pair in self.pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
        self.pairs.clear()

    def close(self) -> None:
        self.cut()
        self.server.close()


class Loop:
    """An event loop in a thread for the AMI client (the browser's API is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def until(check: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    flags = ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        yield b
        b.close()


def rtp_rows(asterisk: LiveAsterisk, *names: str) -> list[list[str]]:
    stats = asterisk.cli("pjsip show channelstats")
    return [line.split() for line in stats.splitlines() if any(n in line for n in names)]


def test_browser_softphone_takes_the_agent_leg_over_real_webrtc(core: App, asterisk: LiveAsterisk,
                                                                chromium: Any, tmp_path: Path) -> None:
    if SIPP is None:
        pytest.fail("sipp is required (Debian's sip-tester)")
    from datetime import datetime, timezone

    core.clock = lambda: datetime.now(timezone.utc)  # the page's reports count in real time
    world = build(core)
    ag1 = world.staff["ag1"]
    host = asterisk.bind
    publisher = publisher_from(str(asterisk.pjsip_agents), f"{host}:5038", "callcenter-phones", PHONES_SECRET)
    endpoint, _, published = phones.set_phone(core, staff_principal(core.sessions, "adm"), publisher, ag1, "webrtc")
    assert published == "reloaded" and endpoint == f"webrtc-{ag1}"
    until(lambda: f"{endpoint}/{endpoint}" in asterisk.cli(f"pjsip show endpoint {endpoint}"))
    proxy = WsProxy((host, HTTP_PORT))
    core.settings.softphone_ws_url = f"ws://127.0.0.1:{proxy.port}/ws"
    core.settings.phone_report_stale_s = 6.0
    loop = Loop()
    ami = AmiClient(AmiServer(host, 5038, "callcenter", asterisk.ami_secret),
                    AmiOptions(dial_template="PJSIP/{number}@sim-sip-customer", heartbeat_s=0, tick_s=0,
                               backoff_initial_s=0.5))
    customer = None
    srv = Server(create_app(core)).__enter__()
    page = chromium.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    try:
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)  # digest with the HA1, real
        until(lambda: f"{endpoint}/sip:" in asterisk.cli("pjsip show contacts"))

        async def start() -> Any:
            await ami.start()
            return ami.events().__aiter__()

        events = loop.run(start())
        loop.run(ami.agent_login(str(ag1), f"PJSIP/{endpoint}"))
        assert isinstance(loop.run(next_of(events, (AgentJoined, AgentLeft))), AgentJoined)  # answered by itself
        page.wait_for_selector("#softphone[data-call='active']", timeout=WAIT_MS)

        customer = subprocess.Popen([SIPP, "-sf", str(SCENARIOS / "customer.xml"), "-i", host, "-p", str(SIPP_PORT),
                                     "-m", "1", "-nostdin"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    cwd=tmp_path)
        loop.run(ami.originate("cc-live-w1", "90006", "95500", {}, timeout_s=10))
        assert isinstance(loop.run(next_of(events, (Answered, Failed))), Answered)
        loop.run(ami.connect("cc-live-w1", str(ag1)))
        assert isinstance(loop.run(next_of(events, (Connected, Ended))), Connected)
        # media both ways: the browser's own counters, and Asterisk's on the WebRTC leg and the customer's
        until(lambda: page.evaluate("window.ccSoftphone.stats()")["received"] > 0)
        until(lambda: page.evaluate("window.ccSoftphone.stats()")["sent"] > 0)
        until(lambda: len(rtp_rows(asterisk, f"{endpoint}-", "sim-sip-custom")) == 2 and all(
            int(r[4]) > 0 and int(r[8]) > 0 for r in rtp_rows(asterisk, f"{endpoint}-", "sim-sip-custom")))
        # mute on the softphone's bar: the microphone's track stops (its level reads 0), then comes back
        page.click("#sp-mute")
        page.wait_for_selector("#softphone[data-muted='true'][data-level='0.000']", timeout=WAIT_MS)
        page.click("#sp-mute")
        page.wait_for_selector("#softphone[data-muted='false']", timeout=WAIT_MS)
        loop.run(ami.hangup("cc-live-w1"))
        assert isinstance(loop.run(next_of(events, (Ended,))), Ended)

        # the WebSocket is cut mid-shift: the page shows it and registers again on a new socket
        accepted = proxy.accepted
        proxy.cut()
        until(lambda: int(page.locator("#softphone").get_attribute("data-losses") or 0) >= 1)
        page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)
        assert proxy.accepted > accepted
        until(lambda: f"{endpoint}/sip:" in asterisk.cli("pjsip show contacts"))
        page.wait_for_selector("#softphone[data-reported='true']", timeout=WAIT_MS)
        loop.run(ami.agent_logout(str(ag1)))
    finally:
        page.close()
        srv.__exit__(None, None, None)
        try:
            loop.run(ami.aclose())
        finally:
            loop.close()
            proxy.close()
            if customer is not None and customer.poll() is None:
                customer.kill()
                customer.wait()
