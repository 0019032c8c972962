"""Keep each part of the engine alive, and say how each one is doing.

A part is a named coroutine (``runner(core, stop)``, see ``callcenter.runtime``); the list of parts is generic.
``keep_alive`` runs one part until ``stop`` is set: when the part fails it is logged in ONE line, restarted after
an exponential backoff (``Backoff``, from the settings), and its state is kept on the ``PartBoard`` that
``/healthz`` and the wall board read.

- An expected failure of the outside world (a ``TelephonyError`` such as a refused AMI login or an unreachable
  Asterisk, an ``OSError``) is one line without a traceback: ``dialler: AMI login refused by 127.0.0.1:5038
  (...); retrying in 5 s``. Anything else is a bug: the same line, with its traceback.
- A part that had run longer than the backoff cap before it failed starts over at the first delay.
- ``stop`` (Ctrl-C, the web part ending) ends every part cleanly, also while one waits to be restarted.
- A running part can tell the board it is not well although it runs (the dialler while its Asterisk connection is
  down): ``board.watch(name, probe)``, ``probe()`` returns None or one sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from callcenter.ports.telephony import TelephonyError

log = logging.getLogger(__name__)

EXPECTED_FAILURES: tuple[type[BaseException], ...] = (TelephonyError, OSError)
STATES = ("starting", "running", "down", "restarting", "stopped")  # "down": running, but its probe says not well

Probe = Callable[[], "str | None"]
Wait = Callable[[float, asyncio.Event], Awaitable[bool]]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 5.0
    max_s: float = 120.0

    def after(self, delay: float) -> float:
        return min(delay * 2, self.max_s)


@dataclass
class PartStatus:
    name: str
    state: str
    since: datetime
    error: str = ""
    restarts: int = 0
    retry_at: datetime | None = None


class PartBoard:
    """Each part's state, for ``/healthz`` and the wall board. Empty outside ``callcenter run``."""

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self.clock = clock
        self._parts: dict[str, PartStatus] = {}
        self._probes: dict[str, Probe] = {}

    def set(self, name: str, state: str, *, error: str = "", retry_at: datetime | None = None,
            since: datetime | None = None) -> None:
        if state not in STATES:
            raise ValueError(state)
        part = self._parts.get(name)
        if part is None:
            part = self._parts[name] = PartStatus(name, state, since or self.clock())
        elif part.state != state or since is not None:
            part.state, part.since = state, since or self.clock()
        if state == "restarting":
            part.restarts += 1
        if error:
            part.error = error  # the last failure, kept after the part is running again
        part.retry_at = retry_at

    def watch(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    def unwatch(self, name: str) -> None:
        self._probes.pop(name, None)

    def snapshot(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for name, part in self._parts.items():
            state, error = part.state, part.error if part.state == "restarting" else ""
            probe = self._probes.get(name)
            if state == "running" and probe is not None:
                try:
                    problem = probe()
                except Exception as exc:  # a broken probe must not break /healthz
                    problem = f"probe failed: {type(exc).__name__}"
                if problem:
                    state, error = "down", problem
            item: dict[str, object] = {"state": state, "since": part.since.isoformat()}
            if error:
                item["error"] = error
            elif part.error:
                item["last_error"] = part.error
            if part.restarts:
                item["restarts"] = part.restarts
            if part.retry_at is not None and state == "restarting":
                item["retry_at"] = part.retry_at.isoformat()
            out[name] = item
        return out

    @staticmethod
    def overall(snapshot: dict[str, dict[str, object]]) -> str:
        return "ok" if all(p["state"] == "running" for p in snapshot.values()) else "degraded"


async def stop_or_timeout(delay: float, stop: asyncio.Event) -> bool:
    """Wait ``delay`` seconds, or less when ``stop`` is set; True when it was."""
    try:
        await asyncio.wait_for(stop.wait(), delay)
    except TimeoutError:
        return False
    return True


def failure_sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, EXPECTED_FAILURES):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def keep_alive(
    name: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    board: PartBoard,
    backoff: Backoff = Backoff(),
    *,
    wait: Wait = stop_or_timeout,
    monotonic: Callable[[], float] | None = None,
) -> None:
    """Run ``run()`` until ``stop`` is set; restart it with backoff whenever it fails or ends on its own.
    ``wait`` (the backoff wait) and ``monotonic`` (how long a run lasted) are the loop's unless given."""
    clock = monotonic or asyncio.get_running_loop().time
    delay = backoff.initial_s
    failing_since: datetime | None = None  # the first failure of this run of failures ("restarting since")
    while not stop.is_set():
        board.set(name, "running")
        started = clock()
        bug: BaseException | None = None
        try:
            await run()
        except asyncio.CancelledError:
            board.set(name, "stopped")
            raise
        except EXPECTED_FAILURES as exc:
            error = failure_sentence(exc)
        except Exception as exc:
            error, bug = failure_sentence(exc), exc
        else:
            if stop.is_set():
                break
            error = "ended on its own"
        if stop.is_set():
            break
        if clock() - started >= backoff.max_s:
            delay = backoff.initial_s  # it had been healthy for a while: this is a new trouble
            failing_since = None
        failing_since = failing_since or board.clock()
        board.set(name, "restarting", error=error, retry_at=board.clock() + timedelta(seconds=delay),
                  since=failing_since)
        log.error("%s: %s; retrying in %g s", name, error, delay, exc_info=bug)
        if await wait(delay, stop):
            break
        delay = backoff.after(delay)
    board.set(name, "stopped")
