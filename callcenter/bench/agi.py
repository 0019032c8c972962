"""``callcenter bench agi``: concurrent FastAGI hotline calls, on the in-memory backend and on the store backend,
against a minimal echo FastAGI server measured in the same run.

Each IVR call is a full authentication + balance query run by the real FastAGI adapter, interpreter and hotline
flow.  The fake Asterisks run in another process (:mod:`callcenter.bench.agi_clients`) over 127.0.0.1.

* in-memory: ``calls`` calls, ``concurrency`` at a time, against FakeIvrBackend (no hashing, no database);
* store: ``store_callers`` callers authenticating at once against StoreIvrBackend on a real database (a fresh
  SQLite file, or ``--database-url``), each account with its own PIN hashed by argon2 with the configured
  parameters, the checks bounded by the hashing pool (``argon2_workers``); reported: the wait after the PIN
  (until the caller hears the outcome) and the silence after it (until the first sound, "请稍候" or the outcome);
* echo (baseline): a bare panoramisk FastAGI application answering the same number of commands per call with NOOPs.

Turnaround = time from Asterisk's answer to the server's next command.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from panoramisk.fast_agi import Application, Request

from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.services.ivr.backend import demo_backend

AUTH_AND_BALANCE = ["1", "1234567890123456", "123456", "1", "hangup"]
TRADING_MORNING = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)  # 10:30 Shanghai, a trading day


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(value: float) -> float:
    return round(value * 1000, 1)


async def _drive(port: int, calls: list[dict[str, Any]], concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    """Place the calls from a separate client process; (seconds, per-call measurements)."""
    spec = {"host": "127.0.0.1", "port": port, "concurrency": concurrency, "calls": calls}
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callcenter.bench.agi_clients",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(json.dumps(spec).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"bench clients exited with {proc.returncode}")
    return time.perf_counter() - started, json.loads(out)["calls"]


def _summary(seconds: float, calls: list[dict[str, Any]]) -> dict[str, Any]:
    turns = [t for c in calls for t in c["turnarounds"]]
    waits = [c["pin_wait_s"] for c in calls if c.get("pin_wait_s") is not None]
    silences = [c["silence_s"] for c in calls if c.get("silence_s") is not None]
    return {
        "calls": len(calls), "calls_per_s": round(len(calls) / seconds, 1),
        "failed_calls": sum(1 for c in calls if not c["balances_read"]),
        "p50_ms": round(_pct(turns, 0.50) * 1000, 3), "p99_ms": round(_pct(turns, 0.99) * 1000, 3),
        "pin_wait_p50_ms": _ms(_pct(waits, 0.50)), "pin_wait_p99_ms": _ms(_pct(waits, 0.99)),
        "silence_p50_ms": _ms(_pct(silences, 0.50)), "silence_p99_ms": _ms(_pct(silences, 0.99)),
        "please_wait_played": sum(1 for c in calls if c["please_wait"]),
        "commands_per_call": max(1, round(statistics.mean(c["commands"] for c in calls))) if calls else 0,
    }


def _store_core(database_url: str | None, callers: int) -> tuple[Any, list[tuple[str, str]], Any]:
    """A migrated database with ``callers`` clients, each with its own PIN hashed by argon2."""
    from callcenter.bootstrap import bootstrap
    from callcenter.services.auth import hash_secret
    from callcenter.settings import load_settings
    from callcenter.store.db import make_engine, run_in_transaction
    from callcenter.bench.seeding import add_bench_client
    from callcenter.store.migrate import upgrade
    from callcenter.store.models import Base

    tmp = None
    if database_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="cc-bench-agi-")
        database_url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(database_url, pool_size=20)
    upgrade(engine)
    Base.metadata.create_all(engine, checkfirst=True)
    core = bootstrap(load_settings(database_url=database_url), database=engine, clock=lambda: TRADING_MORNING)
    tag = f"{int(time.time()) % 100000:05d}"
    pins = [f"{(135790 + 7919 * i) % 900000 + 100000}" for i in range(callers)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # argon2 releases the GIL
        hashes = list(pool.map(hash_secret, pins))

    def work(s: Any) -> list[str]:
        numbers = []
        for i, pin_hash in enumerate(hashes):
            numbers.append(add_bench_client(s, client_no=f"A{tag}{i:05d}", mobile=f"+86139{i:08d}",
                                            account_no=f"7{tag}{i:06d}", pin_hash=pin_hash, now=TRADING_MORNING))
        return numbers

    numbers = run_in_transaction(core.sessions, work)
    return core, list(zip(numbers, pins)), tmp


async def _run(calls: int, concurrency: int, store_callers: int, database_url: str | None) -> dict[str, Any]:
    # 1. in-memory backend
    backend = demo_backend()
    server, app = await start_agi_server(backend, "127.0.0.1", 0, config=AgiConfig())
    async with server:
        port = server.sockets[0].getsockname()[1]
        mem_s, mem_calls = await _drive(port, [{"inputs": AUTH_AND_BALANCE, "uniqueid": f"bench-{i}"}
                                               for i in range(calls)], concurrency)
    app.close()
    memory = _summary(mem_s, mem_calls)

    # 2. store backend: real database, real argon2 hashes, all callers at once
    store: dict[str, Any] = {}
    if store_callers:
        core, accounts, tmp = await asyncio.to_thread(_store_core, database_url, store_callers)
        try:
            config = AgiConfig(max_connections=max(500, store_callers))
            server, app = await start_agi_server(core.ivr, "127.0.0.1", 0, config=config)
            async with server:
                port = server.sockets[0].getsockname()[1]
                # 200 different callers (own caller ID each): one caller ID trying 200 accounts at once is a PIN
                # sprayer, and the per-caller throttle holds all but its first few attempts (hardening 6)
                st_s, st_calls = await _drive(port, [{"inputs": ["1", f"{acc}", pin, "1", "hangup"],
                                                      "uniqueid": f"store-{i}", "callerid": f"1390000{i:04d}"}
                                                     for i, (acc, pin) in enumerate(accounts)], store_callers)
            app.close()
            store = _summary(st_s, st_calls)
            store.update(hash_workers=core.hash_pool.workers, hash_peak_waiting=core.hash_pool.peak_waiting,
                         database=core.database.dialect.name)
        finally:
            core.close()
            if tmp is not None:
                tmp.cleanup()

    # 3. baseline: echo server, the same number of commands per call
    per_call = memory["commands_per_call"]

    async def echo(request: Request) -> None:
        for _ in range(per_call):
            await request.send_command("NOOP echo")

    echo_app = Application()
    echo_app.add_route("hotline", echo)
    echo_server = await asyncio.start_server(echo_app.handler, "127.0.0.1", 0)
    async with echo_server:
        port = echo_server.sockets[0].getsockname()[1]
        echo_s, echo_calls = await _drive(port, [{"inputs": AUTH_AND_BALANCE, "uniqueid": f"echo-{i}"}
                                                 for i in range(calls)], concurrency)
    echo_turn = [t for c in echo_calls for t in c["turnarounds"]]
    result: dict[str, Any] = {
        "calls": calls, "concurrency": concurrency, "commands_per_call": per_call,
        "failed_calls": memory["failed_calls"],
        "ivr_calls_per_s": memory["calls_per_s"], "echo_calls_per_s": round(calls / echo_s, 1),
        "ivr_p50_ms": memory["p50_ms"], "ivr_p99_ms": memory["p99_ms"],
        "echo_p50_ms": round(_pct(echo_turn, 0.50) * 1000, 3), "echo_p99_ms": round(_pct(echo_turn, 0.99) * 1000, 3),
        "transfers_made": len(backend.transfers),
        "memory": memory, "store": store,
    }
    result["calls_per_s_ratio"] = round(result["ivr_calls_per_s"] / result["echo_calls_per_s"], 3)
    result["p50_ratio"] = round(result["ivr_p50_ms"] / result["echo_p50_ms"], 2) if result["echo_p50_ms"] else None
    result["p99_ratio"] = round(result["ivr_p99_ms"] / result["echo_p99_ms"], 2) if result["echo_p99_ms"] else None
    return result


def run(calls: int = 500, concurrency: int = 200, as_json: bool = False, store_callers: int = 200,
        database_url: str | None = None) -> dict[str, Any]:
    """Run the benchmark; print a table (and with ``as_json`` one JSON object as the last line)."""
    result = asyncio.run(_run(calls, concurrency, store_callers, database_url))
    m, st = result["memory"], result["store"]
    print(f"FastAGI hotline: auth + balances, {result['commands_per_call']} AGI commands per call; "
          f"fake Asterisks in a separate process")
    print(f"{'':34}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'PIN wait p50/p99 ms':>22}{'silence p99':>13}")
    mem_label = f"in-memory ({calls} calls, {concurrency} at once)"
    mem_wait = f"{m['pin_wait_p50_ms']}/{m['pin_wait_p99_ms']}"
    print(f"{mem_label:34}{m['calls_per_s']:>9}{m['p50_ms']:>9}{m['p99_ms']:>9}{mem_wait:>22}{m['silence_p99_ms']:>13}")
    if st:
        label = f"store, {st['database']} ({st['calls']} at once)"
        st_wait = f"{st['pin_wait_p50_ms']}/{st['pin_wait_p99_ms']}"
        print(f"{label:34}{st['calls_per_s']:>9}{st['p50_ms']:>9}{st['p99_ms']:>9}{st_wait:>22}{st['silence_p99_ms']:>13}")
        print(f"{'':34}argon2 pool {st['hash_workers']} workers, peak {st['hash_peak_waiting']} waiting; "
              f"请稍候 played to {st['please_wait_played']} callers; {st['failed_calls']} failed")
    print(f"{'echo (baseline)':34}{result['echo_calls_per_s']:>9}{result['echo_p50_ms']:>9}{result['echo_p99_ms']:>9}")
    print(f"{'ratio IVR/echo (in-memory)':34}{result['calls_per_s_ratio']:>9}{result['p50_ratio']!s:>9}"
          f"{result['p99_ratio']!s:>9}")
    if as_json:
        print(json.dumps(result, sort_keys=True))
    return result
