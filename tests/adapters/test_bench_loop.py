"""`callcenter bench loop` at a tiny size: the real engine (web, FastAGI, dialler parts on one loop) on the simulated
PBX, the web requests and hotline calls from a client process, idle then load, twice. Asserts the report's shape and its
invariants (counts add up, p50 <= p99, the dialler dialled only in the load phase), never a speed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from callcenter.bench.loop import run
from callcenter.store.db import make_engine
from callcenter.store.models.dialer import AgentSession, Campaign


def _check_phase(phase: dict[str, Any], requests: int, calls: int) -> None:
    web = phase["web"]
    assert web["requests"] == requests and web["ok"] + web["failed"] == requests and web["failed"] == 0
    assert sum(k["requests"] for k in web["by_kind"].values()) == requests
    assert set(web["by_kind"]) == {"desk_status", "healthz", "wallboard"}
    assert 0 < web["p50_ms"] <= web["p99_ms"]
    for kind in web["by_kind"].values():
        assert kind["ok"] == kind["requests"] and kind["p50_ms"] <= kind["p99_ms"]
    agi = phase["agi"]
    assert agi["calls"] == calls and agi["failed_calls"] == 0  # every call authenticated and read its balances
    assert agi["turnarounds"] >= calls * 5 and 0 < agi["p50_ms"] <= agi["p99_ms"]
    assert 0 < agi["pin_wait_p50_ms"] <= agi["pin_wait_p99_ms"]
    lag = phase["loop_lag"]
    assert lag["samples"] > 0 and 0 <= lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"]
    assert phase["seconds"] > 0


def test_bench_loop_tiny(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(agents=5, leads=200, requests=40, rate=20.0, concurrency=2, agi_calls=4, agi_concurrency=2,
                 agi_accounts=2, warm_s=120.0, database_url=db_url, rounds=2, as_json=True)  # warm-up ends when busy: a slow machine waits longer, a fast one not at all
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == result
    assert any(line.startswith("web p99 ms") for line in out)
    idle, load = result["idle"], result["load"]
    _check_phase(idle, 40, 4)
    _check_phase(load, 40, 4)
    assert len(idle["rounds"]) == len(load["rounds"]) == 2 and len(load["warm_s"]) == 2 and len(idle["drain_s"]) == 1
    # every load round ran with agents on calls (a short round may see no new connect: its agents were already
    # talking when it began), no idle round connected anything
    assert all(r["talking_mean"] > 0 for r in load["rounds"]) and all(r["connects"] == 0 for r in idle["rounds"])
    # idle: the campaign is paused, nothing dialled or in flight; load: the campaign dialled and agents talked
    assert idle["dialer"]["attempts"] == 0 and idle["dialer"]["in_flight_mean"] == 0
    assert load["busy_reached"] and load["dialer"]["campaign_attempts"] > 0
    assert load["dialer"]["campaign_connects"] >= 1 and load["dialer"]["in_flight_mean"] > 0
    assert load["dialer"]["campaign_connects"] <= load["dialer"]["campaign_attempts"]
    assert load["dialer"]["campaign_ended"] <= load["dialer"]["campaign_attempts"] and idle["dialer"]["ended"] == 0
    assert result["originated_total"] >= load["dialer"]["campaign_attempts"]
    assert load["dialer"]["attempts"] <= load["dialer"]["campaign_attempts"]
    assert result["ratio"]["web_p99"] == round(load["web"]["p99_ms"] / idle["web"]["p99_ms"], 2)
    assert result["dialer_kept_up"] == (load["dialer"]["connects"] > 0
                                        and load["dialer"]["ended"] >= 0.6 * load["dialer"]["attempts"])
    assert result["target_met"] == (result["dialer_kept_up"] and result["ratio"]["web_p99"] <= 1.5
                                     and result["ratio"]["agi_p99"] <= 1.5)
    # left behind: the campaign stopped, no agent session open
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Campaign).where(Campaign.state == "running")).scalar_one() == 0
            assert conn.execute(select(func.count()).select_from(AgentSession)
                                .where(AgentSession.ended_at.is_(None))).scalar_one() == 0
    finally:
        engine.dispose()


def test_bench_loop_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="mode"):
        run(mode="preview")
    with pytest.raises(ValueError, match="leads >= agents"):
        run(agents=10, leads=5)
    with pytest.raises(ValueError, match="round"):
        run(requests=1, rounds=2)
