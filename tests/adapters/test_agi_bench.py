"""`callcenter bench agi` runs the hotline on the in-memory and on the store backend (a real database, real argon2
PIN hashes) with the fake Asterisks in another process, and reports the wait after the PIN (hardening must-show)."""

from __future__ import annotations

import json

from callcenter.bench.agi import run


def test_bench_agi_reports_the_store_backend_and_the_baseline(capsys) -> None:  # type: ignore[no-untyped-def]
    # 12 callers at once: more than one caller ID may try at once (ivr_free_attempts_per_caller = 10), so the
    # benchmark must give each caller its own, as 12 real callers would have
    result = run(calls=4, concurrency=4, store_callers=12, as_json=True)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    store = result["store"]
    assert store["calls"] == 12 and store["failed_calls"] == 0 and store["database"] == "sqlite"
    assert store["pin_wait_p99_ms"] > 0 and store["silence_p99_ms"] <= store["pin_wait_p99_ms"]
    assert store["hash_workers"] >= 1
    assert result["memory"]["failed_calls"] == 0 and result["echo_calls_per_s"] > 0
