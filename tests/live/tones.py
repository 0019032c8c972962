"""Who hears whom, from what each simulated party heard: the parties of ``[sim-tone]`` (tests/live/sim-parties.conf)
sound a tone of their own and MixMonitor what reaches them into ``heard-<Hz>-<id>.wav``; :func:`heard` tells
whether a frequency is in a stretch of such a file (Goertzel's algorithm: the power at one frequency, against the
stretch's whole power)."""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path


def samples(path: Path) -> tuple[array.array[int], int]:
    with wave.open(str(path), "rb") as w:
        data = array.array("h")
        data.frombytes(w.readframes(w.getnframes()))
        return data, w.getframerate()


def share(part: array.array[int] | list[int], freq: float, rate: int) -> float:
    """The share of ``part``'s power at ``freq`` (1.0: a pure tone of it; 0 for silence)."""
    n = len(part)
    if n == 0:
        return 0.0
    k = round(n * freq / rate)
    coeff = 2 * math.cos(2 * math.pi * k / n)
    s1 = s2 = 0.0
    for x in part:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(k)|^2
    total = sum(x * x for x in part)
    return 2 * power / (n * total) if total else 0.0


def heard(path: Path, freq: float, start_s: float, end_s: float, floor: float = 0.02) -> bool:
    """Whether ``freq`` is in ``path`` between the two offsets (a tone among others still holds a share of the
    power well above ``floor``; a tone that is not there holds next to none)."""
    data, rate = samples(path)
    return share(data[int(start_s * rate):int(end_s * rate)], freq, rate) > floor
