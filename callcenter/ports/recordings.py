"""Where recording audio lives: a store of whole files by key, read back whole or by byte range.

Implementations: ``callcenter.adapters.recordings_fs.FileRecordingStore`` (one file per recording under the
``recordings_dir`` setting, the default) and ``callcenter.adapters.recordings_s3.S3RecordingStore`` (an
S3-compatible object store through boto3). The metadata (call, agent, paused spans, retention, legal hold) is the
``Recording`` row in the database; the store only knows keys and bytes.

Keys are relative paths of ``[A-Za-z0-9._-]`` segments separated by ``/`` (``2026/11/25/rec-12.wav``):
``check_key`` refuses anything else (no ``..``, no leading ``/``), so a key can never leave the store's folder.
"""

from __future__ import annotations

import hashlib
import io
import re
import wave
from dataclasses import dataclass
from typing import Protocol

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


class RecordingNotFound(KeyError):
    """No object under this key."""


class BadRecordingKey(ValueError):
    """The key is not a relative path of safe segments."""


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or len(key) > 255 or any(not _SEGMENT.match(p) or p in (".", "..") for p in parts):
        raise BadRecordingKey(f"not a recording key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredRecording:
    key: str
    size: int
    sha256: str  # hex digest of the whole object


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wav_duration_s(data: bytes) -> float:
    """Duration of a PCM WAV file in seconds (ValueError when ``data`` is not one)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file: {exc}") from None


def read_wav_if_closed(path: str) -> bytes | None:
    """The WAV file at ``path`` once its writer has closed it (Asterisk's MixMonitor writes the RIFF size when it
    closes the file: until then the header does not count every byte); None while it is missing or open."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    riff = int.from_bytes(data[4:8], "little")
    return data if riff + 8 == len(data) else None


def stitch_wav(segments: list[bytes], gaps_s: list[float]) -> bytes:
    """One PCM WAV of ``segments`` in order with ``gaps_s[i]`` seconds of silence after segment ``i`` (a recording
    stopped while the caller typed a PIN, then started again: the span keeps its length, as silence); one gap
    more than between the segments is silence at the end (the call ended while the recording was stopped). The
    segments must share rate, width and channels (one MixMonitor's files do); ValueError otherwise."""
    if not segments:
        raise ValueError("no segment to stitch")
    if len(gaps_s) not in (len(segments) - 1, len(segments)):
        raise ValueError("one gap between each two segments (and at most one after the last)")
    params = None
    frames: list[bytes] = []
    for i, data in enumerate(segments):
        try:
            with wave.open(io.BytesIO(data), "rb") as w:
                shape = (w.getnchannels(), w.getsampwidth(), w.getframerate())
                if params is not None and shape != params:
                    raise ValueError(f"segment {i} is {shape}, not {params}")
                params = shape
                frames.append(w.readframes(w.getnframes()))
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"segment {i} is not a PCM WAV file: {exc}") from None
        if i < len(gaps_s):
            channels, width, rate = shape
            frames.append(bytes(round(max(0.0, gaps_s[i]) * rate) * width * channels))
    assert params is not None
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(params[0])
        w.setsampwidth(params[1])
        w.setframerate(params[2])
        w.writeframes(b"".join(frames))
    return out.getvalue()


class RecordingStore(Protocol):
    def put(self, key: str, data: bytes) -> StoredRecording:
        """Store ``data`` under ``key`` (replacing what was there); its size and sha256."""
        ...

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` to ``end`` inclusive (``end`` None: to the last byte); RecordingNotFound."""
        ...

    def size(self, key: str) -> int:
        """The object's length in bytes; RecordingNotFound."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (purges are retried)."""
        ...


class RecordsCalls(Protocol):
    """A telephony backend that records its calls (the simulated PBX; Asterisk through MixMonitor over AMI; Twilio
    through the Recordings API on the customer's call, its file fetched once the completed callback came).

    ``name`` is the recording's file name without extension (``rec-<recording id>``). ``record_mute`` writes
    silence from now on (``True``) or the call again (``False``): the paused span keeps its length in the file.
    ``record_stop`` ends the recording; ``record_audio`` is the finished WAV file (None when the backend has
    none: the call never got recorded, or the file never completed)."""

    async def record_start(self, call_id: str, name: str) -> None: ...

    async def record_mute(self, call_id: str, muted: bool) -> None: ...

    async def record_stop(self, call_id: str) -> None: ...

    async def record_audio(self, call_id: str, name: str) -> bytes | None: ...
