"""Recording a hotline (IVR) session: what the client heard and said before any agent — the order read back and
the client's "确认" among it (the CSRC's record of a phone order's confirmation), the menu choices, the hand-off.

The carrier records the session in segments and stops between them while the client types a secret (PIN, trading
password: a ``Collect`` with ``secret``), so no key of a secret ever reaches a file; on Asterisk each segment is a
MixMonitor started and stopped over FastAGI (``adapters.ivr.agi``), which needs no AMI privilege. When the
session is over, :class:`IvrRecorder` gets the :class:`IvrTape` — the segments' files and the secret spans
between them — and keeps **one** recording of the session: the segments stitched with silence as long as each
span (so the file's timeline is the call's), the spans marked ``pin`` in its metadata, linked to the IVR session
and its client, kept under the ``order`` retention class when an order was confirmed in it (and each of those
``order_confirmations`` then names the recording), ``ordinary`` otherwise.

Twilio records the session as one file instead (``adapters/ivr/twilio_voice.py``: the Recordings API on the
caller's call, paused with ``pauseBehavior=silence`` around each secret ``<Gather>``): :meth:`IvrRecorder.keep_whole`
takes it with its spans. Both end in :func:`keep_session_recording`, the one owner of the row.

Use cases only: the files are read through the ``read`` callable the carrier hands over (Asterisk closes a
MixMonitor file on its own thread, a little after the stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ports.recordings import stitch_wav, wav_duration_s
from callcenter.services.recordings import RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models.ivr import IvrSession
from callcenter.store.models.orders import OrderConfirmation

log = logging.getLogger(__name__)


@dataclass
class IvrTape:
    """One IVR session's recording as the carrier made it: ``segments`` in order (what ``read`` is given), and
    ``secret_spans[i]`` — offsets in seconds from ``started_at`` — the stretch between segment ``i`` and ``i+1``
    when the recording was stopped for a secret. ``ended_s``: the offset at which the last segment stopped."""

    call_id: str
    started_at: datetime
    segments: list[str] = field(default_factory=list)
    secret_spans: list[tuple[float, float]] = field(default_factory=list)
    ended_s: float | None = None

    def began_segment(self, name: str) -> None:
        self.segments.append(name)

    def stopped_for_secret(self, at_s: float) -> None:
        self.secret_spans.append((at_s, at_s))

    def resumed(self, at_s: float) -> None:
        start, _ = self.secret_spans[-1]
        self.secret_spans[-1] = (start, max(start, at_s))


def file_timeline(files: list[bytes], gaps_s: list[float]) -> tuple[list[tuple[float, float]], float]:
    """The secret spans as offsets in the stitched file (each segment as long as its file, each gap as measured)
    and the file's length: the metadata points into the file, whatever the segments' lengths against the clock."""
    spans: list[tuple[float, float]] = []
    at = 0.0
    for i, data in enumerate(files):
        at += wav_duration_s(data)
        if i < len(gaps_s):
            spans.append((at, at + gaps_s[i]))
            at += gaps_s[i]
    return spans, at


@dataclass
class IvrRecorder:
    recordings: RecordingService
    sessions: sessionmaker[Session]
    file_wait_s: float = 10.0  # how long the last segment's file may take to be closed
    poll_s: float = 0.2
    _tasks: set[asyncio.Task[int | None]] = field(default_factory=set)

    def keep(self, tape: IvrTape, read: Callable[[str], bytes | None]) -> asyncio.Task[int | None]:
        """Keep ``tape`` in the background (the session's connection is not held for it); ``drain`` waits."""
        task = asyncio.ensure_future(self.store(tape, read))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def store(self, tape: IvrTape, read: Callable[[str], bytes | None]) -> int | None:
        """The session's recording row and its stitched file; None when no segment is complete (logged)."""
        if not tape.segments:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.file_wait_s
        files: list[bytes] = []
        for name in tape.segments:
            while True:
                data = await asyncio.to_thread(read, name)
                if data is not None:
                    files.append(data)
                    break
                if loop.time() >= deadline:
                    log.warning("IVR recording of %s: segment %s never completed; kept none", tape.call_id, name)
                    return None
                await asyncio.sleep(self.poll_s)
        # a span after the last segment (the caller hung up typing a secret) is silence at the end
        gaps = [end - start for start, end in tape.secret_spans[: len(files)]]
        try:
            audio = stitch_wav(files, gaps)
            spans, ended = file_timeline(files, gaps)
        except ValueError as exc:
            log.warning("IVR recording of %s: %s; kept none", tape.call_id, exc)
            return None
        rec_id = await asyncio.to_thread(keep_session_recording, self.recordings, self.sessions, tape.call_id,
                                         tape.started_at, audio, spans, ended)
        log.info("IVR session %s recorded (recording %s, %d segment(s), %d secret span(s))", tape.call_id, rec_id,
                 len(tape.segments), len(tape.secret_spans))
        return rec_id

    def keep_whole(self, call_id: str, started_at: datetime, audio: bytes,
                   spans: list[tuple[float, float | None]]) -> int:
        """A session the carrier recorded as **one** file, silent where it was paused for a secret (Twilio's
        Recordings API with ``pauseBehavior=silence``): ``spans`` are offsets in that file (an open end — the call
        ended while paused — runs to the file's end). ValueError when ``audio`` is not a PCM WAV file."""
        ended = wav_duration_s(audio)
        closed = [(min(start, ended), min(ended, end if end is not None else ended)) for start, end in spans]
        rec_id = keep_session_recording(self.recordings, self.sessions, call_id, started_at, audio,
                                        [(a, max(a, b)) for a, b in closed], ended)
        log.info("IVR session %s recorded (recording %s, one file, %d secret span(s))", call_id, rec_id, len(spans))
        return rec_id


def keep_session_recording(recordings: RecordingService, sessions: sessionmaker[Session], call_id: str,
                           started_at: datetime, audio: bytes, spans: list[tuple[float, float]],
                           ended: float) -> int:
    """The one owner of an IVR session's recording row, whichever carrier made the file: ``audio`` (stitched or
    whole) from ``started_at``, ``spans`` (offsets in it) marked ``pin``, linked to the session of ``call_id`` and
    its client; ``order`` when an order was confirmed in it since ``started_at`` (each such confirmation not yet
    linked to a recording then names this one), ``ordinary`` otherwise."""
    def facts(s: Session) -> tuple[int | None, int | None, list[int]]:
        session = s.scalars(select(IvrSession).where(IvrSession.call_id == call_id)).first()
        if session is None:
            return None, None, []
        confirmed = list(s.scalars(select(OrderConfirmation.id)
                                   .where(OrderConfirmation.ivr_session_id == session.id,
                                          OrderConfirmation.recording_id.is_(None))))
        return session.id, session.client_id, confirmed

    session_id, client_id, confirmations = run_in_transaction(sessions, facts)
    at = started_at
    rec_id = recordings.start(call_id, client_id=client_id, ivr_session_id=session_id,
                              retention_class="order" if confirmations else "ordinary", at=at)
    for start, end in spans:
        recordings.pause(rec_id, at + timedelta(seconds=start), reason="pin")
        recordings.resume(rec_id, at + timedelta(seconds=end))
    recordings.stop(rec_id, at + timedelta(seconds=ended), audio=audio)
    if confirmations:
        def link(s: Session) -> None:
            s.execute(update(OrderConfirmation).where(OrderConfirmation.id.in_(confirmations))
                      .values(recording_id=rec_id))

        run_in_transaction(sessions, link)
    return rec_id
