"""The agent screen's browser softphone (issue 18) in Debian's Chromium, with fake media devices, against a fake
SIP-over-WebSocket registrar written in the tests (tests/e2e/fake_sip_ws.py; no Asterisk): the page registers with
the digest HA1 the engine gives it; a dropped socket is shown as lost and re-registered; a socket that goes silent
is found by the page's probe and replaced; a refused registration and a refused microphone are shown; a hidden tab
keeps refreshing its registration; and the agent cannot go ready while the phone is not registered.

JsSIP comes from ``make setup`` (callcenter/web/static/softphone/jssip.min.js, not in git): without it these tests
fail and say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services import desk, phones
from callcenter.services.staff_sessions import staff_principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models.phones import AgentPhone
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build
from tests.e2e.fake_sip_ws import FakeRegistrar
from tests.e2e.test_browser_screens import ARGS, CHROMIUM, Server, _csp_violations, _login

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]
WAIT_MS = 30_000  # a bound against hanging, never a timing assertion
JSSIP = Path(__file__).resolve().parents[2] / "callcenter" / "web" / "static" / "softphone" / "jssip.min.js"
MEDIA = ["--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required"]


def launch(grant_microphone: bool = True) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required at /usr/bin/chromium")
    if not JSSIP.exists():
        pytest.fail("JsSIP is not installed: run `make setup` (it fetches and bundles it from the npm registry)")
    from playwright.sync_api import sync_playwright

    flags = ARGS + MEDIA + (["--use-fake-ui-for-media-stream"] if grant_microphone else ["--deny-permission-prompts"])
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from launch(True)


@pytest.fixture
def browser_no_mic() -> Iterator[Any]:
    yield from launch(False)


def softphone_world(core: App, expires: int = 60) -> tuple[World, FakeRegistrar]:
    world = build(core)
    ag1 = world.staff["ag1"]
    phones.set_phone(core, staff_principal(core.sessions, "adm"), phones.NoPublisher(), ag1, "webrtc")
    endpoint, ha1 = run_in_transaction(core.sessions, lambda s: s.execute(
        select(AgentPhone.endpoint, AgentPhone.ha1).where(AgentPhone.staff_id == ag1)).one())
    registrar = FakeRegistrar(core.settings.sip_realm, {endpoint: ha1}, expires=expires)
    return world, registrar


def until(check: Any, bound_s: float = WAIT_MS / 1000) -> None:
    """Poll ``check()`` (a bound against hanging, never a timing assertion)."""
    import time

    deadline = time.monotonic() + bound_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def losses(page: Any) -> int:
    return int(page.locator("#softphone").get_attribute("data-losses") or 0)


def engine_says_registered(core: App, staff_id: int) -> bool | None:
    return run_in_transaction(core.sessions, lambda s: desk.phone_registered(s, staff_id, core.clock()))


def real_time(core: App) -> None:
    """The page's reports count for phone_report_stale_s of real time: the engine reads the wall clock here."""
    from datetime import datetime, timezone

    core.clock = lambda: datetime.now(timezone.utc)


def open_desk(browser: Any, core: App, registrar: FakeRegistrar) -> tuple[Server, Any, list[str]]:
    real_time(core)
    core.settings.softphone_ws_url = registrar.url
    core.settings.phone_report_stale_s = 6.0  # the page reports every 2 s
    srv = Server(create_app(core)).__enter__()
    page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN").new_page()
    blocked = _csp_violations(page)
    _login(page, srv.url, "ag1")
    page.wait_for_url("**/agent")
    return srv, page, blocked


def test_registers_loses_the_socket_shows_it_and_registers_again(core: App, browser: Any) -> None:
    world, registrar = softphone_world(core)
    ag1 = world.staff["ag1"]
    with registrar:
        srv, page, blocked = open_desk(browser, core, registrar)
        try:
            page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)
            assert registrar.registers == 1 and registrar.bad_digests == 0  # the HA1 answered the digest
            page.wait_for_selector("#softphone[data-mic='granted']", timeout=WAIT_MS)
            options = page.locator("#sp-device option")
            assert options.count() >= 2  # Chromium's fake microphones, to choose from
            other = next(v for v in (options.nth(i).get_attribute("value") for i in range(options.count()))
                         if v != page.locator("#softphone").get_attribute("data-device"))
            page.select_option("#sp-device", value=other)  # the agent picks another microphone: it is opened
            page.wait_for_selector(f"#softphone[data-device='{other}'][data-mic='granted']", timeout=WAIT_MS)
            page.wait_for_selector("#softphone:not([data-level='0.000'])[data-level]", timeout=WAIT_MS)  # it hears
            # the agent logs in at the softphone: the engine dials its endpoint; the page's report lets it go ready
            assert page.locator("#phone-choice").input_value() == "webrtc"
            page.click("#btn-pause")
            page.wait_for_selector("#statusbar[data-state='paused']", timeout=WAIT_MS)
            page.wait_for_selector("#softphone[data-reported='true']", timeout=WAIT_MS)
            assert engine_says_registered(core, ag1) is True
            page.click("#btn-ready")
            page.wait_for_selector("#statusbar[data-state='ready']", timeout=WAIT_MS)

            # the socket drops: shown at once (the page counts each loss it showed); a new socket registers again
            assert page.locator("#softphone").get_attribute("data-losses") is None
            registrar.drop()
            until(lambda: losses(page) >= 1)
            page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)
            assert registrar.connections >= 2 and registrar.registers >= 2

            # the socket goes silent (open, but nothing answers): the page's probe finds it, opens a new one
            registrar.mode = "silent"
            seen = losses(page)
            until(lambda: losses(page) > seen)
            page.wait_for_selector("#softphone[data-reported='false']", timeout=WAIT_MS)
            assert engine_says_registered(core, ag1) is False
            assert page.locator("#softphone").get_attribute("data-reg") != "registered"
            assert page.locator("#sp-reg").text_content() != "已注册"
            before = registrar.connections
            registrar.mode = "ok"
            page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)
            assert registrar.connections > before
            page.wait_for_selector("#softphone[data-reported='true']", timeout=WAIT_MS)
            assert engine_says_registered(core, ag1) is True
            assert registrar.options >= 1  # the probes
            assert blocked == []
        finally:
            page.context.close()
            srv.__exit__(None, None, None)


