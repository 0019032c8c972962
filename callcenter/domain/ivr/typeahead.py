"""Keys typed ahead (while a prompt played or backend work ran) answering the next question: one rule for every
carrier (FastAGI keeps them from ``WAIT FOR DIGIT`` slices, Twilio from the ``<Gather>`` it plays while the work
runs). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.domain.ivr.interpreter import Collect


@dataclass(frozen=True)
class TypedAhead:
    """What the keys typed ahead do to one question: ``answer`` (the keys that answer it, without the
    terminator), or None when they are only its beginning (``prefix``: the caller goes on typing); ``rest``: the
    keys left for the questions after it."""

    answer: str | None
    prefix: str = ""
    rest: str = ""


def apply_typed(typed: str, cmd: Collect) -> TypedAhead:
    """The keys ``typed`` ahead applied to the question ``cmd``: answered up to its terminator (``#`` for a
    question of several keys) or its last key; fewer keys than that are the start of the answer."""
    end = cmd.terminator or ("#" if cmd.max_digits > 1 else None)
    if end and end in typed and (cmd.max_digits > 1 or typed[0] == end):
        head, _, rest = typed.partition(end)
        if len(head) <= cmd.max_digits:
            return TypedAhead(head, rest=rest)
    if len(typed) >= cmd.max_digits:
        return TypedAhead(typed[: cmd.max_digits], rest=typed[cmd.max_digits:])
    return TypedAhead(None, prefix=typed)


def kept_after(outcome: str, keep: tuple[str, ...], typed: str) -> str:
    """The keys typed while an action ran that survive its ``outcome``: only after the outcomes in ``keep``
    (after a failure the caller must hear what went wrong; after a transfer, its result)."""
    return typed if outcome in keep else ""
