"""How a long job reports how far it is: ``progress(done, total)`` (a command line draws a bar from it)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """The default: nobody watches."""