def test_refused_registration_is_shown_and_ready_is_refused(core: App, browser: Any) -> None:
    world, registrar = softphone_world(core)
    registrar.mode = "refuse"
    with registrar:
        srv, page, blocked = open_desk(browser, core, registrar)
        try:
            page.wait_for_selector("#softphone[data-reg='failed']", timeout=WAIT_MS)
            assert page.locator("#sp-reg").text_content() == "注册被拒绝"
            page.click("#btn-pause")  # logs in at the softphone
            page.wait_for_selector("#statusbar[data-state='paused']", timeout=WAIT_MS)
            page.click("#btn-ready")
            page.wait_for_selector("#toast.bad:text('话机未注册，不能置为就绪')", timeout=WAIT_MS)
            assert page.locator("#statusbar").get_attribute("data-state") == "paused"
            # the engine refuses it too, whatever the page does
            status = page.request.post(srv.url + "/api/desk/state", data={"state": "ready"}, headers={
                "X-CSRF-Token": page.locator('meta[name="csrf-token"]').get_attribute("content") or ""})
            assert status.status == 409 and status.json()["error"]["code"] == "phone_not_registered"
            assert engine_says_registered(core, world.staff["ag1"]) is False
            assert blocked == []
        finally:
            page.context.close()
            srv.__exit__(None, None, None)


def test_microphone_refused_is_shown(core: App, browser_no_mic: Any) -> None:
    world, registrar = softphone_world(core)
    with registrar:
        srv, page, _ = open_desk(browser_no_mic, core, registrar)
        try:
            page.wait_for_selector("#softphone[data-mic='denied']", timeout=WAIT_MS)
            assert "麦克风被拒绝" in (page.locator("#sp-mic").text_content() or "")
        finally:
            page.context.close()
            srv.__exit__(None, None, None)


def test_a_hidden_tab_keeps_its_registration(core: App, tmp_path: Path) -> None:
    """Playwright keeps every page it drives "visible" (focus emulation) and launches Chromium without its
    background throttling; so here Chromium runs as a browser does (none of those flags), Playwright logs in over
    CDP and lets go, and another tab is brought to the front through the DevTools HTTP endpoint: the desk's tab is
    really hidden (``document.visibilityState``, read over raw CDP) and throttled as Chromium throttles hidden tabs.
    (Chromium's intensive throttling starts after five hidden minutes; this test stays hidden for 16 s.)"""
    import asyncio
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    from playwright.sync_api import sync_playwright
    from websockets.asyncio.client import connect

    world, registrar = softphone_world(core, expires=10)  # JsSIP refreshes 5 s before the 10 s expiry
    ag1 = world.staff["ag1"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    devtools = f"http://127.0.0.1:{port}"

    def evaluate(ws_url: str, expression: str) -> Any:
        async def run() -> Any:
            async with connect(ws_url, max_size=None) as ws:
                await ws.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression}}))
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("id") == 1:
                        return msg["result"]["result"].get("value")
        return asyncio.run(run())

    with registrar:
        real_time(core)
        core.settings.softphone_ws_url = registrar.url
        core.settings.phone_report_stale_s = 6.0
        chromium = subprocess.Popen([CHROMIUM, *ARGS, *MEDIA, "--use-fake-ui-for-media-stream",
                                     f"--remote-debugging-port={port}", f"--user-data-dir={tmp_path / 'profile'}",
                                     "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        srv = Server(create_app(core)).__enter__()
        try:
            until(lambda: _answers(devtools))
            with sync_playwright() as pw:
                b = pw.chromium.connect_over_cdp(devtools)
                page = b.contexts[0].pages[0]
                _login(page, srv.url, "ag1")
                page.wait_for_url("**/agent")
                page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)
                b.close()  # lets go of the page (and of its emulated focus); the browser goes on
            desk_tab = next(t for t in json.load(urllib.request.urlopen(devtools + "/json"))
                            if t["type"] == "page" and t["url"].endswith("/agent"))
            other = json.load(urllib.request.urlopen(urllib.request.Request(devtools + "/json/new?about:blank",
                                                                            method="PUT")))
            urllib.request.urlopen(devtools + "/json/activate/" + other["id"])
            ws_url = desk_tab["webSocketDebuggerUrl"]
            until(lambda: evaluate(ws_url, "document.visibilityState") == "hidden")
            registers = registrar.registers
            time.sleep(16)  # hidden for longer than the registration lasts (a wait, not a speed bound)
            assert evaluate(ws_url, "document.visibilityState") == "hidden"
            assert registrar.registers >= registers + 2  # refreshed while hidden
            assert registrar.connections == 1  # on the same socket: it never lapsed
            assert evaluate(ws_url, "document.getElementById('softphone').dataset.reg") == "registered"
            # its reports kept coming (6 s without one would have lapsed)
            assert run_in_transaction(core.sessions, lambda s: phones.registered(
                s, f"PJSIP/webrtc-{ag1}", core.clock())) is True
        finally:
            srv.__exit__(None, None, None)
            chromium.kill()
            chromium.wait()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(url + "/json/version", timeout=1).read()
        return True
    except OSError:
        return False
