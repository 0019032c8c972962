"""``callcenter bench loop``: does the dialler slow the web and the hotline down?  Web request latency, FastAGI
command turnaround and event-loop lag with the dialler busy on ``agents`` agents, next to the same with the
dialler idle, measured in the same run on the same engine.

One process, one event loop, as ``callcenter serve``: ``runtime.run_engine`` with the web part (uvicorn on a port
the OS chose), the FastAGI part (``serve_agi``) and the dialler part (``parts.dialer.dialer_runner``) on the
configured database (a fresh SQLite file in a temporary folder by default; ``--database-url`` for PostgreSQL)
and the simulated PBX in real time with a fast customer model (``FAST_MODEL``: answers in 1-3 s, talks about
5-20 s, 1.5 s of wrap-up that the simulated agents end by themselves), so ``agents`` agents keep the dialler busy.

Seeded with a tag of its own (nothing else in the database is touched): ``agents`` agents and a supervisor,
each with a bearer token; ``agi_accounts`` clients with a fund account and an argon2-hashed PIN; a ``mode``
campaign (progressive or predictive; calling window all day, every day) assigned to the agents, with ``leads``
leads (one Core insert); every agent logged in and ready.

* phase ``idle``: the campaign is paused, so the dialler (running, syncing its agents) has nothing to dial;
* phase ``load``: the campaign is resumed; once the agents are talking (at least ``busy_share`` of them on a
  call, or after ``warm_s``) the same measurements are repeated while it dials.

The phases alternate ``rounds`` times (idle, load, idle, load, ...: the campaign paused again after each load
phase and its calls left to end before the next idle one), so a drift of the machine (other work on a shared
host) weighs on both alike; each phase of a round gets the same share of the requests and calls, and the
figures of a kind pool its rounds' samples (each round's p99 is reported too). The load phases count only when
the dialler really worked: calls connected to agents, and most attempts started in the phase also ended in it
(``kept_up``: their outcome recorded, ``KEPT_UP`` of them at least); else the target is not met whatever the
latencies.

Each phase, from a client process of its own (:mod:`callcenter.bench.loop_clients`): ``requests`` web requests at
``rate`` a second, ``concurrency`` at a time, the mix a screen makes (3/5 ``GET /api/desk/status`` as an agent,
1/5 ``GET /healthz``, 1/5 the wall board page as the supervisor), and at the same time ``agi_calls`` hotline calls
(authentication + balances, ``agi_concurrency`` at a time) with every command's turnaround (from the fake
Asterisk's answer to the engine's next command; the one after the PIN, the argon2 check, is reported apart as
the PIN wait). In the engine process, the loop's lag is sampled every 10 ms (``watch_loop_lag``) and the PBX's
calls every 250 ms; the dialler's attempts started, connected and ended (their outcome recorded: whether the
dialler keeps up with its calls' events) in the phase are counted in the database.

Printed: p50/p99 of each figure per phase and the ratio load/idle (target: p99 under load within 1.5x of idle);
with ``as_json`` one JSON object on the last line. The campaign is stopped and the agents logged out at the end.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import random
import secrets
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, time as dtime
from pathlib import Path
from typing import Any

FAST_MODEL: dict[str, float] = {
    "p_human": 0.5, "p_machine": 0.1, "p_busy": 0.1, "p_no_answer": 0.25, "p_failed": 0.05,
    "human_answer_min_s": 1.0, "human_answer_max_s": 3.0, "machine_s": 1.5, "busy_s": 1.0, "no_answer_s": 4.0,
    "failed_s": 0.5, "talk_mean_s": 10.0, "talk_sd_s": 4.0, "wrap_up_s": 1.5,
}
TARGET_RATIO = 1.5
KEPT_UP = 0.6  # share of the load phases' attempts whose outcome was recorded within the phases
MODES = ("progressive", "predictive")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(value: float) -> float:
    return round(value * 1000, 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Seeded:
    tag: str
    campaign_id: int
    staff_ids: list[int]
    agent_tokens: list[str]
    supervisor_token: str
    accounts: list[tuple[str, str]]  # (fund account number, PIN)
    other_running: int  # campaigns of earlier runs still running in this database (they dial too)


def _seed(core: Any, *, agents: int, leads: int, agi_accounts: int, mode: str) -> Seeded:
    from sqlalchemy import func, insert, select, update

    from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, create_campaign
    from callcenter.services.auth import hash_secret
    from callcenter.store.db import run_in_transaction
    from callcenter.bench.seeding import add_bench_client
    from callcenter.store.models import Staff, WebSession
    from callcenter.store.models.dialer import Campaign, Lead

    now = core.clock()
    tag = f"{random.SystemRandom().randrange(10000):04d}"
    pins = [f"{(246813 + 7919 * i) % 900000 + 100000}" for i in range(agi_accounts)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # argon2 releases the GIL
        hashes = list(pool.map(hash_secret, pins))
    agent_tokens = [secrets.token_urlsafe(32) for _ in range(agents)]
    supervisor_token = secrets.token_urlsafe(32)

    def people(s: Any) -> tuple[list[int], list[str], int]:
        other = s.execute(select(func.count(Campaign.id)).where(Campaign.state == "running")).scalar_one()
        ids = []
        for i, token in enumerate([*agent_tokens, supervisor_token]):
            sup = i == agents
            staff = Staff(username=f"loop{tag}{'sup' if sup else f'a{i:03d}'}", display_name=f"压测{i:03d}",
                          password_hash="!", role="supervisor" if sup else "agent")
            s.add(staff)
            s.flush()
            s.add(WebSession(token_hash=hashlib.sha256(token.encode()).hexdigest(), staff_id=staff.id,
                             csrf_token=secrets.token_urlsafe(16), created_at=now, last_seen_at=now))
            if not sup:
                ids.append(staff.id)
        numbers = []
        for i, pin_hash in enumerate(hashes):
            numbers.append(add_bench_client(s, client_no=f"L{tag}{i:05d}", mobile=f"+86137{tag}{i:04d}",
                                            account_no=f"8{tag}{i:06d}", pin_hash=pin_hash, now=now))
        return ids, numbers, other

    staff_ids, numbers, other = run_in_transaction(core.sessions, people)
    cid = create_campaign(core, name=f"压测 loop {tag}", kind="cold_leads", script_id="cold_call", dial_mode=mode,
                          window_start=dtime(0, 0), window_end=dtime(23, 59, 59), days="every", max_attempts=3,
                          retry_delays={"busy": 5, "no_answer": 30, "machine": 60, "failed": 10, "abandoned": 15})
    assign_campaign(core, cid, staff_ids=staff_ids)

    def paused(s: Any) -> None:  # started and paused at once (no call placed): the idle phases' state
        s.execute(update(Campaign).where(Campaign.id == cid).values(state="paused", started_at=now, updated_at=now))

    run_in_transaction(core.sessions, paused)
    rows = [{"campaign_id": cid, "name": f"客户{i}", "phone": f"+8613{tag}{i:05d}", "timezone": core.settings.timezone,
             "priority": i % 3, "status": "new", "attempts": 0, "extra": {}, "created_at": now, "updated_at": now}
            for i in range(leads)]

    def add_leads(s: Any) -> None:
        for start in range(0, len(rows), 2000):
            s.execute(insert(Lead), rows[start:start + 2000])

    run_in_transaction(core.sessions, add_leads)
    for sid in staff_ids:
        agent_login(core, sid, campaign_id=cid)
        agent_ready(core, sid)
    return Seeded(tag, cid, staff_ids, agent_tokens, supervisor_token, list(zip(numbers, pins)), other)


def _finish(core: Any, seeded: Seeded) -> None:
    """Stop the campaign and log the agents out (a shared database is left with nothing of ours dialling)."""
    from sqlalchemy import update

    from callcenter.services.dialer.campaigns import DialerError, stop_campaign
    from callcenter.store.db import run_in_transaction
    from callcenter.store.models.dialer import AgentSession

    try:
        stop_campaign(core, seeded.campaign_id)
    except DialerError:
        pass
    now = core.clock()
    run_in_transaction(core.sessions, lambda s: s.execute(
        update(AgentSession).where(AgentSession.staff_id.in_(seeded.staff_ids), AgentSession.ended_at.is_(None))
        .values(state="logged_out", state_since=now, ended_at=now, dialer_id=None, lease_until=None)))


def _dialer_counts(core: Any, campaign_id: int) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from callcenter.store.db import run_in_transaction
    from callcenter.store.models.dialer import Attempt

    def work(s: Any) -> tuple[int, int, int]:
        attempts, connected, ended = s.execute(
            select(func.count(Attempt.id), func.count(Attempt.connected_at), func.count(Attempt.ended_at))
            .where(Attempt.campaign_id == campaign_id)).one()
        return int(attempts), int(connected), int(ended)

    return run_in_transaction(core.sessions, work)


async def _run_clients(spec: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callcenter.bench.loop_clients",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(json.dumps(spec).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"bench loop clients exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def _lag_hist(core: Any) -> tuple[float, float]:
    """(count, sum) of the engine's own loop-lag histogram (``callcenter_event_loop_lag_distribution_seconds``)."""
    count = total = 0.0
    for metric in core.metrics.loop_lag_hist.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    return count, total


