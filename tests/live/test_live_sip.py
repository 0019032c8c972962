"""Agents' phones over real SIP (issue 18) against a real Asterisk 22 with the shipped pjsip.conf: the engine writes
an agent's desk phone into pjsip_agents.conf and reloads res_pjsip with its own AMI account; a sipp process
(tests/live/sipp/agent-phone.xml) registers as that phone with the digest and takes the agent leg; a customer
reached over SIP (sipp, tests/live/sipp/customer.xml) is bridged to it. With CALLCENTER_LIVE_RECORD=1 the AMI
traffic is written to tests/fixtures/asterisk-22-live/sip_desk_phone_takes_the_agent_leg.ami, which the ordinary
suite replays (tests/adapters/test_live_captures.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from callcenter.adapters.telephony.ami import AmiClient, AmiServer
from callcenter.adapters.telephony.pjsip_agents import publisher_from
from callcenter.bootstrap import App
from callcenter.parts.dialer import dialer_deps
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.phones import ha1, render_agents_conf
from callcenter.store.models.phones import AgentPhone
from tests.live.asterisk import PHONES_SECRET, SIP_PORT, SIPP_PORT, LiveAsterisk
from tests.adapters.ami_scenarios import LIVE_CAPTURES
from tests.adapters.sip_outcomes_world import (EXPECTED, ORIGINATE_TIMEOUT_S, OPTIONS as OUTCOMES_OPTIONS,
                                               build_outcomes_world, check_outcomes, outcomes)
from tests.live.capture import RecordingProxy
from tests.live.test_live_ami import run_live
from tests.live.test_live_engine import Running, Wall, until as until_async

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).with_name("sipp")
PASSWORD = "desk-phone-1004-secret"


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def until(check: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


async def test_sip_desk_phone_registers_and_takes_the_agent_leg(asterisk: LiveAsterisk, tmp_path: Path) -> None:
    if SIPP is None:
        pytest.fail("sipp is required (Debian's sip-tester)")
    host = asterisk.bind
    # the engine's side: the agent's phone from the database, written for Asterisk and reloaded over AMI
    phone = AgentPhone(staff_id=7, kind="sip", endpoint="1004", realm="callcenter", ha1=ha1("1004", "callcenter", PASSWORD),
                       active=True)
    publisher = publisher_from(str(asterisk.pjsip_agents), f"{host}:5038", "callcenter-phones", PHONES_SECRET)
    assert publisher.publish(render_agents_conf([phone])) == "reloaded"
    until(lambda: "1004/1004" in asterisk.cli("pjsip show endpoint 1004"))
    logs = tmp_path / "sipp"
    logs.mkdir()
    agent = subprocess.Popen([SIPP, f"{host}:{SIP_PORT}", "-sf", str(SCENARIOS / "agent-phone.xml"),
                              "-oocsf", str(SCENARIOS / "agent-leg.xml"), "-aa", "-s", "1004",
                              "-au", "1004", "-ap", PASSWORD, "-i", host, "-p", str(free_udp_port(host)),
                              "-mp", str(free_udp_port(host)), "-m", "1", "-nostdin", "-trace_err",
                              "-error_file", str(logs / "agent.err")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=logs)
    customer = subprocess.Popen([SIPP, "-sf", str(SCENARIOS / "customer.xml"), "-i", host, "-p", str(SIPP_PORT),
                                 "-mp", str(free_udp_port(host)), "-m", "1", "-nostdin", "-trace_err",
                                 "-error_file", str(logs / "customer.err")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=logs)
    try:
        until(lambda: "1004/sip:1004@" in asterisk.cli("pjsip show contacts"))  # registered with the digest
        await run_live("sip_desk_phone_takes_the_agent_leg", asterisk)
        assert customer.wait(20) == 0, (logs / "customer.err").read_text(errors="replace")  # its one call went well
        assert agent.poll() is None  # still registered, at the desk (its scenario waits; ended below)
    finally:
        for p in (agent, customer):
            if p.poll() is None:
                p.kill()
                p.wait()


def sipp_customers(host: str, scenario: str, calls: int, logs: Path) -> subprocess.Popen[bytes]:
    """The customers over SIP: one sipp UAS at the address of the test-only endpoint ``sim-sip-customer``
    (``SIPP_PORT``), running ``tests/live/sipp/<scenario>`` for ``calls`` calls, then exiting (0: all went as the
    scenario says)."""
    assert SIPP is not None, "sipp is required (Debian's sip-tester)"
    logs.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([SIPP, "-sf", str(SCENARIOS / scenario), "-i", host, "-p", str(SIPP_PORT),
                             "-mp", str(free_udp_port(host)), "-m", str(calls), "-nostdin", "-trace_err",
                             "-error_file", str(logs / f"{scenario}.err")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=logs)


def ended(process: subprocess.Popen[bytes], logs: Path, scenario: str, timeout_s: float = 30.0) -> None:
    try:
        code = process.wait(timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = logs / f"{scenario}.err"
    assert code == 0, err.read_text(errors="replace") if err.exists() else code


async def test_sip_customers_busy_no_answer_congestion_and_a_machine(asterisk: LiveAsterisk, tmp_path: Path) -> None:
    """The dialler's outcomes from real SIP answers (tests/live/sipp/outcomes.xml): 486, ringing until the
    originate timeout, 503, and a long recorded greeting that AMD() takes for a machine."""
    customers = sipp_customers(asterisk.bind, "outcomes.xml", 4, tmp_path / "sipp")
    try:
        await run_live("sip_customer_outcomes", asterisk)
    finally:
        ended(customers, tmp_path / "sipp", "outcomes.xml")


@pytest.mark.db
async def test_engine_records_the_sip_customers_outcomes(core: App, asterisk: LiveAsterisk, tmp_path: Path) -> None:
    """The whole dialler (``DialerEngine``, its database, the AMI adapter) dials four leads of a campaign with AMD
    on, each to the sipp customer of tests/live/sipp/outcomes.xml: the attempts end busy, no_answer, failed
    (congestion) and machine. With CALLCENTER_LIVE_RECORD=1 the engine's AMI session is written to
    tests/fixtures/asterisk-22-live/sip_dialler_outcomes.ami, replayed by the ordinary suite on a fresh database."""
    asterisk.cli("channel request hangup all")
    build_outcomes_world(core)
    customers = sipp_customers(asterisk.bind, "outcomes.xml", len(EXPECTED), tmp_path / "sipp")
    proxy = await RecordingProxy(asterisk.ami_address).start()
    client = AmiClient(AmiServer(*proxy.address, "callcenter", asterisk.ami_secret), OUTCOMES_OPTIONS)
    await client.start()
    deps = replace(dialer_deps(core), wall=Wall(core.clock()), process_lease=timedelta(seconds=2))
    engine = DialerEngine(deps, client, dialer_id="live-sip", sync_s=0.5, tick_s=0.2, wallboard_s=5.0,
                          abandon_after_s=2.0, originate_timeout_s=ORIGINATE_TIMEOUT_S)
    run = Running(engine)
    try:
        await until_async(lambda: len(outcomes(core)) == len(EXPECTED), 90.0)
    finally:
        await run.stop()
        await client.aclose()
        await proxy.aclose()
        ended(customers, tmp_path / "sipp", "outcomes.xml")
    check_outcomes(core)
    if os.environ.get("CALLCENTER_LIVE_RECORD") == "1":
        proxy.write(LIVE_CAPTURES / "sip_dialler_outcomes.ami",
                    note=f"live: the dialler engine's outcomes from SIP customers against {asterisk.version}")


async def test_phone_states_read_from_asterisk(asterisk: LiveAsterisk, tmp_path: Path) -> None:
    """The engine's read at start (``phone_states``): a registered desk phone, a written one nobody registered."""
    if SIPP is None:
        pytest.fail("sipp is required (Debian's sip-tester)")
    host = asterisk.bind
    written = [AgentPhone(staff_id=7, kind="sip", endpoint="1004", realm="callcenter",
                          ha1=ha1("1004", "callcenter", PASSWORD), active=True),
               AgentPhone(staff_id=8, kind="sip", endpoint="1005", realm="callcenter",
                          ha1=ha1("1005", "callcenter", "desk-phone-1005-secret"), active=True)]
    publisher = publisher_from(str(asterisk.pjsip_agents), f"{host}:5038", "callcenter-phones", PHONES_SECRET)
    assert publisher.publish(render_agents_conf(written)) == "reloaded"
    until(lambda: "1005/1005" in asterisk.cli("pjsip show endpoint 1005"))
    logs = tmp_path / "sipp"
    logs.mkdir()
    agent = subprocess.Popen([SIPP, f"{host}:{SIP_PORT}", "-sf", str(SCENARIOS / "agent-phone.xml"),
                              "-oocsf", str(SCENARIOS / "agent-leg.xml"), "-aa", "-s", "1004",
                              "-au", "1004", "-ap", PASSWORD, "-i", host, "-p", str(free_udp_port(host)),
                              "-mp", str(free_udp_port(host)), "-m", "1", "-nostdin", "-trace_err",
                              "-error_file", str(logs / "agent.err")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=logs)
    try:
        until(lambda: "1004/sip:1004@" in asterisk.cli("pjsip show contacts") and
              "Avail" in asterisk.cli("pjsip show contacts"))
        await run_live("sip_phone_states", asterisk)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
