"""The simulated PBX's recordings: a real 8 kHz mono 16-bit WAV file of a simulated call, both parties' lines
synthesised with espeak-ng (the agent at the voice's normal pitch, the client higher) and converted with sox, as
the IVR prompts are (``callcenter.adapters.ivr.prompts``); a paused span (the client typing a PIN) is silence.

``record_simulated_call`` is what the simulated telephony calls when a call it connected ends: it runs the
recording use cases (start, pause / resume per span, stop with the file), so the whole path — metadata, paused
spans, store, sha256, duration, playback — runs in tests and demos without a PBX.
"""

from __future__ import annotations

import array
import io
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from callcenter.adapters.ivr.prompts import ESPEAK_VOICES, PromptToolsMissing

RATE = 8000


@dataclass(frozen=True)
class Line:
    speaker: str  # "agent" / "client"
    text: str
    pause_after_s: float = 0.4  # the gap before the next line


def _check_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise PromptToolsMissing(f"{' and '.join(missing)} not found (apt-get install espeak-ng sox)")


_SPOKEN: dict[tuple[str, str, int], bytes] = {}  # espeak's output per line: a PBX records many calls alike


def _speak(text: str, lang: str, pitch: int) -> array.array[int]:
    cached = _SPOKEN.get((text, lang, pitch))
    if cached is not None:
        out = array.array("h")
        out.frombytes(cached)
        return out
    samples = _speak_now(text, lang, pitch)
    _SPOKEN[(text, lang, pitch)] = samples.tobytes()
    return samples


def _speak_now(text: str, lang: str, pitch: int) -> array.array[int]:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES.get(lang, "en-us"), "-s", "160", "-p", str(pitch),
                        "-w", str(raw), "--", text], check=True, capture_output=True, timeout=60)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(out),
                        "gain", "-n", "-3"], check=True, capture_output=True, timeout=60)
        with wave.open(str(out), "rb") as w:
            samples = array.array("h")
            samples.frombytes(w.readframes(w.getnframes()))
            return samples


def wav_bytes(samples: array.array[int]) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _assemble(lines: Sequence[Line], lang: str) -> tuple[array.array[int], list[float]]:
    """The samples of the lines with their gaps, and the offset (s) where each line's speech ends."""
    _check_tools()
    samples = array.array("h")
    ends: list[float] = []
    for line in lines:
        samples.extend(_speak(line.text, lang, 40 if line.speaker == "agent" else 70))
        ends.append(len(samples) / RATE)
        samples.extend(array.array("h", bytes(2 * int(line.pause_after_s * RATE))))
    return samples, ends


def _finish(samples: array.array[int], paused: Sequence[tuple[float, float]], min_duration_s: float) -> bytes:
    short = int(min_duration_s * RATE) - len(samples)
    if short > 0:
        samples.extend(array.array("h", bytes(2 * short)))
    for start, end in paused:
        a, b = max(0, int(start * RATE)), min(len(samples), int(end * RATE))
        if b > a:
            samples[a:b] = array.array("h", bytes(2 * (b - a)))
    return wav_bytes(samples)


DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336),
        "6": (770, 1477), "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209),
        "0": (941, 1336), "#": (941, 1477)}
KEY_S, KEY_GAP_S = 0.12, 0.25  # a key's tone, and from one key to the next


def _tone(key: str) -> array.array[int]:
    low, high = DTMF[key]
    n = int(KEY_S * RATE)
    return array.array("h", (int(6000 * (math.sin(2 * math.pi * low * i / RATE) + math.sin(2 * math.pi * high * i / RATE)))
                             for i in range(n)))


def synthesise_leg(duration_s: float, *, muted: Sequence[tuple[float, float]] = (),
                   keys: Sequence[tuple[float, str]] = (), lines: Sequence[Line] = (), lang: str = "zh-CN") -> bytes:
    """The WAV file of one recorded call leg of ``duration_s`` seconds as the simulated PBX heard it: the
    conversation (``lines``, by default an agent and a client talking, repeated to fill the leg), the key
    tones the client typed (``keys``: (offset_s, digits)), and every ``muted`` span written as silence."""
    talk, _ = _assemble(lines or CONVERSATION, lang)
    total = max(0, int(round(duration_s * RATE)))
    samples = array.array("h")
    while len(samples) < total and len(talk):
        samples.extend(talk[:total - len(samples)])
    if len(samples) < total:
        samples.extend(array.array("h", bytes(2 * (total - len(samples)))))
    for at, digits in keys:
        for i, key in enumerate(digits):
            if key not in DTMF:
                continue
            a = int((at + i * KEY_GAP_S) * RATE)
            tone = _tone(key)[:max(0, total - a)]
            if a >= 0 and len(tone):
                samples[a:a + len(tone)] = tone
    for start, end in muted:
        a, b = max(0, int(start * RATE)), min(total, int(end * RATE))
        if b > a:
            samples[a:b] = array.array("h", bytes(2 * (b - a)))
    return wav_bytes(samples)


