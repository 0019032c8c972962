"""The engine's part supervisor (hardening finding 2): a failing part is logged in one line, restarted with capped
exponential backoff, shown on the board, and never ends another part. Backoff waits are a gate, not sleeps."""

from __future__ import annotations

import asyncio
import logging

from callcenter.supervisor import Backoff, PartBoard, keep_alive
from callcenter.adapters.telephony.ami import AmiLoginError


class Gate:
    """The backoff wait: records each delay and returns at once (or when told to), never sleeping."""

    def __init__(self, hold: bool = False) -> None:
        self.delays: list[float] = []
        self.hold = hold
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def __call__(self, delay: float, stop: asyncio.Event) -> bool:
        self.delays.append(delay)
        if self.hold:
            self.waiting.set()
            stopped = asyncio.create_task(stop.wait())
            released = asyncio.create_task(self.release.wait())
            await asyncio.wait({stopped, released}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stopped, released):
                task.cancel()
            self.release.clear()
            self.waiting.clear()
        return stop.is_set()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_expected_failure_is_one_line_without_traceback_and_backoff_doubles_to_its_cap(caplog):
    stop, board, gate = asyncio.Event(), PartBoard(), Gate()
    runs = 0

    async def refused() -> None:
        nonlocal runs
        runs += 1
        if runs == 6:
            stop.set()
            return
        raise AmiLoginError("AMI login refused by 127.0.0.1:5038 (Authentication failed; check ami_username / ami_secret)")

    with caplog.at_level(logging.INFO, logger="callcenter.supervisor"):
        await keep_alive("dialler", refused, stop, board, Backoff(5, 30), wait=gate)
    assert gate.delays == [5, 10, 20, 30, 30]
    lines = [r for r in caplog.records if r.name == "callcenter.supervisor"]
    assert [r.getMessage() for r in lines][0] == (
        "dialler: AMI login refused by 127.0.0.1:5038 (Authentication failed; check ami_username / ami_secret); "
        "retrying in 5 s")
    assert len(lines) == 5 and all(r.exc_info is None for r in lines)
    assert board.snapshot()["dialler"]["state"] == "stopped"


async def test_a_bug_is_logged_with_its_traceback_and_the_part_restarts(caplog):
    stop, board, gate = asyncio.Event(), PartBoard(), Gate()
    runs = 0

    async def buggy() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise KeyError("oops")
        await stop.wait()

    task = asyncio.create_task(keep_alive("care", buggy, stop, board, Backoff(1, 8), wait=gate))
    while runs < 2:
        await asyncio.sleep(0)
    snap = board.snapshot()["care"]
    assert snap["state"] == "running" and snap["restarts"] == 1 and snap["last_error"] == "KeyError: 'oops'"
    stop.set()
    await asyncio.wait_for(task, 5)
    [record] = [r for r in caplog.records if r.name == "callcenter.supervisor"]
    assert record.exc_info is not None and record.getMessage() == "care: KeyError: 'oops'; retrying in 1 s"


async def test_board_shows_restarting_with_the_error_and_degraded_then_running_again():
    stop, board, gate = asyncio.Event(), PartBoard(), Gate(hold=True)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConnectionRefusedError(111, "Connection refused")
        await stop.wait()

    async def steady() -> None:
        await stop.wait()

    tasks = [asyncio.create_task(keep_alive("dialler", flaky, stop, board, Backoff(5, 60), wait=gate)),
             asyncio.create_task(keep_alive("fastagi", steady, stop, board, Backoff(5, 60), wait=gate))]
    await asyncio.wait_for(gate.waiting.wait(), 5)
    snap = board.snapshot()
    assert snap["dialler"]["state"] == "restarting" and "Connection refused" in str(snap["dialler"]["error"])
    assert "retry_at" in snap["dialler"]
    assert snap["fastagi"]["state"] == "running"  # the other part is untouched
    assert board.overall(snap) == "degraded"
    gate.release.set()
    while runs < 2:
        await asyncio.sleep(0)
    snap = board.snapshot()
    assert snap["dialler"]["state"] == "running" and board.overall(snap) == "ok"
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert {p["state"] for p in board.snapshot().values()} == {"stopped"}


async def test_stop_while_waiting_to_restart_ends_the_part_at_once():
    stop, board, gate = asyncio.Event(), PartBoard(), Gate(hold=True)

    async def down() -> None:
        raise OSError("no route")

    task = asyncio.create_task(keep_alive("dialler", down, stop, board, Backoff(300, 600), wait=gate))
    await asyncio.wait_for(gate.waiting.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert board.snapshot()["dialler"]["state"] == "stopped"


async def test_backoff_starts_over_after_a_long_healthy_run():
    stop, board, gate, clock = asyncio.Event(), PartBoard(), Gate(), Clock()
    runs = 0

    async def part() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            clock.now += 1000  # this run was healthy for a long time before it failed
        if runs == 6:
            stop.set()
            return
        raise OSError("down")

    await keep_alive("x", part, stop, board, Backoff(2, 100), wait=gate, monotonic=clock)
    assert gate.delays == [2, 4, 8, 2, 4]


async def test_a_part_that_ends_on_its_own_is_restarted():
    stop, board, gate = asyncio.Event(), PartBoard(), Gate()
    runs = 0

    async def quits() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            stop.set()

    await keep_alive("x", quits, stop, board, Backoff(1, 4), wait=gate)
    assert runs == 3 and gate.delays == [1, 2]


def test_probe_marks_a_running_part_down():
    board = PartBoard()
    board.set("dialler", "running")
    problem: list[str] = ["Asterisk 127.0.0.1:5038 unreachable (Connection refused)"]
    board.watch("dialler", lambda: problem[0] if problem else None)
    snap = board.snapshot()
    assert snap["dialler"]["state"] == "down" and snap["dialler"]["error"].startswith("Asterisk")
    problem.clear()
    assert board.snapshot()["dialler"]["state"] == "running"


async def test_restarting_since_the_first_failure_of_the_series():
    from datetime import datetime, timedelta, timezone

    ticks = iter(datetime(2026, 12, 1, tzinfo=timezone.utc) + timedelta(seconds=n) for n in range(1000))
    stop, board = asyncio.Event(), PartBoard(clock=lambda: next(ticks))
    seen: list[object] = []

    async def wait(delay: float, stop: asyncio.Event) -> bool:
        seen.append(board.snapshot()["dialler"]["since"])
        if len(seen) == 3:
            stop.set()
        return stop.is_set()

    async def down() -> None:
        raise OSError("no route")

    await keep_alive("dialler", down, stop, board, Backoff(1, 60), wait=wait)
    assert len(seen) == 3 and len(set(seen)) == 1
