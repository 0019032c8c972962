"""Agents' phones over real SIP (issue 18) against a real Asterisk 22 with the shipped pjsip.conf: the engine writes
an agent's desk phone into pjsip_agents.conf and reloads res_pjsip with its own AMI account; a sipp process
(tests/live/sipp/agent-phone.xml) registers as that phone with the digest and takes the agent leg; a customer
reached over SIP (sipp, tests/live/sipp/customer.xml) is bridged to it. With CALLCENTER_LIVE_RECORD=1 the AMI
traffic is written to tests/fixtures/asterisk-22-live/sip_desk_phone_takes_the_agent_leg.ami, which the ordinary
suite replays (tests/adapters/test_live_captures.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from callcenter.adapters.telephony.pjsip_agents import publisher_from
from callcenter.services.phones import ha1, render_agents_conf
from callcenter.store.models.phones import AgentPhone
from tests.live.asterisk import PHONES_SECRET, SIP_PORT, SIPP_PORT, LiveAsterisk
from tests.live.test_live_ami import run_live

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
