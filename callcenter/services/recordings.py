"""Call recordings: the use cases the telephony side calls (``start``, ``pause``, ``resume``, ``stop``), who may
list, play and download them (``callcenter.domain.access.may_listen`` / ``may_download``, every access
audit-logged), legal hold, and the daily purge of expired recordings.

The audio is in a ``callcenter.ports.recordings.RecordingStore`` (filesystem or S3); the ``Recording`` row holds
the metadata. A paused span (the agent's pause button, or the client typing a PIN) is an offset pair in
``paused_spans``: the telephony side writes silence there (MixMonitor's mute, the simulated PBX's zeroed
samples), so PIN digits never reach a recording.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.access import Actor, may_download, may_listen
from callcenter.domain.recordings import RETENTION_CLASSES, close_spans, expires_at, purgeable, stronger_class
from callcenter.ports.recordings import RecordingStore, wav_duration_s
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Staff
from callcenter.store.models.care import Complaint
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.recordings import Recording

log = logging.getLogger(__name__)


class RecordingError(Exception):
    """A use case refused: ``code`` is ``not_found``, ``bad_state``, ``reason_required``, ``bad_class``, ..."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class RecordingNotVisible(Exception):
    """No such recording, or the actor may not have it: callers answer "not found" either way."""


@dataclass(frozen=True)
class Playable:
    recording_id: int
    storage_key: str
    size: int
    filename: str


@dataclass(frozen=True)
class PurgeReport:
    deleted: list[int]
    kept_on_hold: list[int]


def storage_key_for(recording_id: int, started_at: datetime) -> str:
    return f"{started_at:%Y/%m/%d}/rec-{recording_id}.wav"


def _offset(rec: Recording, at: datetime) -> float:
    return round(max(0.0, (at - rec.started_at).total_seconds()), 3)


PAUSE_REASONS = ("agent", "pin", "hold")


def _close_marks(marks: list[Any], end: float) -> list[Any]:
    """Every open mark (no ``end`` yet) ends at ``end``."""
    return [dict(m, end=max(end, float(m["start"]))) if "end" not in m else dict(m) for m in marks]


def _agent_group(s: Session, agent_id: int | None) -> int | None:
    if agent_id is None:
        return None
    staff = s.get(Staff, agent_id)
    return staff.service_group_id if staff is not None else None


def is_complaint_call(s: Session, rec: Recording) -> bool:
    """The call led to a complaint: its desk contact is marked so, or a complaint names its call."""
    if rec.retention_class == "complaint":
        return True
    if rec.desk_contact_id is not None:
        contact = s.get(DeskContact, rec.desk_contact_id)
        if contact is not None and contact.complaint:
            return True
    return s.execute(select(Complaint.id).where(Complaint.call_ref == rec.call_ref).limit(1)).first() is not None


