"""The one carrier loop: drives the pure IVR interpreter for every carrier (FastAGI, Twilio, the text phone).

The interpreter (:mod:`callcenter.domain.ivr.interpreter`) returns commands; :func:`drive` hands each one to the
carrier method named for it in :data:`HANDLERS` and feeds whatever event comes back into the session.
A carrier is a small object with some of these methods (sync or async; a sync carrier is driven with
:func:`drive_sync`):

``speak(cmd)``         Say / SayDigits / SayNumber / SayAmount / SayText
``collect(cmd)``       Collect -> the caller's Event (DigitsEntered / Timeout), or None when the answer
                       arrives later (a Twilio ``<Gather>`` posts it to the next webhook)
``run_action(cmd)``    RunAction -> ActionResult (backend calls)
``record(cmd)``        Record (the call record)
``set_language(cmd)``  SetLanguage
``set_variable(cmd)``  SetVariable
``handoff(cmd)``       Handoff (the call goes to an agent)
``hang_up(cmd)``       EndCall

A command whose method the carrier lacks (or a command type this table does not know) raises
:class:`UnhandledCommand` naming it: nothing is dropped silently.  A carrier's method raises
:class:`CallerGone` when the caller is no longer there; the loop then still carries out every action the
interpreter had already decided on (a confirmed transfer completes exactly once, de-duplicated by the
backend on the interpreter's idempotency key), feeds the hang-up and records what remains.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar, cast

from callcenter.domain.ivr.interpreter import (
    ActionResult,
    Collect,
    Command,
    Event,
    Handoff,
    EndCall,
    CallerHungUp,
    FlowRun,
    Record,
    RunAction,
    Say,
    SayAmount,
    SayDigits,
    SayNumber,
    SayText,
    SetLanguage,
    SetVariable,
)

HANDLERS: dict[type, str] = {
    Say: "speak", SayDigits: "speak", SayNumber: "speak", SayAmount: "speak", SayText: "speak",
    Collect: "collect",
    RunAction: "run_action",
    Record: "record",
    SetLanguage: "set_language",
    SetVariable: "set_variable",
    Handoff: "handoff",
    EndCall: "hang_up",
}

T = TypeVar("T")


class UnhandledCommand(Exception):
    """The carrier has no way to carry out this interpreter command (a bug to fix, never to skip)."""

    def __init__(self, carrier: object, cmd: object) -> None:
        self.command = type(cmd).__name__
        super().__init__(f"IVR carrier {type(carrier).__name__} does not handle the command {self.command}")


class CallerGone(Exception):
    """Raised by a carrier method: the caller hung up or the connection is gone (``reason`` is recorded)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _maybe(value: Awaitable[T] | T) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


async def dispatch(carrier: object, cmd: Command) -> Event | None:
    """Hand one command to the carrier; the event it produced, if any."""
    name = HANDLERS.get(type(cmd))
    method = getattr(carrier, name, None) if name else None
    if method is None:
        raise UnhandledCommand(carrier, cmd)
    result = await _maybe(method(cmd))
    if name in ("collect", "run_action"):
        return cast("Event | None", result)
    return None


async def drive(session: FlowRun, commands: Iterable[Command], carrier: object) -> None:
    """Carry out ``commands`` and everything the session answers, until it waits for a later event or ends."""
    queue: list[Command] = list(commands)
    try:
        while queue:
            cmd = queue.pop(0)
            event = await dispatch(carrier, cmd)
            if event is not None:
                queue.extend(session.feed(event))
            elif isinstance(cmd, Collect) and queue:
                raise RuntimeError(f"commands after a deferred Collect: {[type(c).__name__ for c in queue]}")
    except CallerGone as gone:
        await after_hangup(session, queue, carrier, gone.reason)


async def after_hangup(session: FlowRun, queue: list[Command], carrier: object, reason: str) -> None:
    """The caller is gone: decided actions still run, the hang-up is fed, only records are kept."""
    pending = list(queue)
    queue.clear()
    while pending:
        cmd = pending.pop(0)
        if isinstance(cmd, RunAction):
            result = await dispatch(carrier, cmd)
            if isinstance(result, ActionResult):  # what follows would be said or asked: only its records
                pending.extend(c for c in session.feed(result) if isinstance(c, Record))
        elif isinstance(cmd, Record):
            await dispatch(carrier, cmd)
    for cmd in session.feed(CallerHungUp(reason)):
        if isinstance(cmd, Record):
            await dispatch(carrier, cmd)


def drive_sync(session: FlowRun, commands: Iterable[Command], carrier: object) -> None:
    """:func:`drive` for a carrier whose methods are all synchronous (no event loop needed)."""
    run_sync(drive(session, commands, carrier))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (every awaited call is synchronous) to its end."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("a synchronous IVR carrier awaited something: use drive() in an event loop")
