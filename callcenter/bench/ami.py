"""``callcenter bench ami``: AMI events per second turned into domain events, from real traffic.

Engine: every Asterisk 22 capture is replayed over loopback by the fake server
(``callcenter.adapters.telephony.ami_replay``) to a real ``AmiClient`` that logs in, originates, redirects,
lists channels, reconnects after the restart... exactly as in the adapter tests; we count the AMI
events it reads and the domain events it emits, per second of wall time.
Baseline (same run, same bytes): panoramisk's own parser alone (``AMIProtocol.data_received``
with a no-op dispatcher, no socket, no mapping).  Ratio = engine rate / bare parse rate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

from callcenter.adapters.telephony.ami import AmiClient, AmiLoginError, AmiOptions, AmiServer
from callcenter.adapters.telephony.ami_replay import AFTER_RESTART, Capture, ReplayServer, load_capture, parse_capture
from callcenter.ports.telephony import AgentJoined, AgentLeft, Answered, Connected, Ended, Failed, ServerUp

_OPTS: dict[str, Any] = dict(action_timeout_s=10.0, backoff_initial_s=0.0, heartbeat_s=0, tick_s=0)


async def _until(client: AmiClient, done: Callable[[list[Any]], bool], seen: list[Any]) -> None:
    async def read() -> None:
        if done(seen):
            return
        async for event in client.stream:
            seen.append(event)
            if done(seen):
                return

    await asyncio.wait_for(read(), 30)


def _count(kind: type, n: int = 1) -> Callable[[list[Any]], bool]:
    return lambda evs: sum(isinstance(e, kind) for e in evs) >= n


async def _originate_outcomes(client: AmiClient, seen: list[Any]) -> None:
    for n in (1, 2, 3, 4):
        await client.originate(f"cc-1380000000{n}", f"1380000000{n}", "95555 <95555>", {}, 20)
    await _until(client, lambda evs: sum(isinstance(e, (Failed, Ended)) for e in evs) >= 4, seen)


async def _answered_to_agent(client: AmiClient, seen: list[Any]) -> None:
    await client.agent_login("1001", "Local/1001@sim-agents/n")
    await _until(client, _count(AgentJoined), seen)
    await client.originate("call-42", "13800000001", "95555", {}, 20)
    await _until(client, _count(Answered), seen)
    await client.connect("call-42", "1001")
    await _until(client, _count(Connected), seen)
    await client.reconcile()
    await client.query("Status")
    await _until(client, _count(Ended), seen)
    await client.agent_logout("1001")
    await _until(client, _count(AgentLeft), seen)


async def _amd_outcomes(client: AmiClient, seen: list[Any]) -> None:
    await client.originate("amd-13800000007", "13800000007", "95555", {}, 20)
    await client.originate("amd-13800000008", "13800000008", "95555", {}, 20)
    await _until(client, _count(Ended, 2), seen)


async def _restart_midcall(client: AmiClient, seen: list[Any]) -> None:
    await client.originate("call-77", "13800000001", "95555", {}, 20)
    await _until(client, _count(ServerUp, 2), seen)


Scenario = Callable[[AmiClient, list[Any]], Awaitable[None]]
SCENARIOS: list[tuple[str, str, bool, Scenario]] = [
    ("originate_outcomes", "Local/{number}@sim-customers", False, _originate_outcomes),
    ("answered_to_agent", "Local/{number}@sim-customers/n", False, _answered_to_agent),
    ("amd_outcomes", "Local/{number}@sim-amd/n", True, _amd_outcomes),
    ("restart_midcall", "Local/{number}@sim-customers/n", False, _restart_midcall),
]


async def _engine_once(captures: dict[str, Capture], after: Capture) -> tuple[int, int]:
    """One pass over every capture; returns (AMI events read, domain events emitted)."""
    ami_events = domain = 0
    for name, template, amd, scenario in SCENARIOS:
        scripts = [captures[name]] + ([after] if name == "restart_midcall" else [])
        async with ReplayServer(*scripts) as server:
            opts = AmiOptions(dial_template=template, amd=amd, **_OPTS)
            client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), opts)
            seen: list[Any] = []
            await client.start()
            await scenario(client, seen)
            await client.aclose()
            seen += client.stream.pending()
            ami_events += client.messages_seen
            domain += len(seen)
    async with ReplayServer(captures["bad_login"]) as server:
        client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "wrong"), AmiOptions(**_OPTS))
        try:
            await client.start()
        except AmiLoginError:
            domain += 1  # the login error is the domain outcome of this capture
        await client.aclose()
    return ami_events, domain


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _CountingFactory:
    forgetable_actions = ("ping", "login")

    def __init__(self) -> None:
        self.events = 0
        self.awaiting_actions: list[Any] = []

    def dispatch(self, message: Any) -> None:
        self.events += 1

    def connection_lost(self, exc: Any) -> None:
        pass


def _bare_parse(blobs: list[bytes]) -> int:
    """panoramisk's parser alone over the captured server bytes; returns the events it produced."""
    total = 0
    for blob in blobs:
        protocol = AMIProtocol()
        protocol.connection_made(_Transport())
        factory = _CountingFactory()
        protocol.factory = factory
        for start in range(0, len(blob), 4096):  # socket-sized reads
            protocol.data_received(blob[start : start + 4096])
        total += factory.events
    return total


