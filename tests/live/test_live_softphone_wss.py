"""The browser softphone over WSS against a real Asterisk 22 (issue 18), as agents' browsers reach it in production:
the shipped http.conf's TLS listener with a certificate in its two paths (here one made for the run, where the
operator names theirs), ``softphone_ws_url = wss://<host>:8089/ws``. TLS is real: the listener serves that
certificate, a client that does not trust it is refused, and headless Chromium trusts exactly that one key
(``--ignore-certificate-errors-spki-list``, every other certificate error stands). The page registers over wss://
with the digest, answers the agent leg by itself, and a sipp customer bridged to it gets media both ways."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
from tests.live.asterisk import PHONES_SECRET, SIPP_PORT, TLS_PORT, LiveAsterisk
from tests.live.test_live_softphone import WAIT_MS, Loop, rtp_rows, until

pytestmark = pytest.mark.db
SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).with_name("sipp")


@pytest.fixture
def pinned_chromium(asterisk: LiveAsterisk) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    flags = ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    "--autoplay-policy=no-user-gesture-required",
                    f"--ignore-certificate-errors-spki-list={asterisk.tls_spki}"]
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        yield b
        b.close()


def served_certificate(host: str, port: int, verify_with: Path | None) -> bytes:
    """The certificate the TLS listener presents (DER), verified against ``verify_with`` (None: the system's CAs)."""
    ctx = ssl.create_default_context(cafile=str(verify_with) if verify_with else None)
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_browser_softphone_registers_over_wss_and_takes_the_agent_leg(core: App, asterisk: LiveAsterisk,
                                                                      pinned_chromium: Any, tmp_path: Path) -> None:
    if SIPP is None:
        pytest.fail("sipp is required (Debian's sip-tester)")
    host = asterisk.bind
    cert = asterisk.home / "keys" / "asterisk.crt"
    # the listener is TLS with the configured certificate; a client that does not trust it gets no connection
    der = served_certificate(host, TLS_PORT, cert)
    assert der == ssl.PEM_cert_to_DER_cert(cert.read_text())
    with pytest.raises(ssl.SSLCertVerificationError):
        served_certificate(host, TLS_PORT, None)

    core.clock = lambda: datetime.now(timezone.utc)  # the page's reports count in real time
    world = build(core)
    ag1 = world.staff["ag1"]
    publisher = publisher_from(str(asterisk.pjsip_agents), f"{host}:5038", "callcenter-phones", PHONES_SECRET)
    endpoint, _, published = phones.set_phone(core, staff_principal(core.sessions, "adm"), publisher, ag1, "webrtc")
    assert published == "reloaded"
    until(lambda: f"{endpoint}/{endpoint}" in asterisk.cli(f"pjsip show endpoint {endpoint}"))
    core.settings.softphone_ws_url = asterisk.wss_url
    loop = Loop()
    ami = AmiClient(AmiServer(host, 5038, "callcenter", asterisk.ami_secret),
                    AmiOptions(dial_template="PJSIP/{number}@sim-sip-customer", heartbeat_s=0, tick_s=0,
                               backoff_initial_s=0.5))
    customer = None
    srv = Server(create_app(core)).__enter__()
    page = pinned_chromium.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))  # every WebSocket the page opens
    try:
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.wait_for_selector("#softphone[data-reg='registered']", timeout=WAIT_MS)
        assert f"{endpoint}/sip:" in asterisk.cli("pjsip show contacts")
        assert sockets and set(sockets) == {asterisk.wss_url}  # the page's only socket: SIP over TLS

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
        loop.run(ami.originate("cc-live-wss1", "90006", "95500", {}, timeout_s=10))
        assert isinstance(loop.run(next_of(events, (Answered, Failed))), Answered)
        loop.run(ami.connect("cc-live-wss1", str(ag1)))
        assert isinstance(loop.run(next_of(events, (Connected, Ended))), Connected)
        until(lambda: page.evaluate("window.ccSoftphone.stats()")["received"] > 0)
        until(lambda: page.evaluate("window.ccSoftphone.stats()")["sent"] > 0)
        until(lambda: len(rtp_rows(asterisk, f"{endpoint}-", "sim-sip-custom")) == 2 and all(
            int(r[4]) > 0 and int(r[8]) > 0 for r in rtp_rows(asterisk, f"{endpoint}-", "sim-sip-custom")))
        loop.run(ami.hangup("cc-live-wss1"))
        assert isinstance(loop.run(next_of(events, (Ended,))), Ended)
        loop.run(ami.agent_logout(str(ag1)))
    finally:
        page.close()
        srv.__exit__(None, None, None)
        try:
            loop.run(ami.aclose())
        finally:
            loop.close()
            if customer is not None and customer.poll() is None:
                customer.kill()
                customer.wait()
