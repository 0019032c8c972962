"""Fake Asterisk AMI server for the adapter tests: replays the real captures.

The replay core lives in ``callcenter.adapters.telephony.ami_replay`` (the ``bench ami`` command uses it
too); this module re-exports it and adds test helpers.
"""

from __future__ import annotations

import asyncio

from callcenter.adapters.telephony.ami import AmiClient, AmiOptions, AmiServer
from callcenter.adapters.telephony.ami_replay import (
    Capture,
    ReplayServer,
    fixtures_dir,
    load_capture,
    parse_capture,
)
from callcenter.ports.telephony import TelephonyEvent

__all__ = [
    "Capture",
    "ReplayServer",
    "fixtures_dir",
    "load_capture",
    "parse_capture",
    "client_for",
    "next_event",
    "collect_until",
]

TEST_OPTIONS = AmiOptions(
    action_timeout_s=10.0,
    backoff_initial_s=0.0,  # reconnect at once: the fake server is already listening
    heartbeat_s=0,  # no Ping: the replay answers only what the capture recorded
    tick_s=0,
)


def client_for(server: ReplayServer, options: AmiOptions = TEST_OPTIONS, secret: str = "ccsecret") -> AmiClient:
    return AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", secret), options)


async def next_event(client: AmiClient, timeout: float = 10.0) -> TelephonyEvent:
    """The next event (the timeout only guards against a hung test; nothing waits on it)."""
    iterator = client.stream.__aiter__()
    return await asyncio.wait_for(anext(iterator), timeout)


async def collect_until(client: AmiClient, predicate, timeout: float = 10.0) -> list[TelephonyEvent]:
    """Read events until ``predicate(events_so_far)`` holds."""
    events: list[TelephonyEvent] = []

    async def run() -> None:
        async for event in client.stream:
            events.append(event)
            if predicate(events):
                return

    await asyncio.wait_for(run(), timeout)
    return events