@dataclass
class RecordingService:
    sessions: sessionmaker[Session]
    store: RecordingStore
    clock: Callable[[], datetime]
    retention_years: dict[str, int] = field(default_factory=lambda: {c: 3 for c in RETENTION_CLASSES})
    agent_may_listen: bool = False

    # --- the telephony side's use cases --------------------------------------------------------------------

    def start(self, call_ref: str, *, agent_id: int | None = None, client_id: int | None = None,
              campaign_id: int | None = None, attempt_id: int | None = None, desk_contact_id: int | None = None,
              ivr_session_id: int | None = None, retention_class: str = "ordinary", parent_id: int | None = None,
              at: datetime | None = None) -> int:
        """A recording begins (the client is connected to an agent): its row, in state ``recording``."""
        if retention_class not in RETENTION_CLASSES:
            raise RecordingError("bad_class", retention_class)
        if not call_ref or len(call_ref) > 64:
            raise RecordingError("bad_call_ref", "1..64 characters")
        when = at or self.clock()

        def work(s: Session) -> int:
            rec = Recording(call_ref=call_ref, parent_id=parent_id, attempt_id=attempt_id,
                            desk_contact_id=desk_contact_id, ivr_session_id=ivr_session_id, agent_id=agent_id,
                            client_id=client_id, campaign_id=campaign_id, state="recording", started_at=when,
                            paused_spans=[], storage_key=f"pending-{call_ref}-{when.timestamp()}",
                            retention_class=retention_class)
            s.add(rec)
            s.flush()
            rec.storage_key = storage_key_for(rec.id, when)
            return rec.id

        return run_in_transaction(self.sessions, work)

    def _change(self, recording_id: int, fn: Callable[[Session, Recording], Any]) -> Any:
        def work(s: Session) -> Any:
            rec = s.get(Recording, recording_id, with_for_update=True)
            if rec is None:
                raise RecordingError("not_found", str(recording_id))
            return fn(s, rec)

        return run_in_transaction(self.sessions, work)

    def pause(self, recording_id: int, at: datetime | None = None, reason: str = "agent") -> bool:
        """Pause (silence from now on, marked with ``reason``: ``agent`` — the button —, ``pin`` — the client
        types digits asked for —, ``hold``); pausing a paused recording changes nothing (False)."""
        if reason not in PAUSE_REASONS:
            raise RecordingError("bad_reason", reason)
        when = at or self.clock()

        def fn(s: Session, rec: Recording) -> bool:
            if rec.state == "paused":
                return False
            if rec.state != "recording":
                raise RecordingError("bad_state", rec.state)
            start = _offset(rec, when)
            rec.paused_spans = [*rec.paused_spans, [start]]
            rec.marks = [*(rec.marks or []), {"kind": reason, "start": start}]
            rec.state = "paused"
            return True

        return bool(self._change(recording_id, fn))

    def resume(self, recording_id: int, at: datetime | None = None) -> bool:
        """Resume after a pause (False when it was not paused)."""
        when = at or self.clock()

        def fn(s: Session, rec: Recording) -> bool:
            if rec.state == "recording":
                return False
            if rec.state != "paused":
                raise RecordingError("bad_state", rec.state)
            end = _offset(rec, when)
            spans = [list(x) for x in rec.paused_spans]
            spans[-1] = [spans[-1][0], end]
            rec.paused_spans = spans
            rec.marks = _close_marks(rec.marks or [], end)
            rec.state = "recording"
            return True

        return bool(self._change(recording_id, fn))

    def mark(self, recording_id: int, kind: str, start: datetime, end: datetime | None = None) -> None:
        """Mark a stretch that is not a pause (``hold``: the client waited on hold, the agent away)."""
        if kind not in PAUSE_REASONS:
            raise RecordingError("bad_reason", kind)

        def fn(s: Session, rec: Recording) -> None:
            entry: dict[str, Any] = {"kind": kind, "start": _offset(rec, start)}
            if end is not None:
                entry["end"] = _offset(rec, end)
            rec.marks = [*(rec.marks or []), entry]

        self._change(recording_id, fn)

    def stop(self, recording_id: int, at: datetime | None = None, audio: bytes | None = None) -> None:
        """The call leg ended: closes an open pause, sets the duration and the expiry; with ``audio`` (a WAV file)
        stores it and keeps its size, sha256 and true duration. Without it, ``attach_audio`` follows (the
        telephony side writes the file when the channel is gone)."""
        when = at or self.clock()

        def fn(s: Session, rec: Recording) -> None:
            if rec.state not in ("recording", "paused"):
                raise RecordingError("bad_state", rec.state)
            rec.ended_at = when
            rec.duration_s = _offset(rec, when)
            rec.paused_spans = [list(x) for x in close_spans(rec.paused_spans, rec.duration_s)]
            rec.marks = _close_marks(rec.marks or [], rec.duration_s)
            if is_complaint_call(s, rec):
                rec.retention_class = "complaint"
            rec.expires_at = expires_at(rec.started_at, rec.retention_class, self.retention_years)
            rec.state = "stopped"

        self._change(recording_id, fn)
        if audio is not None:
            self.attach_audio(recording_id, audio)

    def attach_audio(self, recording_id: int, audio: bytes) -> None:
        """Store the recording's file (a PCM WAV) and keep its size, sha256 and duration."""
        try:
            duration = wav_duration_s(audio)
        except ValueError as exc:
            raise RecordingError("bad_audio", str(exc)) from None
        key = run_in_transaction(self.sessions, lambda s: self._key(s, recording_id))
        stored = self.store.put(key, audio)

        def fn(s: Session, rec: Recording) -> None:
            rec.size_bytes = stored.size
            rec.sha256 = stored.sha256
            rec.duration_s = round(duration, 3)

        self._change(recording_id, fn)

    def _key(self, s: Session, recording_id: int) -> str:
        rec = s.get(Recording, recording_id)
        if rec is None:
            raise RecordingError("not_found", str(recording_id))
        return rec.storage_key

    def reclassify(self, recording_id: int, retention_class: str) -> str:
        """Raise the retention class (a call became a complaint, an order was taken); never lowers it."""
        if retention_class not in RETENTION_CLASSES:
            raise RecordingError("bad_class", retention_class)

        def fn(s: Session, rec: Recording) -> str:
            rec.retention_class = stronger_class(rec.retention_class, retention_class)
            if rec.expires_at is not None:
                rec.expires_at = expires_at(rec.started_at, rec.retention_class, self.retention_years)
            return rec.retention_class

        return str(self._change(recording_id, fn))

    # --- who may list, play and download --------------------------------------------------------------------

    def may_listen(self, s: Session, actor: Actor, rec: Recording) -> bool:
        return may_listen(actor, rec.agent_id, _agent_group(s, rec.agent_id), self.agent_may_listen)

    def visible(self, s: Session, actor: Actor, recording_id: int) -> Recording:
        rec = s.get(Recording, recording_id)
        if rec is None or rec.state == "purged" or not self.may_listen(s, actor, rec):
            raise RecordingNotVisible(recording_id)
        return rec

    def listing(self, s: Session, actor: Actor, *, agent_id: int | None = None, client_id: int | None = None,
                limit: int = 200) -> list[Recording]:
        """The recordings ``actor`` may play, newest first (audit-logged: who looked at the list)."""
        q = select(Recording).where(Recording.state != "purged")
        if agent_id is not None:
            q = q.where(Recording.agent_id == agent_id)
        if client_id is not None:
            q = q.where(Recording.client_id == client_id)
        rows = s.execute(q.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(limit * 5)).scalars()
        groups: dict[int | None, int | None] = {}
        out = []
        for rec in rows:
            if rec.agent_id not in groups:
                groups[rec.agent_id] = _agent_group(s, rec.agent_id)
            if may_listen(actor, rec.agent_id, groups[rec.agent_id], self.agent_may_listen):
                out.append(rec)
            if len(out) >= limit:
                break
        s.add(AuditLog(at=self.clock(), staff_id=actor.staff_id, action="recording_list", client_id=client_id,
                       detail=f"agent={agent_id or ''} shown={len(out)}"))
        return out

    def playable_ids(self, s: Session, actor: Actor, contact_ids: list[int]) -> dict[int, int]:
        """desk contact id -> the id of a recording of it ``actor`` may play (the agent card's history)."""
        if not contact_ids:
            return {}
        out: dict[int, int] = {}
        rows = s.execute(select(Recording).where(Recording.desk_contact_id.in_(contact_ids),
                                                 Recording.state == "stopped", Recording.size_bytes > 0)
                         .order_by(Recording.id)).scalars()
        for rec in rows:
            if rec.desk_contact_id is not None and rec.desk_contact_id not in out and self.may_listen(s, actor, rec):
                out[rec.desk_contact_id] = rec.id
        return out

    def authorize(self, actor: Actor, recording_id: int, *, download: bool, detail: str = "") -> Playable:
        """Check that ``actor`` may play (or, ``download``, take away) the recording and audit-log the access
        in the same transaction; RecordingNotVisible otherwise (a refused download is logged too)."""
        now = self.clock()

        def work(s: Session) -> Playable | None:
            rec = s.get(Recording, recording_id)
            allowed = (rec is not None and rec.state == "stopped" and rec.size_bytes > 0
                       and self.may_listen(s, actor, rec) and (not download or may_download(actor)))
            action = "recording_download" if download else "recording_play"
            s.add(AuditLog(at=now, staff_id=actor.staff_id, action=action if allowed else action + "_refused",
                           client_id=rec.client_id if rec is not None else None,
                           detail=f"recording {recording_id} {detail}".strip()))
            if not allowed or rec is None:
                return None
            return Playable(rec.id, rec.storage_key, rec.size_bytes, f"recording-{rec.id}.wav")

        found = run_in_transaction(self.sessions, work)
        if found is None:
            raise RecordingNotVisible(recording_id)
        return found

    def read(self, playable: Playable, start: int = 0, end: int | None = None) -> bytes:
        return self.store.get(playable.storage_key, start, end)

    # --- legal hold and retention ----------------------------------------------------------------------------

    def set_legal_hold(self, actor: Actor, recording_id: int, hold: bool, reason: str) -> None:
        """An admin puts a recording on legal hold (it is never purged) or lifts it, with a reason; audited."""
        if actor.role != "admin":
            raise RecordingNotVisible(recording_id)
        reason = reason.strip()
        if not reason:
            raise RecordingError("reason_required")
        now = self.clock()

        def fn(s: Session, rec: Recording) -> None:
            if rec.state == "purged":
                raise RecordingError("bad_state", "purged")
            rec.legal_hold = hold
            rec.legal_hold_reason = reason
            rec.legal_hold_by = actor.staff_id
            rec.legal_hold_at = now
            s.add(AuditLog(at=now, staff_id=actor.staff_id, action="recording_hold" if hold else "recording_release",
                           client_id=rec.client_id, detail=f"recording {rec.id}: {reason}"))

        self._change(recording_id, fn)

    def purge_expired(self, now: datetime | None = None) -> PurgeReport:
        """Delete the audio of every expired recording not on legal hold (the row stays, state ``purged``, with
        the time: the record that it existed and was deleted on schedule); each deletion audit-logged."""
        when = now or self.clock()
        candidates = run_in_transaction(self.sessions, lambda s: list(s.execute(
            select(Recording.id).where(Recording.state == "stopped", Recording.expires_at <= when)
            .order_by(Recording.id)).scalars()))
        deleted: list[int] = []
        kept: list[int] = []
        for rid in candidates:
            def check(s: Session, rec: Recording) -> str | None:
                if is_complaint_call(s, rec) and rec.retention_class != "complaint":  # became a complaint since
                    rec.retention_class = "complaint"
                    rec.expires_at = expires_at(rec.started_at, "complaint", self.retention_years)
                if rec.legal_hold and rec.state == "stopped" and rec.expires_at is not None and rec.expires_at <= when:
                    return "hold"
                return rec.storage_key if purgeable(when, rec.expires_at, rec.legal_hold, rec.state) else None

            verdict = self._change(rid, check)
            if verdict == "hold":
                kept.append(rid)
                continue
            if verdict is None:
                continue
            self.store.delete(verdict)  # first the audio, then the row says so: a crash between is purged again

            def mark(s: Session, rec: Recording) -> None:
                rec.state = "purged"
                rec.purged_at = when
                s.add(AuditLog(at=when, staff_id=None, action="recording_purge", client_id=rec.client_id,
                               detail=f"recording {rec.id} ({rec.retention_class}, expired {rec.expires_at:%Y-%m-%d})"))

            self._change(rid, mark)
            deleted.append(rid)
        log.info("recordings purged: %s deleted, %s kept on legal hold", len(deleted), len(kept))
        return PurgeReport(deleted, kept)

