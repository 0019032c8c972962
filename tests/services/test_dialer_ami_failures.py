"""Hardening finding 2: a lost AMI reply or a dropped AMI connection is an outcome of the attempt it belongs to,
never an exception that ends the dialler (and with it web, FastAGI, care and scheduler).

The dialler runs as a part of ``run_engine`` (with a stand-in web part and a stand-in other part) over the real
AMI client and the fake Asterisk of tests/adapters/fake_ami.py. The scripts are built from reply bytes recorded in
tests/fixtures/asterisk-22 (Login, FullyBooted, "Originate successfully queued", the CoreShowChannels list).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import time

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.parts.dialer import dialer_runner
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, create_campaign, start_campaign
from callcenter.runtime import run_engine
from callcenter.store.db import transaction
from callcenter.store.models.dialer import Attempt, Lead
from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiServer
from tests.adapters.fake_ami import ReplayServer, parse_capture
from tests.factories import make_staff

pytestmark = pytest.mark.db

LOGIN = (b">>> Action: Login\r\n>>> ActionID: l1\r\n"
         b"Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
         b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 13\r\nLastReload: 13\r\nStatus: Fully Booted\r\n\r\n")
AGENT_LEG = (b">>> Action: Originate\r\n>>> ActionID: agent\r\n"
             b"Response: Success\r\nActionID: agent\r\nMessage: Originate successfully queued\r\n\r\n")
CUSTOMER = b">>> Action: Originate\r\n>>> ActionID: cust\r\n"  # ... and never a reply
CLOSED = b"### connection closed by peer\r\n"
NO_CHANNELS = (b">>> Action: CoreShowChannels\r\n>>> ActionID: chans-1\r\n"
               b"Response: Success\r\nActionID: chans-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
               b"Event: CoreShowChannelsComplete\r\nActionID: chans-1\r\nEventList: Complete\r\nListItems: 0\r\n\r\n")
QUEUED = (b">>> Action: Originate\r\n>>> ActionID: cust\r\n"
          b"Response: Success\r\nActionID: cust\r\nMessage: Originate successfully queued\r\n\r\n")



def joined(staff_id: int) -> bytes:
    """The agent leg's ConfbridgeJoin into its room (fields as in one_digit_agent_room.ami): only then is the
    agent's phone up and a lead dialled for it."""
    return (f"Event: ConfbridgeJoin\r\nPrivilege: call,all\r\nChannel: Local/{staff_id}@sim-agent-phones-00000001;1\r\n"
            f"ChannelState: 6\r\nUniqueid: agent-{staff_id}-leg\r\nConference: agent-{staff_id}\r\n"
            "Admin: No\r\nMuted: No\r\n\r\n").encode()


SHUTDOWN = b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n"  # restart_midcall.ami
PHONE = "+8613900000001"


def options(action_timeout_s: float) -> AmiOptions:
    # no Ping and no ticker: the replay answers only what the script holds; reconnect at once
    return AmiOptions(dial_template="Local/{number}@sim-customers", action_timeout_s=action_timeout_s,
                      backoff_initial_s=0.0, heartbeat_s=0, tick_s=0)


def campaign_with_one_lead(core: App) -> int:
    """The campaign, its lead and a ready agent; returns the agent's staff id."""
    agent = make_staff(core, "agent-ami", "pw-agent-123456", "agent")
    cid = create_campaign(core, name="断线", kind="cold_leads", script_id="cold_call", window_start=time(0),
                          window_end=time(23, 59, 59), days="every")
    assign_campaign(core, cid, staff_ids=[agent])
    add_leads(core, cid, [LeadRow(0, PHONE, "客户")])
    start_campaign(core, cid)
    agent_login(core, agent, campaign_id=cid)
    agent_ready(core, agent)
    return agent