def _web_figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in results if r["status"] == 200]
    out: dict[str, Any] = {"requests": len(results), "ok": len(ok), "failed": len(results) - len(ok),
                           "p50_ms": _ms(_pct([r["s"] for r in ok], 0.5)),
                           "p99_ms": _ms(_pct([r["s"] for r in ok], 0.99)), "by_kind": {}}
    for kind in sorted({r["kind"] for r in results}):
        mine = [r["s"] for r in ok if r["kind"] == kind]
        out["by_kind"][kind] = {"requests": sum(1 for r in results if r["kind"] == kind), "ok": len(mine),
                                "p50_ms": _ms(_pct(mine, 0.5)), "p99_ms": _ms(_pct(mine, 0.99))}
    return out


def _agi_figures(calls: list[dict[str, Any]]) -> dict[str, Any]:
    turns = [t for c in calls for t in c["turnarounds"]]
    waits = [c["pin_wait_s"] for c in calls if c.get("pin_wait_s") is not None]
    return {"calls": len(calls), "failed_calls": sum(1 for c in calls if not c["balances_read"]),
            "turnarounds": len(turns), "p50_ms": _ms(_pct(turns, 0.5)), "p99_ms": _ms(_pct(turns, 0.99)),
            "pin_wait_p50_ms": _ms(_pct(waits, 0.5)), "pin_wait_p99_ms": _ms(_pct(waits, 0.99))}


