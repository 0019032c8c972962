"""Recording rules (pure): retention classes and expiry, paused spans, and what a byte range request asks for.

Retention: every recording has a class — ``callback`` (回访), ``complaint`` (投诉), ``order`` (电话委托) or
``ordinary`` — and is kept that many whole years after the call (settings ``recording_retention_years_*``, 3 by
default: the CSRC minimum for call-backs and complaint files). An expired recording is purged unless it is on
legal hold; a recording still being made never expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

RETENTION_CLASSES = ("callback", "complaint", "order", "ordinary")
# a complaint outranks everything: when a call becomes a complaint call, it is kept as long as complaints are
CLASS_PRIORITY = {"ordinary": 0, "order": 1, "callback": 2, "complaint": 3}


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years (29 February becomes 28 February in a common year)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def expires_at(started_at: datetime, retention_class: str, years_by_class: dict[str, int]) -> datetime:
    if retention_class not in RETENTION_CLASSES:
        raise ValueError(f"unknown retention class {retention_class!r}")
    years = years_by_class[retention_class]
    if years < 1:
        raise ValueError("a recording is kept at least one year")
    return add_years(started_at, years)


def purgeable(now: datetime, expiry: datetime | None, legal_hold: bool, state: str) -> bool:
    """Whether the purge job deletes this recording now."""
    return state == "stopped" and expiry is not None and expiry <= now and not legal_hold


def stronger_class(current: str, wanted: str) -> str:
    """The class kept when a recording is reclassified: the one with the longer claim (complaint > ...)."""
    return wanted if CLASS_PRIORITY[wanted] > CLASS_PRIORITY[current] else current


Span = tuple[float, float]


def close_spans(spans: list[list[float]], duration_s: float) -> list[Span]:
    """Paused spans as (start, end) offsets in seconds, an open one closed at the end of the call, clipped to
    ``[0, duration_s]``, sorted and merged where they overlap."""
    out: list[Span] = []
    for span in spans:
        start = max(0.0, float(span[0]))
        end = float(span[1]) if len(span) > 1 else duration_s
        end = min(end, duration_s)
        if end > start:
            out.append((start, end))
    out.sort()
    merged: list[Span] = []
    for start, end in out:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range of an HTTP ``Range`` header (RFC 9110) over an object of ``size`` bytes; None for no
    header (the whole object). A header that is not a byte range is ignored (None), as the RFC allows; a range
    outside the object raises RangeNotSatisfiable (416). Several ranges are answered with the first one's span
    to the last one's end — browsers never ask for more than one for audio."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    starts: list[int] = []
    ends: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if (first and not first.isdigit()) or (last and not last.isdigit()) or (not first and not last):
            return None
        if not first:  # suffix: the last N bytes
            n = int(last)
            if n == 0:
                raise RangeNotSatisfiable(header)
            starts.append(max(0, size - n))
            ends.append(size - 1)
        else:
            a = int(first)
            if a >= size:
                raise RangeNotSatisfiable(header)
            b = int(last) if last else size - 1
            if b < a:
                return None
            starts.append(a)
            ends.append(min(b, size - 1))
    if size == 0:
        raise RangeNotSatisfiable(header)
    return ByteRange(min(starts), max(ends))
