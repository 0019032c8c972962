"""A bound on the argon2 work: at most ``workers`` hashes computed at once (default: one per CPU), callers beyond it
wait their turn (hardening finding 8: 250 callers' PIN checks at once on two cores left every caller in silence).

argon2 releases the GIL, so the bound is a semaphore around the computation in the caller's own thread; the
FastAGI carrier plays "please wait" and keeps type-ahead keys while its caller waits here."""

from __future__ import annotations

import os
import threading
from typing import Callable

from callcenter.services.auth import verify_secret


class HashPool:
    def __init__(self, workers: int = 0, verify: Callable[[str, str], bool] = verify_secret) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(self.workers)
        self._verify = verify
        self._lock = threading.Lock()
        self.waiting = 0  # callers waiting for a slot now (for /healthz and the benchmark)
        self.peak_waiting = 0
        self.verified = 0

    def verify(self, stored_hash: str, secret: str) -> bool:
        """``verify_secret`` within the bound; blocks until a slot is free."""
        with self._lock:
            self.waiting += 1
            self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            self._slots.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        try:
            return self._verify(stored_hash, secret)
        finally:
            self._slots.release()
            with self._lock:
                self.verified += 1
