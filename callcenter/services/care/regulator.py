"""The records the regulator asks for (留痕): each regulatory call-back (回访) with its recording and the answers to
the five mandatory items (``REGULATORY_TOPICS``), and the annual complaint summary for the local CSRC office
(证监局, due by the end of April): counts by category, handling time and outcome, as figures, CSV and a printable
page (``web/pages/care.py``).

Times: a complaint belongs to the year it was opened in, in the settings' time zone; its handling time is opened
to closed (or resolved, when not closed yet); "in time" means resolved or closed by its due time.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.services.care.callbacks import REGULATORY_TOPICS
from callcenter.services.care.complaints import CATEGORIES
from callcenter.store.models import Client, Staff
from callcenter.store.models.care import CareCallback, Complaint, ComplaintHistory
from callcenter.store.models.recordings import Recording

OUTCOMES = ("resolved", "closed", "in_progress", "open")  # where a complaint of the year stands now


def find_call_recording(s: Session, cb: CareCallback, now: datetime, within: timedelta = timedelta(days=1)) -> Recording | None:
    """The latest finished recording of the call-back's client by the agent who made it, over the last day,
    not linked to another call-back yet."""
    linked = select(CareCallback.recording_id).where(CareCallback.recording_id.is_not(None),
                                                     CareCallback.id != cb.id)
    q = (select(Recording).where(Recording.client_id == cb.client_id, Recording.state == "stopped",
                                 Recording.started_at >= now - within, Recording.id.not_in(linked))
         .order_by(Recording.started_at.desc(), Recording.id.desc()).limit(1))
    if cb.staff_id is not None:
        q = q.where(Recording.agent_id == cb.staff_id)
    return s.scalars(q).first()


@dataclass(frozen=True)
class CallbackRecord:
    callback_id: int
    purpose: str
    client_id: int
    client_no: str
    client_name: str
    agent: str
    completed_at: datetime | None
    answers: list[tuple[str, str]]  # (topic, answer) for each of the five topics, in order
    recording_id: int | None
    recording_started: datetime | None
    recording_duration_s: float | None
    recording_sha256: str


def callback_record(s: Session, callback_id: int) -> CallbackRecord | None:
    """The 回访 record of one done call-back: the five mandatory items' answers and its recording."""
    cb = s.get(CareCallback, callback_id)
    if cb is None:
        return None
    client = s.get(Client, cb.client_id)
    staff = s.get(Staff, cb.staff_id) if cb.staff_id is not None else None
    try:
        answers = json.loads(cb.answers) if cb.answers else {}
    except ValueError:
        answers = {}
    rec = s.get(Recording, cb.recording_id) if cb.recording_id is not None else None
    return CallbackRecord(
        cb.id, cb.purpose, cb.client_id, client.client_no if client else "", client.name if client else "",
        staff.display_name if staff else "", cb.completed_at,
        [(topic, str(answers.get(topic, ""))) for topic in REGULATORY_TOPICS],
        rec.id if rec is not None and rec.state != "purged" else None, rec.started_at if rec else None,
        rec.duration_s if rec else None, rec.sha256 if rec else "")


def done_callbacks(s: Session, start: datetime, end: datetime) -> list[CareCallback]:
    return list(s.scalars(select(CareCallback).where(
        CareCallback.purpose.like("regulatory%"), CareCallback.status == "done",
        CareCallback.completed_at >= start, CareCallback.completed_at < end).order_by(CareCallback.completed_at)))


@dataclass
class CategoryLine:
    category: str
    total: int = 0
    by_outcome: dict[str, int] = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    in_time: int = 0
    hours: list[float] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return len(self.hours)

    @property
    def mean_hours(self) -> float | None:
        return round(statistics.fmean(self.hours), 1) if self.hours else None

    @property
    def median_hours(self) -> float | None:
        return round(statistics.median(self.hours), 1) if self.hours else None

    @property
    def max_hours(self) -> float | None:
        return round(max(self.hours), 1) if self.hours else None


@dataclass
class ComplaintSummary:
    year: int
    lines: list[CategoryLine]
    total: CategoryLine
    by_channel: dict[str, int]
    made_at: datetime


def _year_bounds(year: int, tz: tzinfo) -> tuple[datetime, datetime]:
    start = datetime(year, 1, 1, tzinfo=tz).astimezone(timezone.utc)
    end = datetime(year + 1, 1, 1, tzinfo=tz).astimezone(timezone.utc)
    return start, end


def complaint_summary(s: Session, year: int, tz: tzinfo, now: datetime) -> ComplaintSummary:
    """The complaints opened in ``year`` (local): by category, how each stands now, how long handling took."""
    start, end = _year_bounds(year, tz)
    lines = {c: CategoryLine(c) for c in CATEGORIES}
    total = CategoryLine("total")
    channels: dict[str, int] = {}
    rows = s.scalars(select(Complaint).where(Complaint.opened_at >= start, Complaint.opened_at < end))
    for c in rows:
        line = lines.setdefault(c.category, CategoryLine(c.category))
        done_at = c.closed_at if c.status == "closed" else None
        if done_at is None and c.status == "resolved":
            done_at = s.scalars(select(ComplaintHistory.at).where(
                ComplaintHistory.complaint_id == c.id, ComplaintHistory.to_status == "resolved")
                .order_by(ComplaintHistory.at.desc()).limit(1)).first() or c.closed_at
        for target in (line, total):
            target.total += 1
            target.by_outcome[c.status] = target.by_outcome.get(c.status, 0) + 1
            if done_at is not None:
                target.hours.append((done_at - c.opened_at).total_seconds() / 3600)
                if done_at <= c.due_at:
                    target.in_time += 1
        channels[c.channel] = channels.get(c.channel, 0) + 1
    return ComplaintSummary(year, list(lines.values()), total, channels, now)


CSV_COLUMNS = ("category", "total", *(f"outcome_{o}" for o in OUTCOMES), "handled", "handled_in_time",
               "mean_handling_hours", "median_handling_hours", "max_handling_hours")


def summary_csv(summary: ComplaintSummary, label: Any = None) -> str:
    """The summary as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese category names):
    one row per category and a total row; ``label(category)`` names the categories (default: their codes)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for line in [*summary.lines, summary.total]:
        name = label(line.category) if label is not None else line.category
        w.writerow([name, line.total, *(line.by_outcome.get(o, 0) for o in OUTCOMES), line.handled, line.in_time,
                    "" if line.mean_hours is None else f"{line.mean_hours:.1f}",
                    "" if line.median_hours is None else f"{line.median_hours:.1f}",
                    "" if line.max_hours is None else f"{line.max_hours:.1f}"])
    return "\ufeff" + out.getvalue()
