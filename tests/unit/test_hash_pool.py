"""Hardening finding 8: the argon2 work is bounded by a pool sized to the machine, and its parameters are settings."""

from __future__ import annotations

import os
import threading

from callcenter.services import auth
from callcenter.services.hash_pool import HashPool
from callcenter.settings import load_settings


def test_no_more_than_workers_hashes_run_at_once() -> None:
    inside, peak, lock = 0, 0, threading.Lock()
    entered = threading.Semaphore(0)
    gate = threading.Event()

    def slow_verify(stored: str, secret: str) -> bool:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        entered.release()
        assert gate.wait(10)
        with lock:
            inside -= 1
        return stored == secret

    pool = HashPool(2, verify=slow_verify)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda i=i: results.append(pool.verify(str(i), str(i % 2)))) for i in range(8)]
    for t in threads:
        t.start()
    assert entered.acquire(timeout=10) and entered.acquire(timeout=10)  # two are hashing ...
    assert not entered.acquire(timeout=0.2)  # ... and the third waits for a slot (bounded wait, not a sleep)
    gate.set()
    for t in threads:
        t.join(10)
    assert peak == 2 and len(results) == 8 and results.count(True) == 2
    assert pool.verified == 8 and pool.peak_waiting >= 6 and pool.waiting == 0


def test_default_size_is_the_cpu_count() -> None:
    assert HashPool().workers == (os.cpu_count() or 1)


def test_argon2_parameters_come_from_settings(core) -> None:  # type: ignore[no-untyped-def]
    from callcenter.bootstrap import bootstrap

    settings = load_settings(database_url=core.settings.database_url, argon2_time_cost=1, argon2_memory_kib=1024,
                             argon2_parallelism=1, argon2_workers=3)
    app = bootstrap(settings, database=core.database)
    try:
        hashed = auth.hash_secret("135790")
        assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        assert auth.verify_secret(hashed, "135790")
        assert app.hash_pool.workers == 3
        before = app.hash_pool.verified
        app.ivr.authenticate("0000000000", "135790", "", "call-x")  # unknown account: the dummy check, pooled too
        assert app.hash_pool.verified == before + 1
    finally:
        auth.set_parameters(3, 65536, 4)
