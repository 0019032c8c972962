"""``callcenter bench push``: live push latency to agent screens.

``clients`` agent browsers hold an SSE connection each to the engine's real ``/live/agent`` endpoint (real
uvicorn on 127.0.0.1, a session cookie per agent, the event bus, the stream generator). For every event one
call-style event is published on each agent's topic at once; we time its arrival at every client. The same
fan-out over a bare Starlette SSE echo server (one queue per connection, nothing else) is the baseline,
measured in the same run on the same layout: each server on its own thread, the clients in ANOTHER process
(``python -m callcenter.bench.push`` with the URLs on its stdin), so the clients' loop does not share this
process's CPU and GIL with the server it measures. The client process says on its stdout when every stream is
open and when every client got event ``i``; only then is event ``i + 1`` published. Times are
``time.monotonic()``, one clock for both processes. Every client must get every event, in order, exactly once.

Figures: per-delivery latency p50/p99 and per-event "reached every client" p50/p99, in milliseconds, with
ratios engine/baseline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from callcenter.domain.events import BenchPing


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class _ServerThread:
    """uvicorn on 127.0.0.1:0 in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve())

    def __enter__(self) -> "_ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    def call(self, fn: Callable[[], None]) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _echo_app() -> tuple[Starlette, dict[int, asyncio.Queue[str]]]:
    queues: dict[int, asyncio.Queue[str]] = {}

    async def sse(request: Request) -> StreamingResponse:
        n = int(request.path_params["n"])
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues[n] = queue

        async def gen() -> AsyncIterator[bytes]:
            yield b'data: {"type": "hello"}\n\n'
            while True:
                yield ("data: " + await queue.get() + "\n\n").encode()

        return StreamingResponse(gen(), media_type="text/event-stream")

    return Starlette(routes=[Route("/sse/{n}", sse)]), queues


async def _measure(urls: list[tuple[str, dict[str, str]]], publish: Callable[[int], Awaitable[None]],
                   events: int) -> dict[str, float]:
    n = len(urls)
    arrivals: dict[int, list[float]] = {}
    counts: dict[int, int] = {}
    done = {i: asyncio.Event() for i in range(events)}
    ready = 0
    all_ready = asyncio.Event()
    last: dict[int, int] = {}  # per client, the last event it got
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)

    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60, read=None)) as client:
        async def listen(k: int, url: str, cookies: dict[str, str]) -> None:
            nonlocal ready
            async with client.stream("GET", url, cookies=cookies) as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    now = time.monotonic()
                    data = json.loads(line[6:])
                    if data.get("type") == "hello":
                        ready += 1
                        if ready == n:
                            all_ready.set()
                        continue
                    if data.get("type") != "bench":
                        continue
                    i = int(data["i"])
                    if i != last.get(k, -1) + 1:
                        raise RuntimeError(f"bench push: client {k} got event {i} after {last.get(k)}")
                    last[k] = i
                    arrivals.setdefault(i, []).append((now - float(data["t0"])) * 1000)
                    counts[i] = counts.get(i, 0) + 1
                    if counts[i] == n:
                        done[i].set()
                    if i == events - 1 and counts[i] == n:
                        return

        tasks = [asyncio.create_task(listen(k, u, c)) for k, (u, c) in enumerate(urls)]
        await asyncio.wait_for(all_ready.wait(), 60)
        for i in range(events):
            await publish(i)
            await asyncio.wait_for(done[i].wait(), 30)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    if any(len(arrivals.get(i, [])) != n for i in range(events)):
        raise RuntimeError("bench push: an event did not reach every client exactly once")
    deliveries = [x for i in range(events) for x in arrivals[i]]
    every = [max(arrivals[i]) for i in range(events)]
    return {"p50_ms": round(_pct(deliveries, 0.5), 3), "p99_ms": round(_pct(deliveries, 0.99), 3),
            "every_p50_ms": round(_pct(every, 0.5), 3), "every_p99_ms": round(_pct(every, 0.99), 3),
            "mean_ms": round(statistics.fmean(deliveries), 3)}


def _engine(clients: int, tmp: Path) -> tuple[Any, list[tuple[str, dict[str, str]]]]:
    from callcenter.bootstrap import bootstrap
    from callcenter.services.auth import hash_secret
    from callcenter.settings import load_settings
    from callcenter.store.db import run_in_transaction
    from callcenter.store.migrate import upgrade
    from callcenter.store.models import Base, ServiceGroup, Staff, WebSession

    core = bootstrap(load_settings(database_url=f"sqlite:///{tmp / 'push.db'}"))
    upgrade(core.database)
    Base.metadata.create_all(core.database, checkfirst=True)
    now = core.clock()
    pw = hash_secret(secrets.token_urlsafe(12))  # nobody logs in with it: sessions are created below
    tokens: list[tuple[int, str]] = []

    def seed(s: Any) -> None:
        group = ServiceGroup(name="bench")
        s.add(group)
        s.flush()
        for n in range(clients):
            staff = Staff(username=f"bench{n:04d}", display_name=f"坐席{n}", password_hash=pw, role="agent",
                          service_group_id=group.id)
            s.add(staff)
            s.flush()
            token = secrets.token_urlsafe(32)
            s.add(WebSession(token_hash=hashlib.sha256(token.encode()).hexdigest(), staff_id=staff.id,
                             csrf_token=secrets.token_urlsafe(16), created_at=now, last_seen_at=now))
            tokens.append((staff.id, token))

    run_in_transaction(core.sessions, seed)
    return core, [(str(sid), {"cc_session": tok}) for sid, tok in tokens]