async def _run(repeat: int) -> dict[str, Any]:
    names = [s[0] for s in SCENARIOS] + ["bad_login"]
    captures = {name: load_capture(name) for name in names}
    after = parse_capture(AFTER_RESTART, "after_restart")
    await _engine_once(captures, after)  # warm-up (imports, first connections)
    t0 = time.perf_counter()
    ami_events = domain = 0
    for _ in range(repeat):
        a, d = await _engine_once(captures, after)
        ami_events += a
        domain += d
    engine_s = time.perf_counter() - t0

    blobs = [c.banner + c.server_bytes() for c in captures.values()] + [after.server_bytes()]
    _bare_parse(blobs)
    t0 = time.perf_counter()
    bare_events = 0
    for _ in range(repeat):
        bare_events += _bare_parse(blobs)
    bare_s = time.perf_counter() - t0
    engine_rate = ami_events / engine_s
    bare_rate = bare_events / bare_s
    return {
        "repeat": repeat,
        "captures": len(names),
        "engine": {
            "ami_events": ami_events,
            "domain_events": domain,
            "seconds": round(engine_s, 4),
            "ami_events_per_s": round(engine_rate, 1),
        },
        "panoramisk_bare_parse": {
            "ami_events": bare_events,
            "seconds": round(bare_s, 4),
            "ami_events_per_s": round(bare_rate, 1),
        },
        "ratio_engine_to_bare": round(engine_rate / bare_rate, 4),
    }


def run(repeat: int = 20, as_json: bool = False) -> dict[str, Any]:
    """Replay every capture ``repeat`` times through the engine and through panoramisk's bare parser."""
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    quiet = logging.getLogger("callcenter.adapters.telephony.ami")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the bad_login replay logs a refused login on purpose
    try:
        result = asyncio.run(_run(repeat))
    finally:
        quiet.setLevel(level)
    e, b = result["engine"], result["panoramisk_bare_parse"]
    print(f"AMI replay of {result['captures']} real Asterisk 22 captures x {repeat} over loopback")
    print(f"  engine (socket + panoramisk + mapping): {e['ami_events_per_s']:>12,.0f} AMI events/s "
          f"({e['ami_events']} events -> {e['domain_events']} domain events in {e['seconds']} s)")
    print(f"  panoramisk bare parse (baseline):       {b['ami_events_per_s']:>12,.0f} AMI events/s "
          f"({b['ami_events']} events in {b['seconds']} s)")
    print(f"  ratio engine / bare parse:              {result['ratio_engine_to_bare']:.3f}")
    if as_json:
        print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":  # pragma: no cover
    run(as_json=True)
