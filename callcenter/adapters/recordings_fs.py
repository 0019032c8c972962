"""The filesystem recording store: one file per recording under a root folder (setting ``recordings_dir``).

Writes go to a temporary file in the same folder and are renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from callcenter.ports.recordings import RecordingNotFound, StoredRecording, check_key, sha256_hex


class FileRecordingStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> StoredRecording:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredRecording(key, len(data), sha256_hex(data))

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        target = self.path(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range {start}-{end}")
        try:
            with target.open("rb") as f:
                f.seek(start)
                return f.read() if end is None else f.read(end - start + 1)
        except FileNotFoundError:
            raise RecordingNotFound(key) from None

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise RecordingNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