@dataclass(frozen=True)
class Sizes:
    agents: int
    leads: int
    requests: int
    rate: float
    concurrency: int
    agi_calls: int
    agi_concurrency: int
    agi_accounts: int
    mode: str
    warm_s: float
    busy_share: float
    rounds: int


@dataclass
class Raw:
    """One phase of one round: the samples, pooled with the other rounds' of the same kind."""

    web: list[dict[str, Any]]
    agi: list[dict[str, Any]]
    lags: list[float]
    pbx: list[tuple[int, int]]  # (calls in flight, of them connected to an agent), every 250 ms
    counts: tuple[int, int, int]  # attempts started, connected, ended in the phase
    campaign: tuple[int, int, int]  # the campaign's totals at the end of the phase
    hist: tuple[float, float]  # the engine's loop-lag histogram (count, sum) over the phase
    seconds: float


async def _phase(name: str, index: int, core: Any, pbx: Any, seeded: Seeded, sizes: Sizes, web_base: str,
                 agi_port: int) -> Raw:
    """One phase's measurements (``warmup``: a short round first, whose figures are dropped: first connections,
    templates, the database's caches). ``index``: the phase's number in the run (distinct caller IDs)."""
    from callcenter.services.metrics import watch_loop_lag

    kinds = ("desk_status", "desk_status", "desk_status", "healthz", "wallboard")
    requests: list[dict[str, str | None]] = []
    n_requests = min(sizes.requests, 50) if name == "warmup" else sizes.requests // sizes.rounds
    n_calls = min(sizes.agi_calls, 2) if name == "warmup" else sizes.agi_calls // sizes.rounds
    for i in range(n_requests):
        kind = kinds[i % len(kinds)]
        if kind == "desk_status":
            requests.append({"kind": kind, "path": "/api/desk/status",
                             "token": seeded.agent_tokens[i % len(seeded.agent_tokens)]})
        elif kind == "healthz":
            requests.append({"kind": kind, "path": "/healthz", "token": None})
        else:
            requests.append({"kind": kind, "path": "/supervisor/wallboard", "token": seeded.supervisor_token})
    offset = index * n_calls  # a caller ID per call
    calls = [{"inputs": ["1", acc, pin, "1", "hangup"], "uniqueid": f"loop-{seeded.tag}-{name}{index}-{i}",
              "callerid": f"1380{seeded.tag}{(offset + i) % 1000:03d}"}
             for i, (acc, pin) in ((i, seeded.accounts[i % len(seeded.accounts)]) for i in range(n_calls))]
    spec = {"web": {"base": web_base, "rate": sizes.rate, "concurrency": sizes.concurrency, "requests": requests},
            "agi": {"host": "127.0.0.1", "port": agi_port, "concurrency": sizes.agi_concurrency, "calls": calls}}

    lags: list[float] = []
    pbx_samples: list[tuple[int, int]] = []
    done = asyncio.Event()

    async def watch_pbx() -> None:
        while not done.is_set():
            pbx_samples.append((pbx.in_flight(), _talking(pbx)))
            try:
                await asyncio.wait_for(done.wait(), 0.25)
            except TimeoutError:
                pass

    before = await asyncio.to_thread(_dialer_counts, core, seeded.campaign_id)
    hist_before = _lag_hist(core)
    lag_task = asyncio.create_task(watch_loop_lag(lags.append, done, 0.01))
    pbx_task = asyncio.create_task(watch_pbx())
    started = time.perf_counter()
    try:
        clients = await _run_clients(spec)
    finally:
        done.set()
        await asyncio.gather(lag_task, pbx_task)
    seconds = time.perf_counter() - started
    after = await asyncio.to_thread(_dialer_counts, core, seeded.campaign_id)
    hist_after = _lag_hist(core)
    return Raw(clients["web"], clients["agi"], lags, pbx_samples,
               (after[0] - before[0], after[1] - before[1], after[2] - before[2]), after,
               (hist_after[0] - hist_before[0], hist_after[1] - hist_before[1]), seconds)


