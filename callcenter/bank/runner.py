"""The simulated bank beside the engine: ``callcenter run`` / ``serve`` start ``callcenter bank serve`` as a
child process (its own process, its own database) and restart it with backoff when it dies — by a fault
injected from ``bank_fault_down_rate`` or by ``kill -9``. The child stops with the engine, and on its own when
the engine process disappears (``--parent-pid``). With ``bank_simulator = false`` (a real bank gateway at
``bank_url``) nothing is started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

from callcenter.settings import Settings

if TYPE_CHECKING:
    from callcenter.bootstrap import App

log = logging.getLogger(__name__)


class BankStartError(Exception):
    pass


class BankProcess:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the bank and wait until it answers ``/healthz``; BankStartError when it does not."""
        cmd = [sys.executable, "-m", "callcenter.bank", "serve", "--parent-pid", str(os.getpid())]
        self._proc = subprocess.Popen(cmd, start_new_session=True)  # Ctrl-C reaches the engine, which stops it
        self.starts += 1
        deadline = time.monotonic() + timeout
        url = self._settings.bank_url.rstrip("/") + "/healthz"
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise BankStartError(f"the simulated bank exited with status {code} (is {self._settings.bank_url} "
                                     "already in use? set CALLCENTER_BANK_URL)")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise BankStartError(f"the simulated bank did not answer at {self._settings.bank_url} within {timeout:.0f} s")

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if not self.running():
            return
        assert self._proc is not None
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


async def bank_runner(core: "App", stop: asyncio.Event) -> None:
    """A part of ``run_engine``: keep the simulated bank running until the engine stops."""
    if not core.settings.bank_simulator:
        await stop.wait()
        return
    proc = core.bank_process  # built once by the composition root (bank_simulator)
    if proc is None:
        await stop.wait()
        return
    backoff = 1.0
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            if not proc.running():
                try:
                    await asyncio.to_thread(proc.start)
                    log.info("simulated bank running at %s (pid %s)", core.settings.bank_url, proc.pid)
                except BankStartError as exc:
                    log.error("%s; retrying in %.0f s", exc, backoff)
                    await _sleep_unless(stop, backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
            started = time.monotonic()
            exited = asyncio.create_task(asyncio.to_thread(proc.wait))
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                break
            if time.monotonic() - started > 60:
                backoff = 1.0
            log.warning("simulated bank exited with status %s; restarting in %.0f s", exited.result(), backoff)
            await _sleep_unless(stop, backoff)
            backoff = min(backoff * 2, 30.0)
    finally:
        stopping.cancel()
        await asyncio.to_thread(proc.stop)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
