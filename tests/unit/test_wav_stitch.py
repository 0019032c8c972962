"""The WAV helpers of the recordings port: segments stitched with silence between them (an IVR session's recording
stopped while a secret was typed) and a file read only once its writer has closed it."""

from __future__ import annotations

import array
import io
import wave

import pytest

from callcenter.adapters.recordings_simulated import silent_share
from callcenter.ports.recordings import read_wav_if_closed, stitch_wav, wav_duration_s


def tone(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array.array("h", [3000, -3000] * int(seconds * rate / 2)).tobytes())
    return out.getvalue()


def test_segments_and_gaps_keep_the_calls_timeline() -> None:
    data = stitch_wav([tone(1.0), tone(0.5), tone(0.25)], [0.75, 0.4])
    assert wav_duration_s(data) == pytest.approx(1.0 + 0.75 + 0.5 + 0.4 + 0.25, abs=1e-3)
    assert silent_share(data, 0.0, 1.0) == 0.0 and silent_share(data, 1.0, 1.75) == 1.0
    assert silent_share(data, 1.75, 2.25) == 0.0 and silent_share(data, 2.25, 2.65) == 1.0
    assert silent_share(data, 2.65, 2.9) == 0.0


def test_a_gap_after_the_last_segment_is_silence_at_the_end() -> None:
    data = stitch_wav([tone(0.5)], [1.5])
    assert wav_duration_s(data) == pytest.approx(2.0, abs=1e-3) and silent_share(data, 0.5, 2.0) == 1.0


@pytest.mark.parametrize("segments, gaps", [([], []), ([b"RIFF-not-a-wav"], []), ("two", [0.1, 0.2, 0.3])])
def test_what_cannot_be_stitched_is_refused(segments, gaps) -> None:  # type: ignore[no-untyped-def]
    parts = [tone(0.1), tone(0.1)] if segments == "two" else segments
    with pytest.raises(ValueError):
        stitch_wav(parts, gaps)


def test_segments_of_different_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="segment 1"):
        stitch_wav([tone(0.1), tone(0.1, rate=16000)], [0.1])


def test_a_file_still_being_written_is_not_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.wav"
    assert read_wav_if_closed(str(path)) is None
    whole = tone(0.2)
    path.write_bytes(whole + b"\0" * 320)  # more bytes than the header counts: the writer is not done
    assert read_wav_if_closed(str(path)) is None
    path.write_bytes(whole)
    assert read_wav_if_closed(str(path)) == whole