def synthesise_call(lines: Sequence[Line], lang: str = "zh-CN", *, paused: Sequence[tuple[float, float]] = (),
                    min_duration_s: float = 0.0) -> bytes:
    """The WAV file of a conversation: the lines one after another with their gaps, padded with silence to
    ``min_duration_s``; every ``paused`` (start_s, end_s) span is silence (zeroed samples)."""
    samples, _ = _assemble(lines, lang)
    return _finish(samples, paused, min_duration_s)


def silent_share(data: bytes, start_s: float, end_s: float) -> float:
    """The share of exactly silent samples between two offsets (tests: a paused span is silence)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        rate = w.getframerate()
        samples = array.array("h")
        samples.frombytes(w.readframes(w.getnframes()))
    part = samples[int(start_s * rate):int(end_s * rate)]
    return sum(1 for x in part if x == 0) / len(part) if part else 0.0


DEFAULT_LINES = (
    Line("agent", "您好，这里是示例证券客服中心，工号一零二四，请问是张先生吗？"),
    Line("client", "是我，什么事？"),
    Line("agent", "为核实您的身份，请在电话键盘上输入您的交易密码。", 0.2),
    Line("client", "好的。", 3.0),  # the client types the PIN here: the recording is paused
    Line("agent", "核实成功。本次回访您账户的风险等级变更，请问您是否了解相关风险？"),
    Line("client", "了解，谢谢。"),
    Line("agent", "感谢您的配合，再见。"),
)


CONVERSATION = (
    Line("agent", "您好，这里是示例证券客服中心，请问有什么可以帮您？"),
    Line("client", "我想问一下我的账户。"),
    Line("agent", "好的，我帮您查一下，请稍等。", 1.0),
    Line("client", "好的，谢谢。", 1.0),
)


def record_simulated_call(recordings: object, call_ref: str, *, started_at: datetime, agent_id: int | None = None,
                          client_id: int | None = None, campaign_id: int | None = None,
                          attempt_id: int | None = None, desk_contact_id: int | None = None,
                          retention_class: str = "ordinary", parent_id: int | None = None,
                          lines: Sequence[Line] = DEFAULT_LINES, pin_spans: Sequence[tuple[float, float]] | None = None,
                          lang: str = "zh-CN") -> int:
    """Record a simulated call through the recording use cases (``RecordingService``): start at ``started_at``,
    pause and resume at each PIN span (by default the gap after the client's "好的"), stop when the talk ends,
    with the synthesised WAV; the recording's duration is the talk time. Returns the recording id."""
    from callcenter.services.recordings import RecordingService

    assert isinstance(recordings, RecordingService)
    samples, ends = _assemble(lines, lang)
    if pin_spans is None:  # the gap after the fourth line (the client types the PIN), if it is long enough
        pin_spans = [(ends[3] + 0.2, ends[3] + lines[3].pause_after_s - 0.2)] \
            if len(lines) > 4 and lines[3].pause_after_s > 0.6 else []
    audio = _finish(samples, pin_spans, 0.0)
    with wave.open(io.BytesIO(audio), "rb") as w:
        duration = w.getnframes() / w.getframerate()
    rid = recordings.start(call_ref, agent_id=agent_id, client_id=client_id, campaign_id=campaign_id,
                           attempt_id=attempt_id, desk_contact_id=desk_contact_id, retention_class=retention_class,
                           parent_id=parent_id, at=started_at)
    for start, end in pin_spans:
        recordings.pause(rid, started_at + timedelta(seconds=start))
        recordings.resume(rid, started_at + timedelta(seconds=end))
    recordings.stop(rid, started_at + timedelta(seconds=duration), audio=audio)
    return rid
