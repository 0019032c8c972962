"""The simulated bank as its own process: real HTTP on loopback, its own database file, kill -9 and restart,
faults from its settings, and the engine's part that keeps it running."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from callcenter.adapters.bank_http import HttpBank
from callcenter.bank.runner import BankProcess, bank_runner
from callcenter.bank.server import DIED
from callcenter.ports.bank import BankAnswer, BankUnavailable
from callcenter.settings import load_settings
from tests.processes import ROOT, bank_server, clean_env, free_port

pytestmark = pytest.mark.slow


def test_the_bank_keeps_its_books_across_a_kill_9(tmp_path: Path) -> None:
    server = bank_server(tmp_path, bank_database_url=f"sqlite:///{tmp_path / 'bank.db'}")
    server.start()
    bank = HttpBank(server.url, timeout=5)
    try:
        assert bank.open_accounts([("6200000001", 1_000_00)]) == (1, 0)
        assert bank.debit("K1", "6200000001", 250_00) == BankAnswer("applied")
        server.kill9()
        with pytest.raises(BankUnavailable):  # down: the outcome of anything sent now is unknown
            bank.debit("K2", "6200000001", 1_00)
        server.start()
        assert bank.debit("K1", "6200000001", 250_00) == BankAnswer("applied")  # the first answer, still
        assert bank.balance("6200000001") == 750_00 and bank.status("K2") == "unknown"
        assert (tmp_path / "bank.db").exists()
    finally:
        bank.close()
        server.stop()


def test_timeout_faults_over_http_leave_the_outcome_to_the_query(tmp_path: Path) -> None:
    server = bank_server(tmp_path, bank_database_url=f"sqlite:///{tmp_path / 'bank.db'}",
                         bank_fault_timeout_after_rate=1.0, bank_fault_hang_seconds=3)
    server.start()
    bank = HttpBank(server.url, timeout=0.5)
    try:
        bank.open_accounts([("6200000001", 1_000_00)])
        with pytest.raises(BankUnavailable):
            bank.credit("T1", "6200000001", 5_00)  # applied, but the answer never came
        record = bank.query("T1")
        assert record.status == "applied" and record.amount_fen == 5_00
        assert bank.balance("6200000001") == 1_005_00
    finally:
        bank.close()
        server.stop()


def test_down_fault_ends_the_bank_process(tmp_path: Path) -> None:
    server = bank_server(tmp_path, bank_database_url=f"sqlite:///{tmp_path / 'bank.db'}", bank_fault_down_rate=1.0,
                         bank_fault_seed=3)
    server.start()
    bank = HttpBank(server.url, timeout=5)
    try:
        bank.open_accounts([("6200000001", 1_000_00)])
        with pytest.raises(BankUnavailable):
            bank.debit("D1", "6200000001", 1_00)
        assert server.proc is not None and server.proc.wait(30) == DIED
    finally:
        bank.close()
        server.stop()


def test_the_engine_part_restarts_a_killed_bank_and_stops_it_at_the_end(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}"
    for key, value in clean_env(bank_url=url, bank_database_url=f"sqlite:///{tmp_path / 'bank.db'}").items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    proc = BankProcess(settings)
    core = SimpleNamespace(settings=settings, bank_process=proc)

    async def scenario() -> tuple[int | None, int | None, int]:
        stop = asyncio.Event()
        part = asyncio.create_task(bank_runner(core, stop))  # type: ignore[arg-type]  # settings + bank_process suffice
        await _until(lambda: proc.starts >= 1)
        await _until(lambda: proc.running() and _healthy(url))
        first = proc.pid
        proc._proc.kill()  # kill -9
        await _until(lambda: proc.starts == 2 and proc.running() and _healthy(url), timeout=60)
        second = proc.pid
        stop.set()
        await asyncio.wait_for(part, 30)
        return first, second, proc._proc.returncode

    first, second, code = asyncio.run(scenario())
    assert first != second and code is not None  # restarted, and stopped with the engine
    assert not _healthy(url)


def test_a_bank_started_by_the_engine_does_not_outlive_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(bank_url=url, bank_database_url=f"sqlite:///{tmp_path / 'bank.db'}")
    script = ("import os, sys; from callcenter.bank.runner import BankProcess; from callcenter.settings import "
              "load_settings; p = BankProcess(load_settings()); p.start(); print(\"PID\", p.pid, flush=True); os._exit(9)")
    parent = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert parent.returncode == 9, parent.stderr
    bank_pid = int(parent.stdout.split("PID")[-1].split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _pid_alive(bank_pid):
        time.sleep(0.1)
    assert not _pid_alive(bank_pid), "the orphaned bank kept running"


def test_start_reports_a_bank_that_cannot_start(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    from callcenter.bank.runner import BankStartError

    with socket.socket() as taken:  # something else holds the port (and answers nothing)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"
        for key, value in clean_env(bank_url=url, bank_database_url=f"sqlite:///{tmp_path / 'b.db'}").items():
            monkeypatch.setenv(key, value)
        with pytest.raises(BankStartError, match="exited"):
            BankProcess(load_settings()).start()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _until(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