def _talking(pbx: Any) -> int:
    return sum(1 for c in list(pbx.calls.values()) if c.state == "connected")


def _figures(raws: list[Raw]) -> dict[str, Any]:
    """A phase kind's figures over its rounds (samples pooled; each round's p99 kept to show the drift)."""
    lags = [x for r in raws for x in r.lags]
    pbx = [x for r in raws for x in r.pbx]
    seconds = sum(r.seconds for r in raws)
    attempts, connects, ended = (sum(r.counts[i] for r in raws) for i in range(3))
    n_hist, sum_hist = sum(r.hist[0] for r in raws), sum(r.hist[1] for r in raws)
    last = raws[-1].campaign
    return {
        "seconds": round(seconds, 2),
        "web": _web_figures([x for r in raws for x in r.web]), "agi": _agi_figures([x for r in raws for x in r.agi]),
        "loop_lag": {"samples": len(lags), "p50_ms": _ms(_pct(lags, 0.5)), "p99_ms": _ms(_pct(lags, 0.99)),
                     "max_ms": _ms(max(lags, default=0.0)),
                     "metrics_mean_ms": _ms(sum_hist / n_hist) if n_hist else None},
        "dialer": {"attempts": attempts, "connects": connects, "ended": ended,
                   "campaign_attempts": last[0], "campaign_connects": last[1], "campaign_ended": last[2],
                   "attempts_per_min": round(attempts * 60 / seconds, 1), "connects_per_min": round(connects * 60 / seconds, 1),
                   "in_flight_mean": round(sum(a for a, _ in pbx) / len(pbx), 1) if pbx else 0.0,
                   "talking_mean": round(sum(b for _, b in pbx) / len(pbx), 1) if pbx else 0.0,
                   "talking_min": min((b for _, b in pbx), default=0)},
        "rounds": [{"web_p99_ms": _ms(_pct([x["s"] for x in r.web if x["status"] == 200], 0.99)),
                    "agi_p99_ms": _ms(_pct([t for c in r.agi for t in c["turnarounds"]], 0.99)),
                    "connects": r.counts[1], "seconds": round(r.seconds, 2),
                    "talking_mean": round(sum(b for _, b in r.pbx) / len(r.pbx), 1) if r.pbx else 0.0}
                   for r in raws],
    }