async def run_until_attempt_ends(core: App, client: AmiClient,
                                 until: Callable[[], bool] = lambda: True) -> dict[str, object]:
    """The dialler and a stand-in part under ``run_engine`` until the attempt has ended and ``until()`` holds;
    returns the attempt_ended event and checks that nothing else stopped meanwhile."""
    core.telephony = lambda: client
    stop = asyncio.Event()
    other_alive = asyncio.Event()

    async def web(core: App, stop: asyncio.Event) -> None:  # stands in for the web part
        await stop.wait()

    async def other(core: App, stop: asyncio.Event) -> None:  # stands in for FastAGI / care / scheduler
        other_alive.set()
        await stop.wait()

    async with core.bus.subscribe("calls") as sub:
        engine = asyncio.create_task(run_engine(core, [("dialler", dialer_runner), ("other", other)], web=web,
                                                stop=stop))
        try:
            async with asyncio.timeout(30):
                while True:
                    _, event = await sub.__anext__()
                    if event.get("type") == "attempt_ended":
                        break
                while not until():  # a bounded wait for a condition (e.g. the client has reconnected)
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0)  # let a dialler that would crash do so
            parts = core.parts.snapshot()
            assert other_alive.is_set() and not engine.done()
            assert parts["web"]["state"] == "running" and parts["other"]["state"] == "running"
            assert parts["dialler"]["state"] in ("running", "down") and "restarts" not in parts["dialler"]
        finally:
            stop.set()
            await asyncio.wait_for(engine, 30)
    return event


def assert_lost_and_lead_free(core: App) -> None:
    with transaction(core.sessions) as s:
        attempt = s.scalars(select(Attempt)).one()
        lead = s.scalars(select(Lead).where(Lead.phone == PHONE)).one()
        assert attempt.outcome == "lost" and attempt.ended_at is not None
        assert lead.status == "retry" and lead.claimed_by is None  # released, not stuck in_progress
        assert lead.attempts == 0  # the PBX never confirmed the call: it does not use up one of the lead's attempts


async def test_originate_without_reply_within_the_action_timeout_is_a_lost_attempt(core: App) -> None:
    agent = campaign_with_one_lead(core)
    script = parse_capture(LOGIN + NO_CHANNELS + AGENT_LEG + joined(agent) + CUSTOMER, "no-reply")
    async with ReplayServer(script) as server:
        # the only wait in this test is the action timeout itself: the reply never comes, however fast the machine
        client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), options(1.0))
        event = await run_until_attempt_ends(core, client)
    assert event["outcome"] == "lost"
    assert_lost_and_lead_free(core)
    assert [dict(f)["Action"] for f in server.received][:4] == ["Login", "CoreShowChannels", "Originate", "Originate"]
    assert sum(dict(f)["Action"] == "Originate" for f in server.received) == 2  # never re-sent


async def test_connection_dropped_while_the_originate_is_pending_is_a_lost_attempt_and_reconnects(
        core: App, caplog: pytest.LogCaptureFixture) -> None:
    agent = campaign_with_one_lead(core)
    dropped = parse_capture(LOGIN + NO_CHANNELS + AGENT_LEG + joined(agent) + CUSTOMER + CLOSED, "dropped")
    back = parse_capture(LOGIN + NO_CHANNELS, "back")
    async with ReplayServer(dropped, back) as server:
        client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), options(30.0))
        with caplog.at_level(logging.INFO, logger="callcenter.adapters.telephony.ami"):
            # the client reconnects and reconciles on its own, while the dialler keeps running
            event = await run_until_attempt_ends(
                core, client, until=lambda: any(dict(f)["Action"] == "CoreShowChannels" for f in server.received)
                and client.connected)
    assert event["outcome"] == "lost"
    assert_lost_and_lead_free(core)
    actions = [dict(f)["Action"] for f in server.received]
    assert actions[:6] == ["Login", "CoreShowChannels", "Originate", "Originate", "Login", "CoreShowChannels"]
    assert actions.count("Originate") == 2  # nothing re-sent after the reconnect
    lines = [r.getMessage() for r in caplog.records if r.name == "callcenter.adapters.telephony.ami"]
    assert sum("connection lost" in line for line in lines) == 1
    assert sum(line.endswith("reconnected") for line in lines) == 1


async def test_call_still_ringing_when_asterisk_restarts_is_lost_not_failed(core: App) -> None:
    """Real-Asterisk finding 11: a call cut by a PBX restart before anyone answered is the free "lost", not a
    "failed" that uses up one of the lead's attempts."""
    agent = campaign_with_one_lead(core)
    restarting = parse_capture(LOGIN + NO_CHANNELS + AGENT_LEG + joined(agent) + QUEUED + SHUTDOWN + CLOSED, "restart")
    back = parse_capture(LOGIN + NO_CHANNELS, "back")
    async with ReplayServer(restarting, back) as server:
        client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), options(30.0))
        event = await run_until_attempt_ends(core, client)
    assert event["outcome"] == "lost"
    assert_lost_and_lead_free(core)
