"""Live events across engine processes over PostgreSQL LISTEN/NOTIFY (``callcenter.adapters.pg_events``).

Two buses with a bridge each on the same database play two engine processes (and one test runs a real second
process): an emitted event reaches the other bus's subscribers with the same fields, never twice on its own bus;
garbage on the channel, an oversized event and a killed connection never stop the next event; two engines
(``run_engine``) on one database share their events. Needs ``CALLCENTER_TEST_DATABASE_URL`` pointing at
PostgreSQL; the two wiring tests at the end (``bootstrap.event_bridge_for``) need no database.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from callcenter.adapters.pg_events import CHANNEL, PgEventBridge, conninfo_from_url
from callcenter.bootstrap import bootstrap, event_bridge_for
from callcenter.domain.events import AgentStateChanged, CampaignChanged, PreviewOffered, from_payload
from callcenter.runtime import run_engine
from callcenter.services.bus import EventBus, Subscription
from callcenter.settings import load_settings
from tests.conftest import PG_URL
from tests.processes import ROOT, clean_env

needs_pg = pytest.mark.skipif(not PG_URL.startswith("postgresql"),
                              reason="CALLCENTER_TEST_DATABASE_URL is not a PostgreSQL database")

TIMEOUT = 10.0


def conninfo() -> str:
    return conninfo_from_url(PG_URL)


async def started(bus: EventBus) -> PgEventBridge:
    bridge = PgEventBridge(conninfo(), bus, backoff_initial_s=0.05, backoff_max_s=0.5)
    await bridge.start()
    assert await bridge.wait_listening(TIMEOUT), bridge.state()
    return bridge


@pytest.fixture
async def pair() -> AsyncIterator[tuple[EventBus, PgEventBridge, EventBus, PgEventBridge]]:
    bus_a, bus_b = EventBus(), EventBus()
    a, b = await started(bus_a), await started(bus_b)
    try:
        yield bus_a, a, bus_b, b
    finally:
        await a.aclose()
        await b.aclose()


async def next_event(sub: Subscription, timeout: float = TIMEOUT) -> dict[str, Any]:
    _, event = await asyncio.wait_for(sub.__anext__(), timeout)
    return event


async def notify(text: str) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, text))


async def until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


STATE = AgentStateChanged(staff_id=7, state="paused", reason="lunch", since="2026-11-25T02:30:00+00:00",
                          attempt_id=42)


@needs_pg
async def test_an_event_emitted_on_one_bus_reaches_the_other_with_the_same_fields(pair: Any) -> None:
    bus_a, a, bus_b, b = pair
    async with bus_a.subscribe("agent:7") as agent, bus_a.subscribe("wallboard") as board:
        bus_b.emit(STATE)
        got_agent, got_board = await next_event(agent), await next_event(board)
    assert from_payload(got_agent) == STATE and from_payload(got_board) == STATE
    assert (got_agent["topic"], got_board["topic"]) == ("agent:7", "wallboard")
    await until(lambda: b.counts["sent"] == 1, "B's sender to count its notification")
    assert a.counts["received"] == 1


@needs_pg
async def test_own_events_are_delivered_once_on_their_own_bus(pair: Any) -> None:
    bus_a, a, bus_b, b = pair
    async with bus_b.subscribe("wallboard") as board_b, bus_a.subscribe("wallboard") as board_a:
        bus_b.emit(CampaignChanged(campaign_id=1, state="running"))
        assert from_payload(await next_event(board_b)) == CampaignChanged(1, "running")  # locally, at once
        assert from_payload(await next_event(board_a)) == CampaignChanged(1, "running")
        # A's answer is sent after B's notification committed, so B's listener has seen its own one before it
        bus_a.emit(CampaignChanged(campaign_id=2))
        assert from_payload(await next_event(board_b)) == CampaignChanged(2)
        assert from_payload(await next_event(board_a)) == CampaignChanged(2)
        await until(lambda: a.counts["own_skipped"] == 1, "A's listener to see its own notification")
        assert board_b.queue.empty() and board_a.queue.empty()
    assert b.counts["own_skipped"] == 1 and b.counts["received"] == 1
    assert a.counts["received"] == 1


@needs_pg
async def test_an_event_from_a_second_process_arrives(tmp_path: Path) -> None:
    bus = EventBus()
    bridge = await started(bus)
    try:
        async with bus.subscribe("agent:31") as sub:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.db.pg_events_worker", conninfo(), "31", "wrap_up", cwd=ROOT,
                env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, out.decode()
            got = await next_event(sub)
    finally:
        await bridge.aclose()
    assert from_payload(got) == AgentStateChanged(staff_id=31, state="wrap_up", reason="lunch",
                                                  since="2026-11-25T02:30:00+00:00", attempt_id=42)
    assert bridge.counts["received"] == 1


@needs_pg
async def test_garbage_on_the_channel_is_dropped_and_the_next_event_arrives(pair: Any) -> None:
    bus_a, a, bus_b, b = pair
    async with bus_a.subscribe("wallboard") as board:
        await notify("nonsense")
        await notify('{"origin": "elsewhere", "topics": ["wallboard"], "event": {"type": "no_such_event"}}')
        await notify('{"origin": "elsewhere", "event": {"type": "campaign"}}')  # a field missing
        await notify('[1, 2, 3]')
        bus_b.emit(CampaignChanged(campaign_id=5, state="paused"))
        assert from_payload(await next_event(board)) == CampaignChanged(5, "paused")
        assert board.queue.empty()
    assert a.counts["malformed"] == 4 and a.state()["listener"] == "connected"


@needs_pg
async def test_an_oversized_event_is_delivered_locally_only(pair: Any) -> None:
    bus_a, a, bus_b, b = pair
    big = PreviewOffered(staff_id=9, lead_id=1, campaign_id=1, client_id=None, name="张" * 3000,
                         phone="13800000000", attempt_no=1)  # 9000 bytes of UTF-8 in the name alone
    async with bus_a.subscribe("agent:9") as there, bus_b.subscribe("agent:9") as here:
        bus_b.emit(big)
        assert from_payload(await next_event(here)) == big
        bus_b.emit(AgentStateChanged(staff_id=9, state="ready"))  # sent after the big one would have been
        assert (await next_event(there))["type"] == "agent_state"
        assert there.queue.empty()
    await until(lambda: b.counts["sent"] == 1, "B's sender to count its notification")  # it may answer late
    assert b.counts["too_big"] == 1 and not b.state()["queued"]


@needs_pg
async def test_the_bridge_reconnects_after_its_connections_are_terminated(pair: Any) -> None:
    bus_a, a, bus_b, b = pair
    async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as admin:
        for name, bridge in (("listener", a), ("sender", b)):
            pid = bridge._conns[name].info.backend_pid
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await until(lambda: a.counts["reconnects"] >= 1 and a.state()["listener"] == "connected",
                "the listener to reconnect")
    assert a.state()["errors"]["listener"]  # the failure is on the health state
    async with bus_a.subscribe("agent:7") as sub:
        bus_b.emit(STATE)  # B's sender finds its connection dead, reconnects and sends it then
        assert from_payload(await next_event(sub)) == STATE
    assert b.counts["reconnects"] >= 1 and b.problem() is None and a.problem() is None


@needs_pg
async def test_a_bridge_that_cannot_connect_keeps_retrying_and_says_so() -> None:
    bus = EventBus()
    bridge = PgEventBridge("postgresql://postgres@127.0.0.1:1/none", bus, backoff_initial_s=0.01,
                           backoff_max_s=0.05, connect_timeout_s=1)
    await bridge.start()
    try:
        await until(lambda: bridge.state()["listener"] == "retrying", "a failed connection")
        async with bus.subscribe("wallboard") as board:
            bus.emit(CampaignChanged(campaign_id=3))  # still delivered here
            assert from_payload(await next_event(board)) == CampaignChanged(3)
        problem = bridge.problem()
        assert problem is not None and problem.startswith("PostgreSQL events: listener retrying")
    finally:
        await bridge.aclose(drain_timeout_s=0)
    assert bus.bridge is None and bridge.state()["listener"] == "stopped"


@needs_pg
async def test_two_engines_on_one_database_share_their_events() -> None:
    """``run_engine`` starts the bridge before the parts (the ``events`` part) and closes it after them."""
    cores = [bootstrap(load_settings(database_url=PG_URL)) for _ in range(2)]
    stop = asyncio.Event()

    async def web(core: Any, stop: asyncio.Event) -> None:
        await stop.wait()

    engines = [asyncio.create_task(run_engine(core, [], web=web, stop=stop)) for core in cores]
    try:
        await until(lambda: all(c.parts.snapshot().get("events", {}).get("state") == "running" for c in cores),
                    "both bridges to connect")
        assert all(isinstance(c.bus.bridge, PgEventBridge) for c in cores)
        async with cores[1].bus.subscribe("wallboard") as board:
            cores[0].bus.emit(CampaignChanged(campaign_id=11, state="stopped"))
            assert from_payload(await next_event(board)) == CampaignChanged(11, "stopped")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*engines), 30)
        for core in cores:
            core.close()
    assert [c.bus.bridge for c in cores] == [None, None]
    assert [c.parts.snapshot()["events"]["state"] for c in cores] == ["stopped", "stopped"]


# --- wiring (every database) ---------------------------------------------------------------------------------


def test_no_bridge_on_sqlite(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert event_bridge_for(settings, EventBus()) is None


def test_a_bridge_on_postgresql_unless_switched_off() -> None:
    url = "postgresql+psycopg://cc:secret@db.example:5433/cc?sslmode=require"
    bus = EventBus()
    bridge = event_bridge_for(load_settings(database_url=url), bus)
    assert isinstance(bridge, PgEventBridge) and bridge.bus is bus
    assert bridge.conninfo == "postgresql://cc:secret@db.example:5433/cc?sslmode=require"
    assert event_bridge_for(load_settings(database_url=url, events_across_processes=False), bus) is None