async def _drive(core: Any, pbx: Any, seeded: Seeded, sizes: Sizes) -> dict[str, Any]:
    import uvicorn

    from callcenter.services.dialer.campaigns import pause_campaign, resume_campaign
    from callcenter.parts.dialer import dialer_runner
    from callcenter.runtime import Runner, run_engine, serve_agi
    from callcenter.web.app import create_app

    stop = asyncio.Event()
    servers: list[uvicorn.Server] = []

    async def web(core: Any, stop: asyncio.Event) -> None:  # runtime.serve_web, on a port the OS chooses
        server = uvicorn.Server(uvicorn.Config(create_app(core), host="127.0.0.1", port=0, log_level="warning",
                                               access_log=False, lifespan="on"))
        servers.append(server)

        async def stop_when() -> None:
            await stop.wait()
            server.should_exit = True

        watcher = asyncio.create_task(stop_when())
        try:
            await server.serve()
        finally:
            watcher.cancel()
            stop.set()

    runners: list[tuple[str, Runner]] = [
        ("fastagi", serve_agi), ("dialler", functools.partial(dialer_runner, auto_wrap_up_s=FAST_MODEL["wrap_up_s"]))]
    engine = asyncio.create_task(run_engine(core, runners, web=web, stop=stop))
    agi_port = core.settings.agi_port
    try:
        deadline = time.monotonic() + 60
        while not (servers and servers[0].started and core.parts.snapshot().get("dialler", {}).get("state") == "running"):
            if engine.done() or time.monotonic() > deadline:
                engine.result() if engine.done() else None
                raise RuntimeError("the engine did not start")
            await asyncio.sleep(0.05)
        await _agi_listening(agi_port, deadline)
        web_base = f"http://127.0.0.1:{servers[0].servers[0].sockets[0].getsockname()[1]}"
        await asyncio.sleep(1.0)  # the dialler's first syncs
        await _phase("warmup", 0, core, pbx, seeded, sizes, web_base, agi_port)
        want = max(1, int(sizes.agents * sizes.busy_share))
        idles: list[Raw] = []
        loads: list[Raw] = []
        warms: list[float] = []
        drains: list[float] = []
        busy = True
        for n in range(sizes.rounds):
            if n:  # the calls of the load phase before end first (the idle phase has nothing in flight)
                await asyncio.to_thread(pause_campaign, core, seeded.campaign_id)
                started = time.perf_counter()
                while (pbx.in_flight() or _talking(pbx)) and time.perf_counter() - started < 120:
                    await asyncio.sleep(0.25)
                await asyncio.sleep(FAST_MODEL["wrap_up_s"] + 1.0)  # the last wrap-ups, a sync
                drains.append(round(time.perf_counter() - started, 1))
            idles.append(await _phase("idle", 2 * n + 1, core, pbx, seeded, sizes, web_base, agi_port))
            await asyncio.to_thread(resume_campaign, core, seeded.campaign_id)
            started = time.perf_counter()
            reached = False
            while time.perf_counter() - started < sizes.warm_s:
                if _talking(pbx) >= want:
                    reached = True
                    break
                await asyncio.sleep(0.25)
            busy = busy and reached
            warms.append(round(time.perf_counter() - started, 1))
            loads.append(await _phase("load", 2 * n + 2, core, pbx, seeded, sizes, web_base, agi_port))
    finally:
        stop.set()
        await engine
    idle, load = _figures(idles), _figures(loads)
    load["warm_s"], load["busy_reached"], idle["drain_s"] = warms, busy, drains
    return {"idle": idle, "load": load, "originated_total": pbx.originated}


async def _agi_listening(port: int, deadline: float) -> None:
    """Wait until the FastAGI part accepts connections (the probe's empty session is not logged)."""
    import logging

    agi_log = logging.getLogger("callcenter.adapters.ivr.agi")
    quiet = logging.Filter("nothing")  # a filter matching no logger name: every record dropped
    agi_log.addFilter(quiet)
    try:
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the FastAGI server did not start") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.2)  # the server has seen the probe close
            return
    finally:
        agi_log.removeFilter(quiet)


