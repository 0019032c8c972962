"""AMI framing without I/O: bytes in, messages (or malformed frames) out, the leftover kept for the next read.

Asterisk ends every message with an empty line (``\\r\\n\\r\\n``). ``FrameParser.feed`` cuts the bytes read so
far at those boundaries and parses each frame on its own, so one bad frame never costs the frame after it:

- a frame that is not an AMI message (a line that is not ``Key: value``, neither ``Event`` nor ``Response``,
  a repeated ``Event`` / ``Response`` / ``ActionID``) comes out as ``Malformed`` and parsing goes on at the
  next boundary;
- a frame longer than ``max_frame`` bytes without a boundary is given up as ``Malformed`` and the bytes up to
  its boundary are dropped when it arrives (resynchronisation), the buffer never grows without bound;
- bytes are decoded per complete frame (UTF-8, bad bytes replaced), so a character split across two reads
  survives; the ``Asterisk Call Manager/x`` banner at the start of a connection is taken apart from the first
  message that follows it on the same line run.

``Response: Follows`` / ``Response: Fail`` frames may carry a body of lines that are not headers (old
``Command`` output); those lines become the message's ``content`` as panoramisk does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BOUNDARY = b"\r\n\r\n"
BANNER = b"Asterisk Call Manager/"
MAX_FRAME = 256 * 1024  # a CoreShowChannels item is < 1 KiB; nothing Asterisk sends comes near this
_SINGLE = ("event", "response", "actionid")  # headers that must not repeat: they decide where a message goes
_HAS_BODY = ("Response: Follows", "Response: Fail")


@dataclass(frozen=True)
class Frame:
    headers: dict[str, str | list[str]]
    content: str = ""


@dataclass(frozen=True)
class Malformed:
    raw: bytes  # at most the first 200 bytes of the frame (callers mask it before logging)
    why: str


def parse_frame(raw: bytes) -> Frame | Malformed:
    """One frame (the bytes between two boundaries) -> a message, or why it is not one."""
    text = raw.decode("utf-8", "replace").strip("\r\n")
    lines = text.split("\r\n")
    body = lines[0].startswith(_HAS_BODY)
    headers: dict[str, str | list[str]] = {}
    seen: dict[str, str] = {}
    content: list[str] = []
    for line in lines:
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip() or " " in key:
            if body:
                content.append(line)
                continue
            return Malformed(raw[:200], "a line that is not a header")
        value = value[1:] if value.startswith(" ") else value
        lower = key.lower()
        if lower in seen:
            if lower in _SINGLE:
                return Malformed(raw[:200], f"repeated {key} header")
            key = seen[lower]
            old = headers[key]
            headers[key] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            seen[lower] = key
            headers[key] = value
    if "event" not in seen and "response" not in seen:
        return Malformed(raw[:200], "neither Event nor Response")
    return Frame(headers, "\n".join(content))


@dataclass
class FrameParser:
    """The state of one connection's byte stream. ``feed`` returns what the new bytes completed."""

    max_frame: int = MAX_FRAME
    banner: str | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False  # inside an oversized frame: drop bytes up to its boundary
    _started: bool = False

    def feed(self, data: bytes) -> list[Frame | Malformed]:
        self._buffer += data
        out: list[Frame | Malformed] = []
        if not self._started:
            if len(self._buffer) < len(BANNER) and BANNER.startswith(bytes(self._buffer)):
                return out  # maybe the start of the banner: wait for more
            if self._buffer.startswith(BANNER):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    if len(self._buffer) <= self.max_frame:
                        return out
                    end = len(self._buffer)
                self.banner = self._buffer[len(BANNER):end].decode("utf-8", "replace").strip()
                del self._buffer[: end + 2]
            self._started = True
        start = 0
        while True:
            end = self._buffer.find(BOUNDARY, start)
            if end < 0:
                break
            raw = bytes(self._buffer[start:end])
            start = end + len(BOUNDARY)
            if self._skipping:
                self._skipping = False  # the end of the oversized frame: in step again
                continue
            if raw.strip(b"\r\n"):
                out.append(parse_frame(raw))
        del self._buffer[:start]
        if len(self._buffer) > self.max_frame:
            if not self._skipping:
                out.append(Malformed(bytes(self._buffer[:200]), f"frame longer than {self.max_frame} bytes"))
            self._skipping = True
            keep = len(BOUNDARY) - 1  # a boundary may straddle this read and the next
            del self._buffer[:-keep]
        return out
