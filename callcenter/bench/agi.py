"""``callcenter bench agi``: concurrent FastAGI hotline calls against a minimal echo FastAGI server.

Each IVR call is a full authentication + balance query run by the real FastAGI adapter, interpreter
and hotline flow against FakeIvrBackend, driven by a fake Asterisk over 127.0.0.1.  The baseline is
a bare panoramisk FastAGI application that answers the same number of commands per call with NOOPs,
measured in the same run by the same fake Asterisk.  Turnaround = time from Asterisk's answer to
the server's next command.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from panoramisk.fast_agi import Application, Request

from callcenter.ivr.agi import AgiConfig, start_agi_server
from callcenter.ivr.backend import demo_backend
from callcenter.ivr.testing import FakeCall, run_fake_call

AUTH_AND_BALANCE = ["1", "1234567890123456", "123456", "1", "hangup"]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(port: int, calls: int, concurrency: int) -> tuple[float, list[FakeCall]]:
    gate = asyncio.Semaphore(concurrency)
    done: list[FakeCall] = []

    async def one(i: int) -> None:
        async with gate:
            call = FakeCall(list(AUTH_AND_BALANCE), uniqueid=f"bench-{i}")
            done.append(await run_fake_call("127.0.0.1", port, call))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(calls):
            group.create_task(one(i))
    return time.perf_counter() - started, done


async def _run(calls: int, concurrency: int) -> dict[str, Any]:
    backend = demo_backend()
    server, _app = await start_agi_server(backend, "127.0.0.1", 0, config=AgiConfig())
    async with server:
        port = server.sockets[0].getsockname()[1]
        ivr_s, ivr_calls = await _drive(port, calls, concurrency)
    failures = sum(1 for c in ivr_calls if not any(c.commands("SAY DIGITS")))  # balances read out
    per_call = max(1, round(statistics.mean(len(c.transcript) for c in ivr_calls)))

    async def echo(request: Request) -> None:
        for _ in range(per_call):
            await request.send_command("NOOP echo")

    echo_app = Application()
    echo_app.add_route("hotline", echo)
    echo_server = await asyncio.start_server(echo_app.handler, "127.0.0.1", 0)
    async with echo_server:
        port = echo_server.sockets[0].getsockname()[1]
        echo_s, echo_calls = await _drive(port, calls, concurrency)

    ivr_turn = [t for c in ivr_calls for t in c.turnarounds]
    echo_turn = [t for c in echo_calls for t in c.turnarounds]
    result: dict[str, Any] = {
        "calls": calls,
        "concurrency": concurrency,
        "commands_per_call": per_call,
        "failed_calls": failures,
        "ivr_calls_per_s": round(calls / ivr_s, 1),
        "echo_calls_per_s": round(calls / echo_s, 1),
        "ivr_p50_ms": round(_pct(ivr_turn, 0.50) * 1000, 3),
        "ivr_p99_ms": round(_pct(ivr_turn, 0.99) * 1000, 3),
        "echo_p50_ms": round(_pct(echo_turn, 0.50) * 1000, 3),
        "echo_p99_ms": round(_pct(echo_turn, 0.99) * 1000, 3),
        "transfers_made": len(backend.transfers),
    }
    result["calls_per_s_ratio"] = round(result["ivr_calls_per_s"] / result["echo_calls_per_s"], 3)
    result["p50_ratio"] = round(result["ivr_p50_ms"] / result["echo_p50_ms"], 2) if result["echo_p50_ms"] else None
    result["p99_ratio"] = round(result["ivr_p99_ms"] / result["echo_p99_ms"], 2) if result["echo_p99_ms"] else None
    return result


def run(calls: int = 500, concurrency: int = 200, as_json: bool = False) -> dict[str, Any]:
    """Run the benchmark; print a table (and with ``as_json`` one JSON object as the last line)."""
    result = asyncio.run(_run(calls, concurrency))
    print(f"FastAGI hotline: {calls} calls (auth + balances), {concurrency} at a time, "
          f"{result['commands_per_call']} AGI commands per call, {result['failed_calls']} failed")
    print(f"{'':18}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'hotline IVR':18}{result['ivr_calls_per_s']:>10}{result['ivr_p50_ms']:>10}{result['ivr_p99_ms']:>10}")
    print(f"{'echo (baseline)':18}{result['echo_calls_per_s']:>10}{result['echo_p50_ms']:>10}"
          f"{result['echo_p99_ms']:>10}")
    print(f"{'ratio IVR/echo':18}{result['calls_per_s_ratio']:>10}{result['p50_ratio']!s:>10}"
          f"{result['p99_ratio']!s:>10}")
    if as_json:
        print(json.dumps(result, sort_keys=True))
    return result