def _ratio(load: float, idle: float) -> float | None:
    return round(load / idle, 2) if idle else None


def run(agents: int = 100, leads: int = 5000, requests: int = 600, rate: float = 40.0, concurrency: int = 4,
        agi_calls: int = 40, agi_concurrency: int = 2, agi_accounts: int = 10, mode: str = "predictive",
        warm_s: float = 60.0, busy_share: float = 0.5, database_url: str | None = None, seed: int = 1,
        rounds: int = 2, as_json: bool = False) -> dict[str, Any]:
    """Run the benchmark; print a table (and with ``as_json`` one JSON object as the last line)."""
    from callcenter.bootstrap import bootstrap
    from callcenter.settings import load_settings
    from callcenter.store.db import make_engine
    from callcenter.store.migrate import upgrade
    from callcenter.store.models import Base
    from callcenter.adapters.telephony.simulated import CustomerModel, LoopClock, SimulatedPbx

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if min(agents, requests, agi_calls, agi_accounts, concurrency, agi_concurrency) < 1 or leads < agents or rate <= 0:
        raise ValueError("need at least one agent, request, AGI call and account, leads >= agents and rate > 0")
    if rounds < 1 or min(requests, agi_calls) < rounds:
        raise ValueError("need at least one round, and a request and an AGI call per phase of each round")
    sizes = Sizes(agents, leads, requests, rate, concurrency, agi_calls, agi_concurrency, agi_accounts, mode, warm_s,
                  busy_share, rounds)
    tmp = None
    if database_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="cc-bench-loop-")
        database_url = f"sqlite:///{Path(tmp.name) / 'loop.db'}"
    try:
        settings = load_settings(database_url=database_url, telephony_backend="simulated",
                                 simulated_pbx_model=FAST_MODEL, simulated_pbx_seed=seed, agi_host="127.0.0.1",
                                 agi_port=_free_port(), web_host="127.0.0.1", bank_simulator=False,
                                 record_calls=False)  # the loop measures dialling, not the recordings' files
        database = make_engine(settings.resolved_database_url(), pool_size=20)
        upgrade(database)
        Base.metadata.create_all(database, checkfirst=True)
        pbx = SimulatedPbx(CustomerModel(**FAST_MODEL), clock=LoopClock(), seed=seed)
        core = bootstrap(settings, database=database, telephony=pbx)
        try:
            seeded = _seed(core, agents=agents, leads=leads, agi_accounts=agi_accounts, mode=mode)
            try:
                phases = asyncio.run(_drive(core, pbx, seeded, sizes))
            finally:
                _finish(core, seeded)
        finally:
            core.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    idle, load = phases["idle"], phases["load"]
    ratios = {"web_p50": _ratio(load["web"]["p50_ms"], idle["web"]["p50_ms"]),
              "web_p99": _ratio(load["web"]["p99_ms"], idle["web"]["p99_ms"]),
              "agi_p50": _ratio(load["agi"]["p50_ms"], idle["agi"]["p50_ms"]),
              "agi_p99": _ratio(load["agi"]["p99_ms"], idle["agi"]["p99_ms"]),
              "loop_lag_p99": _ratio(load["loop_lag"]["p99_ms"], idle["loop_lag"]["p99_ms"])}
    dialer = load["dialer"]
    kept_up = dialer["connects"] > 0 and dialer["ended"] >= KEPT_UP * dialer["attempts"]
    met = kept_up and all(r is not None and r <= TARGET_RATIO for r in (ratios["web_p99"], ratios["agi_p99"]))
    result: dict[str, Any] = {
        "database": database_url.split(":", 1)[0].split("+", 1)[0], "agents": agents, "leads": leads, "mode": mode,
        "requests": requests, "rate": rate, "concurrency": concurrency, "agi_calls": agi_calls,
        "agi_concurrency": agi_concurrency, "other_running_campaigns": seeded.other_running, "rounds": rounds,
        "dialer_kept_up": kept_up,
        "idle": idle, "load": load, "originated_total": phases["originated_total"], "ratio": ratios, "target_ratio": TARGET_RATIO, "target_met": met,
    }
    _print(result)
    if as_json:
        print(json.dumps(result, sort_keys=True))
    return result


