"""GET /metrics: Prometheus text from the App's own registry; the database figures, the transfer counter and
histogram, FastAGI sessions, SSE subscribers, the telephony connection and the loop lag; who may read it."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from callcenter.bootstrap import App, bootstrap
from callcenter.domain.access import Actor
from callcenter.adapters.ivr.agi import AgiConfig, start_agi_server
from callcenter.services.ivr.backend import demo_backend
from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call
from callcenter.parts.dialer import dialer_runner
from callcenter.runtime import run_engine, serve_agi
from callcenter.services.metrics import abandon_today
from callcenter.services.transfers import IdempotencyConflict, TransferCommand
from callcenter.settings import load_settings
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import AgentSession, Attempt
from callcenter.adapters.telephony.ami import AmiPool, AmiServer
from callcenter.web.app import create_app
from tests.adapters.fake_ami import ReplayServer, parse_capture
from tests.e2e.desk_world import PASSWORDS, World, build
from tests.factories import make_client

pytestmark = pytest.mark.db

LOOPBACK = ("127.0.0.1", 50000)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def client(core: App, host: tuple[str, int] = LOOPBACK, **settings: object) -> TestClient:
    tuned = replace(core, settings=core.settings.model_copy(update=settings)) if settings else core
    return TestClient(create_app(tuned), raise_server_exceptions=False, client=host)


def bearer(api: TestClient, user: str) -> dict[str, str]:
    r = api.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def parse(text: str) -> Samples:
    """Every sample of the exposition, by name and sorted labels (the official parser: the text must parse)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def scrape(api: TestClient, **kw: Any) -> Samples:
    r = api.get("/metrics", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def seed_dialler(core: App, world: World) -> None:
    """Beside the world's open attempt (human, connected, no end): one ended abandoned attempt today, one
    abandoned yesterday (not today's), and agent sessions: talking and ready on the campaign, paused, and one
    ended shift that no longer counts."""
    now = core.clock()

    def work(s: Session) -> None:
        s.add_all([
            Attempt(lead_id=world.lead, campaign_id=world.campaign, phone="+8613900000001", dialled_at=now,
                    answered_at=now, ended_at=now, outcome="abandoned", abandoned=True),
            Attempt(lead_id=world.lead, campaign_id=world.campaign, phone="+8613900000001",
                    dialled_at=now - timedelta(days=1), answered_at=now - timedelta(days=1),
                    ended_at=now - timedelta(days=1), outcome="abandoned", abandoned=True),
        ])
        for who, state, ended in (("ag1", "talking", None), ("bo1", "ready", None), ("ag2", "paused", None),
                                  ("bo2", "ready", now)):
            s.add(AgentSession(staff_id=world.staff[who], campaign_id=world.campaign, state=state, state_since=now,
                               started_at=now - timedelta(hours=1), ended_at=ended))

    run_in_transaction(core.sessions, work)


def test_the_text_parses_and_the_database_figures_are_the_seeded_ones(core: App) -> None:
    world = build(core)
    api = client(core)
    empty = scrape(api)
    assert value(empty, "callcenter_metrics_database_up") == 1.0
    assert value(empty, "callcenter_agents", state="talking") == 0.0
    # the running campaign is shown even before any call: its open attempt of the world, no agents yet
    campaign = str(world.campaign)
    assert value(empty, "callcenter_calls_in_flight", campaign=campaign) == 1.0
    assert value(empty, "callcenter_dial_level", campaign=campaign) == 0.0  # no agents: 0, not a division by 0

    seed_dialler(core, world)
    samples = scrape(api)
    assert value(samples, "callcenter_calls_in_flight", campaign=campaign) == 1.0  # the ended ones are not
    assert value(samples, "callcenter_dial_level", campaign=campaign) == 0.5  # 1 call / (1 talking + 1 ready)
    assert {s: value(samples, "callcenter_agents", state=s) for s in ("talking", "ready", "paused", "wrap_up")} == {
        "talking": 1.0, "ready": 1.0, "paused": 1.0, "wrap_up": 0.0}
    # today: the open human call and the abandoned one; yesterday's abandoned call is not today's
    assert value(samples, "callcenter_calls_human_today", campaign=campaign) == 2.0
    assert value(samples, "callcenter_calls_abandoned_today", campaign=campaign) == 1.0
    assert value(samples, "callcenter_abandon_rate_today", campaign=campaign) == 0.5
    assert run_in_transaction(core.sessions, lambda s: abandon_today(s, core.clock(), core.settings.tz)) == {
        world.campaign: (2, 1)}


def test_abandon_today_follows_the_local_day(core: App) -> None:
    """The day is Shanghai's: 01:00 local on the 25th is 17:00 UTC on the 24th (today's), 23:30 local on the 24th
    is 15:30 UTC on the 24th (yesterday's). The clock is 10:30 local on the 25th."""
    world = build(core)
    now = core.clock()
    assert now.astimezone(core.settings.tz).date().isoformat() == "2026-11-25"
    today_local, yesterday_local = now.replace(day=24, hour=17, minute=0), now.replace(day=24, hour=15, minute=30)

    def work(s: Session) -> None:
        for at in (today_local, yesterday_local):
            s.add(Attempt(lead_id=world.lead, campaign_id=world.campaign, phone="+8613900000001", dialled_at=at,
                          answered_at=at, ended_at=at, outcome="abandoned", abandoned=True))

    run_in_transaction(core.sessions, work)
    counts = run_in_transaction(core.sessions, lambda s: abandon_today(s, now, core.settings.tz))
    assert counts == {world.campaign: (2, 1)}  # the world's human call of 10:30 and the abandoned one of 01:00


def test_a_transfer_moves_the_counter_and_the_histogram(core: App) -> None:
    build(core)
    _, (main,) = make_client(core, accounts=[(1_000_00, 5_000_00)])
    api = client(core)
    before = scrape(api)
    assert value(before, "callcenter_transfer_duration_seconds_count", kind="bank_to_fund") is None

    def cmd(key: str, amount: str, kind: str = "bank_to_fund") -> TransferCommand:
        return TransferCommand(idempotency_key=key, kind=kind, fund_account_no=main, amount_yuan=amount,
                               actor=Actor.back_office("test"))

    assert core.transfers.transfer(cmd("k1", "10.00")).status == "done"
    assert core.transfers.transfer(cmd("k1", "10.00")).replayed
    with pytest.raises(IdempotencyConflict):
        core.transfers.transfer(cmd("k1", "99.00"))
    assert core.transfers.transfer(cmd("k2", "1", kind="no such kind")).status == "rejected"
    after = scrape(api)
    counted = {o: value(after, "callcenter_transfers_total", kind="bank_to_fund", outcome=o)
               for o in ("done", "replayed", "conflict")}
    assert counted == {"done": 1.0, "replayed": 1.0, "conflict": 1.0}
    assert value(after, "callcenter_transfers_total", kind="other", outcome="rejected") == 1.0  # no free labels
    assert value(after, "callcenter_transfer_duration_seconds_count", kind="bank_to_fund") == 3.0
    assert value(after, "callcenter_transfer_duration_seconds_bucket", kind="bank_to_fund", le="+Inf") == 3.0
    assert (value(after, "callcenter_transfer_duration_seconds_sum", kind="bank_to_fund") or 0.0) > 0.0


def test_who_may_read_the_metrics(core: App) -> None:
    build(core)
    remote = client(core, ("testclient", 50000))  # Starlette's default client host: not loopback
    assert remote.get("/metrics").status_code == 401
    assert remote.get("/metrics", headers=bearer(remote, "ag1")).status_code == 403
    assert remote.get("/metrics", headers=bearer(remote, "sup1")).status_code == 403
    assert scrape(remote, headers=bearer(remote, "adm"))
    other_host = client(core, ("192.0.2.7", 40000))
    assert other_host.get("/metrics").status_code == 401
    for host in ("127.0.0.1", "::1", "127.0.0.2", "::ffff:127.0.0.1"):  # loopback: no login needed
        assert scrape(client(core, (host, 50000))), host
    # behind a proxy on the same host everything is loopback: the setting turns that off
    proxied = client(core, metrics_from_loopback=False)
    assert proxied.get("/metrics").status_code == 401
    assert proxied.get("/metrics", headers=bearer(proxied, "ag1")).status_code == 403
    assert scrape(proxied, headers=bearer(proxied, "adm"))


def test_every_app_has_its_own_registry(core: App, db_url: str) -> None:
    other = bootstrap(load_settings(database_url=db_url))
    try:
        core.metrics.agi_session(1)
        assert core.metrics.registry is not other.metrics.registry
        assert other.metrics.registry.get_sample_value("callcenter_agi_sessions_total") == 0.0
        assert core.metrics.registry.get_sample_value("callcenter_agi_sessions_total") == 1.0
    finally:
        other.close()


async def test_sse_subscribers_by_topic_kind(core: App) -> None:
    def subscribers() -> dict[str, float | None]:
        reg = core.metrics.registry
        return {k: reg.get_sample_value("callcenter_sse_subscribers", {"topic": k}) for k in ("agent", "wallboard")}

    assert subscribers() == {"agent": 0.0, "wallboard": 0.0}
    async with core.bus.subscribe("agent:1"), core.bus.subscribe("agent:2"), core.bus.subscribe("wallboard"):
        assert subscribers() == {"agent": 2.0, "wallboard": 1.0}
    assert subscribers() == {"agent": 0.0, "wallboard": 0.0}


def test_telephony_connection_per_server(core: App) -> None:
    reg = core.metrics.registry
    name = "callcenter_telephony_connected"
    assert reg.get_sample_value(name, {"server": "simulated"}) is None  # no dialler part in this process
    core.parts.set("dialler", "running")
    assert reg.get_sample_value(name, {"server": "simulated"}) == 1.0  # simulated PBX: the part's state
    core.parts.set("dialler", "restarting", error="boom")
    assert reg.get_sample_value(name, {"server": "simulated"}) == 0.0
    pool = AmiPool([AmiServer("10.0.0.5", 5038, "cc", "s"), AmiServer("10.0.0.6", 5038, "cc", "s")])
    core.metrics.watch_telephony(pool)  # what the dialler part does with its AMI pool: never started, both down
    assert [reg.get_sample_value(name, {"server": s}) for s in ("10.0.0.5:5038", "10.0.0.6:5038")] == [0.0, 0.0]
    assert reg.get_sample_value(name, {"server": "simulated"}) is None


async def test_agi_sessions_in_progress_and_total(core: App) -> None:
    reg = core.metrics.registry
    server, app = await start_agi_server(demo_backend(), "127.0.0.1", 0,
                                         config=AgiConfig(header_timeout_s=30, on_session=core.metrics.agi_session))
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # a session that has sent nothing yet
        async with asyncio.timeout(10):
            while reg.get_sample_value("callcenter_agi_sessions_in_progress") != 1.0:
                await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        await app.wait_idle()
        await run_fake_call("127.0.0.1", port, FakeCall(["9"]))
        await app.wait_idle()
    app.close()
    assert reg.get_sample_value("callcenter_agi_sessions_in_progress") == 0.0
    assert reg.get_sample_value("callcenter_agi_sessions_total") == 2.0


ACCEPTED = parse_capture(
    b">>> Action: Login\r\n>>> ActionID: l1\r\n"
    b"Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 13\r\nLastReload: 13\r\nStatus: Fully Booted\r\n\r\n",
    "accepted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_engine_wires_loop_lag_agi_and_the_ami_connection(db_url: str) -> None:
    """run_engine starts the loop-lag monitor, serve_agi counts its sessions, the dialler part reports its AMI
    server: all read from the App's registry while the engine runs (bounded polling, no speed asserted)."""
    agi = free_port()
    async with ReplayServer(ACCEPTED) as asterisk:
        core = bootstrap(load_settings(database_url=db_url, telephony_backend="asterisk", agi_port=agi,
                                       ami_servers=[f"127.0.0.1:{asterisk.port}"], ami_secret="right"))
        reg = core.metrics.registry
        ami = {"server": f"127.0.0.1:{asterisk.port}"}
        stop = asyncio.Event()
        seen: dict[str, float | None] = {}

        async def web(core: Any, stop: asyncio.Event) -> None:
            async with asyncio.timeout(60):
                while (reg.get_sample_value("callcenter_event_loop_lag_distribution_seconds_count") or 0) < 2 \
                        or reg.get_sample_value("callcenter_telephony_connected", ami) != 1.0 \
                        or core.parts.snapshot().get("fastagi", {}).get("state") != "running":
                    await asyncio.sleep(0.05)
                _, writer = await asyncio.open_connection("127.0.0.1", agi)
                while reg.get_sample_value("callcenter_agi_sessions_in_progress") != 1.0:
                    await asyncio.sleep(0.01)
                writer.close()
                await writer.wait_closed()
                while reg.get_sample_value("callcenter_agi_sessions_in_progress") != 0.0:
                    await asyncio.sleep(0.01)
            seen["lag"] = reg.get_sample_value("callcenter_event_loop_lag_seconds")
            seen["agi_total"] = reg.get_sample_value("callcenter_agi_sessions_total")

        try:
            await asyncio.wait_for(run_engine(core, [("fastagi", serve_agi), ("dialler", dialer_runner)], web=web,
                                              stop=stop), 90)
            async with asyncio.timeout(10):  # the pool closed with the engine: its socket's end is a callback away
                while reg.get_sample_value("callcenter_telephony_connected", ami) != 0.0:
                    await asyncio.sleep(0.01)
        finally:
            core.close()
    assert seen["lag"] is not None and seen["lag"] >= 0.0
    assert seen["agi_total"] == 1.0
