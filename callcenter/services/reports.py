"""Inbound, IVR, transfer and complaint reports for the supervisor pages (the outbound report is
``callcenter.services.kpis.report``). Each aggregates in SQL over a date range in the centre's time zone and returns
plain rows; the pages and the CSV export translate every code through the locale files.

* ``inbound``: hotline calls per day — calls, authenticated callers, handed to an agent, callers who hung up in
  the IVR, mean time in the IVR (seconds).
* ``transfers``: bank-securities transfers per day and kind — done (count, amount), refused or failed.
* ``complaints``: complaints per category — opened in the range, closed in it, still open, overdue, mean handling
  hours of those closed."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from callcenter.store.models import Transfer
from callcenter.store.models.care import Complaint
from callcenter.store.models.ivr import IvrSession

KINDS = ("outbound", "inbound", "transfers", "complaints")


def _utc_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)


def inbound(s: Session, first: date, last: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    start, end = _utc_bounds(first, last, tz)
    rows = s.execute(select(IvrSession.started_at, IvrSession.ended_at, IvrSession.client_id, IvrSession.handed_off,
                            IvrSession.end_reason)
                     .where(IvrSession.started_at >= start, IvrSession.started_at < end)).all()
    days: dict[date, dict[str, Any]] = {}
    for started, ended, client_id, handed_off, reason in rows:  # grouped by local day, which SQL cannot do portably
        day = started.astimezone(tz).date()
        d = days.setdefault(day, {"label": day.isoformat(), "calls": 0, "authenticated": 0, "handed_off": 0,
                                  "hung_up_in_ivr": 0, "ivr_seconds": 0, "_ended": 0})
        d["calls"] += 1
        d["authenticated"] += client_id is not None
        d["handed_off"] += bool(handed_off)
        d["hung_up_in_ivr"] += reason in ("caller_hangup", "hangup") and not handed_off
        if ended is not None:
            d["ivr_seconds"] += max(0, int((ended - started).total_seconds()))
            d["_ended"] += 1
    out = []
    for day in sorted(days):
        d = days[day]
        d["mean_ivr_seconds"] = d.pop("ivr_seconds") // d["_ended"] if d["_ended"] else 0
        d.pop("_ended")
        out.append(d)
    return out


def transfers(s: Session, first: date, last: date) -> list[dict[str, Any]]:
    done = case((Transfer.status == "done", 1), else_=0)
    rows = s.execute(select(Transfer.trade_date, Transfer.kind, func.sum(done),
                            func.coalesce(func.sum(case((Transfer.status == "done", Transfer.amount_fen), else_=0)), 0),
                            func.sum(case((Transfer.status.in_(("rejected", "failed")), 1), else_=0)),
                            func.count(Transfer.id))
                     .where(Transfer.trade_date >= first, Transfer.trade_date <= last)
                     .group_by(Transfer.trade_date, Transfer.kind)
                     .order_by(Transfer.trade_date, Transfer.kind)).all()
    return [{"label": day.isoformat(), "kind": kind, "done": int(n_done or 0), "amount_fen": int(amount or 0),
             "refused": int(refused or 0), "requests": int(total)} for day, kind, n_done, amount, refused, total in rows]


def complaints(s: Session, first: date, last: date, tz: ZoneInfo, now: datetime) -> list[dict[str, Any]]:
    start, end = _utc_bounds(first, last, tz)
    opened = s.execute(select(Complaint.category, func.count(Complaint.id))
                       .where(Complaint.opened_at >= start, Complaint.opened_at < end)
                       .group_by(Complaint.category)).all()
    closed_rows = s.execute(select(Complaint.category, Complaint.opened_at, Complaint.closed_at)
                            .where(Complaint.closed_at.is_not(None), Complaint.closed_at >= start,
                                   Complaint.closed_at < end)).all()
    still_open = s.execute(select(Complaint.category, func.count(Complaint.id),
                                  func.sum(case((Complaint.due_at < now, 1), else_=0).cast(Integer)))
                           .where(Complaint.status.in_(("open", "in_progress")))
                           .group_by(Complaint.category)).all()
    cats: dict[str, dict[str, Any]] = {}

    def row(cat: str) -> dict[str, Any]:
        return cats.setdefault(cat, {"label": cat, "opened": 0, "closed": 0, "open_now": 0, "overdue": 0,
                                     "_hours": 0.0})

    for cat, n in opened:
        row(cat)["opened"] = int(n)
    for cat, opened_at, closed_at in closed_rows:
        r = row(cat)
        r["closed"] += 1
        if closed_at is not None:
            r["_hours"] += (closed_at - opened_at).total_seconds() / 3600
    for cat, n, overdue in still_open:
        r = row(cat)
        r["open_now"], r["overdue"] = int(n), int(overdue or 0)
    out = []
    for cat in sorted(cats):
        r = cats[cat]
        hours = r.pop("_hours")
        r["mean_handling_hours"] = round(hours / r["closed"], 1) if r["closed"] else None
        out.append(r)
    return out