def _print(r: dict[str, Any]) -> None:
    idle, load, ratio = r["idle"], r["load"], r["ratio"]
    print(f"bench loop: {r['database']}, {r['agents']} agents on a {r['mode']} campaign ({r['leads']} leads), simulated "
          f"PBX in real time (fast customers); {r['requests']} web requests at {r['rate']}/s ({r['concurrency']} at "
          f"once) and {r['agi_calls']} hotline calls ({r['agi_concurrency']} at once) per phase, in {r['rounds']} "
          f"round(s) of idle then load")
    print(f"{'':28}{'idle':>16}{'load':>16}{'load/idle':>11}")

    def row(label: str, a: Any, b: Any, q: Any = "") -> None:
        print(f"{label:28}{a!s:>16}{b!s:>16}{q!s:>11}")

    row("web p50 ms", idle["web"]["p50_ms"], load["web"]["p50_ms"], ratio["web_p50"])
    row("web p99 ms", idle["web"]["p99_ms"], load["web"]["p99_ms"], ratio["web_p99"])
    for kind in idle["web"]["by_kind"]:
        a, b = idle["web"]["by_kind"][kind], load["web"]["by_kind"].get(kind, {})
        row(f"  {kind} p50/p99 ms", f"{a['p50_ms']}/{a['p99_ms']}", f"{b.get('p50_ms')}/{b.get('p99_ms')}")
    row("web failed", idle["web"]["failed"], load["web"]["failed"])
    row("AGI turnaround p50 ms", idle["agi"]["p50_ms"], load["agi"]["p50_ms"], ratio["agi_p50"])
    row("AGI turnaround p99 ms", idle["agi"]["p99_ms"], load["agi"]["p99_ms"], ratio["agi_p99"])
    row("AGI PIN wait p99 ms", idle["agi"]["pin_wait_p99_ms"], load["agi"]["pin_wait_p99_ms"])
    row("AGI failed calls", idle["agi"]["failed_calls"], load["agi"]["failed_calls"])
    row("loop lag p50 ms", idle["loop_lag"]["p50_ms"], load["loop_lag"]["p50_ms"])
    row("loop lag p99 ms", idle["loop_lag"]["p99_ms"], load["loop_lag"]["p99_ms"], ratio["loop_lag_p99"])
    row("loop lag max ms", idle["loop_lag"]["max_ms"], load["loop_lag"]["max_ms"])
    row("dialler attempts/min", idle["dialer"]["attempts_per_min"], load["dialer"]["attempts_per_min"])
    row("dialler connects/min", idle["dialer"]["connects_per_min"], load["dialer"]["connects_per_min"])
    row("attempts ended (recorded)", idle["dialer"]["ended"], load["dialer"]["ended"])
    row("calls in flight (mean)", idle["dialer"]["in_flight_mean"], load["dialer"]["in_flight_mean"])
    row("agents talking (mean)", idle["dialer"]["talking_mean"], load["dialer"]["talking_mean"])
    for i, (a, b) in enumerate(zip(idle["rounds"], load["rounds"]), 1):
        row(f"  round {i} web/AGI p99 ms", f"{a['web_p99_ms']}/{a['agi_p99_ms']}", f"{b['web_p99_ms']}/{b['agi_p99_ms']}")
    print(f"load phases: {load['dialer']['attempts']} attempts, {load['dialer']['connects']} connected to agents, "
          f"{load['dialer']['ended']} ended in {load['seconds']} s, after {load['warm_s']} s of warm-up (busy "
          f"{'reached' if load['busy_reached'] else 'NOT reached'}); dialler "
          f"{'kept up' if r['dialer_kept_up'] else 'did NOT keep up'} (at least {KEPT_UP:.0%} of the attempts ended "
          f"in the phases, and calls connected)")
    if r["other_running_campaigns"]:
        print(f"note: {r['other_running_campaigns']} other campaign(s) were already running in this database")
    verdict = "met" if r["target_met"] else "NOT met"
    print(f"target p99 under load within {r['target_ratio']}x of idle (web and AGI): {verdict}")