class _Clients:
    """The SSE clients in another process: ``python -m callcenter.bench.push`` reads the URLs and the number of
    events as one JSON line, prints ``ready`` once every stream is open, ``got <i>`` once every client has event
    ``i``, then the figures as JSON."""

    def __init__(self, urls: list[tuple[str, dict[str, str]]], events: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "callcenter.bench.push"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"urls": urls, "events": events}) + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith(word):
            self.proc.kill()
            raise RuntimeError(f"bench push: the client process said {line!r}, not {word!r}")
        return line

    def figures(self) -> dict[str, float]:
        out: dict[str, float] = json.loads(self.expect("{"))
        self.proc.wait(30)
        return out


def _over(srv: "_ServerThread", urls: list[tuple[str, dict[str, str]]], events: int,
          fire: Callable[[int], Callable[[], None]]) -> dict[str, float]:
    """Time ``events`` fan-outs (``fire(i)`` run on the server's loop) to clients in another process."""
    clients = _Clients(urls, events)
    try:
        clients.expect("ready")
        for i in range(events):
            srv.call(fire(i))
            clients.expect(f"got {i}")
        return clients.figures()
    finally:
        if clients.proc.poll() is None:
            clients.proc.kill()


def run(clients: int = 200, events: int = 200, as_json: bool = False) -> dict[str, Any]:
    """Measure both servers; print a table (and, with ``as_json``, the figures as JSON on the last line)."""
    from callcenter.web.app import create_app

    with tempfile.TemporaryDirectory() as tmpdir:
        core, agents = _engine(clients, Path(tmpdir))
        try:
            app = create_app(core)
            with _ServerThread(app) as srv:
                staff_ids = [int(sid) for sid, _ in agents]
                base = f"http://127.0.0.1:{srv.port}"

                def fire_engine(i: int) -> Callable[[], None]:
                    def fire() -> None:
                        t0 = time.monotonic()
                        for sid in staff_ids:
                            core.bus.emit(BenchPing(staff_id=sid, i=i, t0=t0))
                    return fire

                engine = _over(srv, [(base + "/live/agent", c) for _, c in agents], events, fire_engine)
        finally:
            core.close()

    echo_app, queues = _echo_app()
    with _ServerThread(echo_app) as srv:
        base = f"http://127.0.0.1:{srv.port}"

        def fire_echo(i: int) -> Callable[[], None]:
            def fire() -> None:
                t0 = time.monotonic()
                payload = json.dumps({"type": "bench", "i": i, "t0": t0})
                for q in list(queues.values()):
                    q.put_nowait(payload)
            return fire

        baseline = _over(srv, [(f"{base}/sse/{n}", {}) for n in range(clients)], events, fire_echo)

    figures: dict[str, Any] = {"clients": clients, "events": events, "clients_process": "separate",
                               "engine": engine, "baseline": baseline,
                               "ratio_p50": round(engine["p50_ms"] / baseline["p50_ms"], 2) if baseline["p50_ms"] else None,
                               "ratio_p99": round(engine["p99_ms"] / baseline["p99_ms"], 2) if baseline["p99_ms"] else None,
                               "ratio_every_p99": round(engine["every_p99_ms"] / baseline["every_p99_ms"], 2)
                               if baseline["every_p99_ms"] else None}
    print(f"bench push: {clients} SSE clients (in another process), {events} events each fanned out to every client")
    print(f"{'':28}{'engine /live/agent':>20}{'bare SSE echo':>16}{'ratio':>8}")
    for key, label in (("p50_ms", "delivery p50 (ms)"), ("p99_ms", "delivery p99 (ms)"),
                       ("every_p50_ms", "reached all p50 (ms)"), ("every_p99_ms", "reached all p99 (ms)")):
        ratio = engine[key] / baseline[key] if baseline[key] else float("nan")
        print(f"{label:28}{engine[key]:>20.2f}{baseline[key]:>16.2f}{ratio:>8.2f}")
    if as_json:
        print(json.dumps(figures, separators=(",", ":")))
    return figures


def _client_main() -> None:
    """The client process: the streams on this loop; ``ready`` / ``got <i>`` / the figures on stdout."""
    job = json.loads(sys.stdin.readline())
    urls = [(u, dict(c)) for u, c in job["urls"]]
    loop = asyncio.new_event_loop()
    said = {"ready": False}

    async def publish(i: int) -> None:
        # the parent publishes: tell it the previous event reached everyone (or that all streams are open)
        if not said["ready"]:
            print("ready", flush=True)
            said["ready"] = True
        else:
            print(f"got {i - 1}", flush=True)

    figures = loop.run_until_complete(_measure(urls, publish, int(job["events"])))
    print(f"got {int(job['events']) - 1}", flush=True)
    print(json.dumps(figures), flush=True)
    loop.run_until_complete(loop.shutdown_asyncgens())  # the cancelled streams' generators closed here
    loop.close()


if __name__ == "__main__":  # the client process of ``run``
    _client_main()
