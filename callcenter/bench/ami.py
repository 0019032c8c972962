"""``callcenter bench ami``: AMI events per second turned into domain events, from real traffic.

Two comparisons, each like for like and measured in the same run, interleaved in rounds (the order rotating) so
that a drift of the machine's load hits both sides:

* over a socket: every Asterisk 22 capture is replayed over loopback by the fake server
  (``callcenter.adapters.telephony.ami_replay``) to a real ``AmiClient`` that logs in, originates, redirects,
  lists channels, reconnects after the restart... exactly as in the adapter tests; the baseline is
  panoramisk's own ``Manager`` over the same replays on a socket, sending the same recorded actions and
  receiving the same events (no mapping). Ratio = engine AMI events/s / Manager AMI events/s.
* the mapping alone: panoramisk's bare parser (``AMIProtocol.data_received``, no socket) over the captured
  bytes, against the same parse plus our mapping (``CallTracker``) of the messages the engine's client got,
  replayed with the calls to the tracker the client made (recorded in an untimed pass). Ratio = events/s of
  parse + mapping / events/s of the parse alone (target 0.6).

The bench checks the work it timed: the domain events of every capture are those its recording is known to
produce (``tests/fixtures/asterisk-22/README.md``: who answered, who was busy, what AMD said, the restart...),
and the mapping's replay gives the same events as the engine's pass; otherwise it fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from callcenter.adapters.telephony.ami import AmiClient, AmiLoginError, AmiOptions, AmiServer
from callcenter.adapters.telephony.ami_events import CallTracker
from callcenter.adapters.telephony.ami_replay import AFTER_RESTART, Capture, ReplayServer, load_capture, parse_capture
from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    Connected,
    Ended,
    Failed,
    ServerDown,
    ServerUp,
)

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


def outcomes(events: list[Any]) -> list[tuple[str, ...]]:
    """The domain events as what they say (kind, call or agent, verdict), without times or ports."""
    out: list[tuple[str, ...]] = []
    for e in events:
        if isinstance(e, Failed):
            out.append(("failed", e.call_id, e.reason))
        elif isinstance(e, Answered):
            out.append(("answered", e.call_id, str(e.amd)))
        elif isinstance(e, Ended):
            out.append(("ended", e.call_id))
        elif isinstance(e, Connected):
            out.append(("connected", e.call_id, e.agent_id))
        elif isinstance(e, AgentJoined):
            out.append(("agent_joined", e.agent_id))
        elif isinstance(e, AgentLeft):
            out.append(("agent_left", e.agent_id))
        elif isinstance(e, ServerDown):
            out.append(("server_down", e.reason))
        elif isinstance(e, ServerUp):
            out.append(("server_up",))
        else:
            out.append((type(e).__name__.lower(), getattr(e, "call_id", "")))
    return out


# What each recording is known to end in (tests/fixtures/asterisk-22/README.md), as sets of outcomes
KNOWN: dict[str, set[tuple[str, ...]]] = {
    "originate_outcomes": {("answered", "cc-13800000001", "None"), ("ended", "cc-13800000001"),  # talks 4 s
                           ("failed", "cc-13800000002", "busy"), ("failed", "cc-13800000003", "no_answer"),
                           ("failed", "cc-13800000004", "congestion")},
    "answered_to_agent": {("agent_joined", "1001"), ("answered", "call-42", "None"),
                          ("connected", "call-42", "1001"), ("ended", "call-42"), ("agent_left", "1001")},
    "amd_outcomes": {("answered", "amd-13800000008", "machine"), ("answered", "amd-13800000007", "notsure"),
                     ("ended", "amd-13800000007"), ("ended", "amd-13800000008")},
    "restart_midcall": {("answered", "call-77", "None"), ("ended", "call-77"), ("server_down", "restart")},
}


def _check(ok: bool, what: object) -> None:
    if not ok:  # not an assert: it holds under python -O too
        raise RuntimeError(f"bench ami: wrong result: {what}")


def check_known(name: str, events: list[Any]) -> None:
    """The domain events of capture ``name`` hold its known outcomes, each call ending once."""
    got = outcomes(events)
    missing = KNOWN[name] - set(got)
    _check(not missing, f"{name}: missing {sorted(missing)} in {got}")
    terminal = [o[1] for o in got if o[0] in ("ended", "failed")]
    _check(len(terminal) == len(set(terminal)), f"{name}: a call ended twice: {got}")
    ups = sum(o[0] == "server_up" for o in got)
    _check(ups == (2 if name == "restart_midcall" else 1), f"{name}: {ups} ServerUp")


class _Recorder:
    """Stands in for an ``AmiClient``'s tracker during an untimed pass: forwards every call and records it (with
    the messages fed), so the mapping alone can be replayed on a fresh tracker."""

    def __init__(self, tracker: CallTracker) -> None:
        self._tracker = tracker
        self.ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fed_events: list[Any] = []  # what the messages fed gave the client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._tracker, name)
        if not callable(attr):
            return attr
        ops = self.ops

        def call(*args: Any, **kwargs: Any) -> Any:
            ops.append((name, args, kwargs))
            result = attr(*args, **kwargs)
            if name == "feed":
                self.fed_events += result
            return result

        return call


Recording = tuple[str, float, list[tuple[str, tuple[Any, ...], dict[str, Any]]]]  # server, grace, calls


async def _engine_once(captures: dict[str, Capture], after: Capture,
                       recordings: list[Recording] | None = None,
                       recorders: list[_Recorder] | None = None) -> tuple[int, int]:
    """One pass over every capture; returns (AMI events read, domain events emitted). Each capture's domain
    events are checked against its known outcomes; ``recordings`` (an untimed pass) receives the calls each
    client made to its tracker."""
    ami_events = domain = 0
    for name, template, amd, scenario in SCENARIOS:
        scripts = [captures[name]] + ([after] if name == "restart_midcall" else [])
        async with ReplayServer(*scripts) as server:
            opts = AmiOptions(dial_template=template, amd=amd, **_OPTS)
            client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "ccsecret"), opts)
            recorder = None
            if recordings is not None:
                recorder = _Recorder(client.tracker)
                client.tracker = recorder  # type: ignore[assignment]  # forwards every call
            seen: list[Any] = []
            await client.start()
            await scenario(client, seen)
            await client.aclose()
            seen += client.stream.pending()
            check_known(name, seen)
            if recorder is not None and recordings is not None:
                recordings.append((client.tracker.server, opts.settle_grace_s, recorder.ops))
                if recorders is not None:
                    recorders.append(recorder)
            ami_events += client.messages_seen
            domain += len(seen)
    async with ReplayServer(captures["bad_login"]) as server:
        client = AmiClient(AmiServer("127.0.0.1", server.port, "callcenter", "wrong"), AmiOptions(**_OPTS))
        refused = False
        try:
            await client.start()
        except AmiLoginError:
            refused = True
            domain += 1  # the login error is the domain outcome of this capture
        await client.aclose()
        _check(refused, "bad_login: the wrong secret was accepted")
    return ami_events, domain


async def _manager_once(captures: dict[str, Capture], after: Capture) -> int:
    """panoramisk's own ``Manager`` over the same replays on a socket: it logs in and sends each recorded action
    (its own ActionIDs) as the engine does, and receives every event; no mapping. Returns the events read."""
    events = 0
    for name in [s[0] for s in SCENARIOS] + ["bad_login"]:
        scripts = [captures[name]] + ([after] if name == "restart_midcall" else [])
        async with ReplayServer(*scripts) as server:
            for script in scripts:
                manager = Manager(host="127.0.0.1", port=server.port, username="callcenter",
                                  secret="wrong" if name == "bad_login" else "ccsecret", ping_delay=3600,
                                  reconnect_timeout=3600)  # no Ping, no reconnect: one connection per script
                closed = asyncio.get_running_loop().create_future()
                counted = [0]

                def count(_manager: Any, _message: Any, counted: list[int] = counted) -> None:
                    counted[0] += 1

                def lost(_manager: Any, _exc: Any, closed: asyncio.Future[None] = closed) -> None:
                    if not closed.done():
                        closed.set_result(None)

                manager.register_event("*", count)
                manager.on_disconnect = lost
                await asyncio.wait_for(manager.connect(), 10)
                # every recorded action after the Login (which the Manager sent), with its own ActionIDs and
                # without waiting for the answers (an async Originate's future waits for its OriginateResponse,
                # which the recording sends only after later actions): the server answers them in order
                last: Any = closed
                for block, _ in script.steps[1:]:
                    last = manager.send_action({k: v for k, v in block.fields if k.lower() != "actionid"})
                # the end of the script: the server closing (after a Logoff, a Shutdown, a refused login), else
                # the answer to its last action (originate_outcomes: the Logoff's Goodbye)
                await asyncio.wait_for(closed if script.closes else last, 10)
                _check(not server.unexpected, f"{name}: the Manager sent unrecorded actions {server.unexpected}")
                manager.close()
                events += counted[0]
    return events


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


def _map_once(recordings: list[Recording]) -> tuple[int, list[Any]]:
    """The mapping alone: each recorded client's calls replayed on a fresh ``CallTracker`` (the messages fed as
    the client got them). Returns (messages fed, domain events produced)."""
    fed = 0
    produced: list[Any] = []
    for server, grace, ops in recordings:
        tracker = CallTracker(server, settle_grace_s=grace)
        for name, args, kwargs in ops:
            got = getattr(tracker, name)(*args, **kwargs)
            if name == "feed":
                fed += 1
                produced += got
    return fed, produced


async def _run(repeat: int) -> dict[str, Any]:
    names = [s[0] for s in SCENARIOS] + ["bad_login"]
    captures = {name: load_capture(name) for name in names}
    after = parse_capture(AFTER_RESTART, "after_restart")
    recordings: list[Recording] = []
    recorders: list[_Recorder] = []
    await _engine_once(captures, after, recordings, recorders)  # warm-up (imports, first connections); records the calls
    await _manager_once(captures, after)
    blobs = [c.banner + c.server_bytes() for c in captures.values()] + [after.server_bytes()]
    _bare_parse(blobs)
    fed, replayed = _map_once(recordings)
    recorded = [e for rec in recorders for e in rec.fed_events]
    _check(fed > 250 and outcomes(replayed) == outcomes(recorded),
           f"the mapping's replay differs from the engine's pass: {outcomes(replayed)} != {outcomes(recorded)}")

    sides = ("engine", "manager", "parse", "map")
    seconds = dict.fromkeys(sides, 0.0)
    counts = dict.fromkeys(sides, 0)
    domain = 0
    for round_ in range(repeat):
        order = sides[round_ % 4:] + sides[:round_ % 4]  # rotating: none always first
        for side in order:
            t0 = time.perf_counter()
            if side == "engine":
                a, d = await _engine_once(captures, after)
                counts[side] += a
                domain += d
            elif side == "manager":
                counts[side] += await _manager_once(captures, after)
            elif side == "parse":
                counts[side] += _bare_parse(blobs)
            else:
                n, _ = _map_once(recordings)
                counts[side] += n
            seconds[side] += time.perf_counter() - t0
    rate = {k: counts[k] / seconds[k] for k in sides}
    parse_cost = seconds["parse"] / counts["parse"]  # per event
    map_cost = seconds["map"] / counts["map"]  # per message mapped
    mapped_rate = 1 / (parse_cost + map_cost)  # parse + mapping, per event
    return {
        "repeat": repeat,
        "captures": len(names),
        "engine": {
            "ami_events": counts["engine"],
            "domain_events": domain,
            "seconds": round(seconds["engine"], 4),
            "ami_events_per_s": round(rate["engine"], 1),
        },
        "panoramisk_manager": {
            "ami_events": counts["manager"],
            "seconds": round(seconds["manager"], 4),
            "ami_events_per_s": round(rate["manager"], 1),
        },
        "panoramisk_bare_parse": {
            "ami_events": counts["parse"],
            "seconds": round(seconds["parse"], 4),
            "ami_events_per_s": round(rate["parse"], 1),
        },
        "parse_and_mapping": {
            "messages_mapped": counts["map"],
            "mapping_seconds": round(seconds["map"], 4),
            "ami_events_per_s": round(mapped_rate, 1),
        },
        "ratio_engine_to_manager": round(rate["engine"] / rate["manager"], 4),
        "ratio_mapping_to_bare": round(mapped_rate / rate["parse"], 4),
        "target_mapping_to_bare": 0.6,
        "met": mapped_rate / rate["parse"] >= 0.6,
    }


def run(repeat: int = 20, as_json: bool = False) -> dict[str, Any]:
    """Replay every capture ``repeat`` times through the engine and through panoramisk's bare parser."""
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    # the bad_login replay logs a refused login on purpose, panoramisk's Manager every connection it loses
    quiet = [logging.getLogger(n) for n in ("callcenter.adapters.telephony.ami", "panoramisk", "panoramisk.manager")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    try:
        result = asyncio.run(_run(repeat))
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    e, m, b, p = (result[k] for k in ("engine", "panoramisk_manager", "panoramisk_bare_parse", "parse_and_mapping"))
    print(f"AMI replay of {result['captures']} real Asterisk 22 captures x {repeat}, sides interleaved in rounds")
    print(f"  over loopback, engine (AmiClient: socket + panoramisk + mapping): {e['ami_events_per_s']:>10,.0f} AMI "
          f"events/s ({e['ami_events']} events -> {e['domain_events']} domain events, each capture's known outcomes)")
    print(f"  over loopback, panoramisk's own Manager (baseline):              {m['ami_events_per_s']:>10,.0f} AMI "
          f"events/s ({m['ami_events']} events)")
    print(f"  ratio engine / Manager:                                           {result['ratio_engine_to_manager']:.3f}")
    print(f"  from memory, panoramisk's bare parser (baseline):                 {b['ami_events_per_s']:>10,.0f} AMI "
          f"events/s ({b['ami_events']} events)")
    print(f"  from memory, parser + our mapping (CallTracker):                  {p['ami_events_per_s']:>10,.0f} AMI "
          f"events/s ({p['messages_mapped']} messages mapped in {p['mapping_seconds']} s)")
    print(f"  ratio parse + mapping / bare parse:                               {result['ratio_mapping_to_bare']:.3f} "
          f"(target 0.6: {'met' if result['met'] else 'NOT met'})")
    if as_json:
        print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":  # pragma: no cover
    run(as_json=True)
