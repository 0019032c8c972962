"""The clients of ``callcenter bench loop``, run in their own process (so the engine's figures do not include the
clients' CPU time): reads a JSON spec on stdin, drives the web requests and the FastAGI calls at the same time,
prints one JSON object of measurements on stdout.

Spec::

    {"web": {"base": "http://127.0.0.1:PORT", "rate": 40.0, "concurrency": 4,
             "requests": [{"kind": "desk_status", "path": "/api/desk/status", "token": "..."}, ...]},
     "agi": {"host": "127.0.0.1", "port": PORT, "concurrency": 2, "calls": [{"inputs": [...], "uniqueid": "...",
             "callerid": "..."}, ...]}}

Web: request ``i`` is sent at ``start + i / rate`` (or at once when every worker was busy: then it is late, and
its latency counts from when it was sent), by ``concurrency`` workers over one ``httpx.AsyncClient``; each
answer gives ``{"kind", "status", "s"}``. FastAGI: per call, the turnarounds (from our answer to the engine's next
command) without the one after the PIN (the argon2 check, reported as ``pin_wait_s``), and whether the balances
were read (:func:`callcenter.bench.agi_clients.measure`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from callcenter.bench.agi_clients import measure
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call


async def drive_web(spec: dict[str, Any]) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = list(spec["requests"])
    rate = float(spec["rate"])
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for i, r in enumerate(requests):
        queue.put_nowait((i, r))
    results: list[dict[str, Any]] = []
    start = time.perf_counter() + 0.05
    limits = httpx.Limits(max_connections=int(spec["concurrency"]) + 2)
    async with httpx.AsyncClient(base_url=spec["base"], limits=limits, timeout=60.0) as client:
        async def worker() -> None:
            while True:
                try:
                    i, r = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                headers = {"Authorization": f"Bearer {r['token']}"} if r.get("token") else {}
                sent = time.perf_counter()
                try:
                    resp = await client.get(r["path"], headers=headers)
                    await resp.aread()
                    status = resp.status_code
                except httpx.HTTPError:
                    status = 0
                results.append({"kind": r["kind"], "status": status, "s": time.perf_counter() - sent})

        await asyncio.gather(*(worker() for _ in range(int(spec["concurrency"]))))
    return results


def measure_call(call: FakeCall) -> dict[str, Any]:
    out = measure(call)
    commands = [c for _, c in call.timeline]
    pin = next((i for i, c in enumerate(commands) if c.startswith("GET DATA") and "/enter_pin" in c), None)
    out["turnarounds"] = [t for i, t in enumerate(call.turnarounds) if i != pin]
    return out


async def drive_agi(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(int(spec["concurrency"]))
    results: list[dict[str, Any]] = []

    async def one(c: dict[str, Any]) -> None:
        async with gate:
            call = await run_fake_call(spec["host"], int(spec["port"]),
                                       FakeCall(list(c["inputs"]), uniqueid=c["uniqueid"], callerid=c["callerid"]),
                                       timeout_s=60.0)
            results.append(measure_call(call))

    await asyncio.gather(*(one(c) for c in spec["calls"]))
    return results


async def place(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    web, agi = await asyncio.gather(drive_web(spec["web"]), drive_agi(spec["agi"]))
    return {"web": web, "agi": agi, "seconds": time.perf_counter() - started}


def main() -> None:
    spec = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(asyncio.run(place(spec))) + "\n")


if __name__ == "__main__":
    main()
