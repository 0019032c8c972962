"""Regulatory call-backs (回访): every new account called back within a month of opening, and at least 10 % of
existing clients (opened before the year began, not closed) each year. Call-backs cover identity, account
changes, who operates the account, risk disclosure and discretionary trading (``REGULATORY_TOPICS``).

``build_regulatory_callbacks(core, day)`` is idempotent (one call-back per new account, one per client and
year for the annual sample) and paces the annual sample by month: by the end of month m, ceil(10 % x N x m/12)
existing clients are scheduled or done. The sample order is a hash of (year, client id): spread over the
book, reproducible, not chosen by staff. ``coverage`` gives the figures for the supervisor pages.
"""

from __future__ import annotations

import calendar as _cal
import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.services.care.callbacks import REGULATORY_TOPICS
from callcenter.services.deps import Deps
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareCallback

ANNUAL_SHARE_PERCENT = 10
NEW_ACCOUNT_SCRIPT = "regulatory_callback"  # talk script covering REGULATORY_TOPICS
ANNUAL_SCRIPT = "regulatory_callback"

__all__ = ["REGULATORY_TOPICS", "BuildReport", "Coverage", "build_regulatory_callbacks", "coverage", "one_month_after"]


def one_month_after(day: date) -> date:
    """The same day next month, clamped to the month's end (31 Jan -> 28/29 Feb)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, _cal.monthrange(year, month)[1]))


def annual_target(population: int, month: int) -> int:
    """How many existing clients must be scheduled or done by the end of ``month`` (pure)."""
    return math.ceil(population * ANNUAL_SHARE_PERCENT * month / (100 * 12))


def sample_key(year: int, client_id: int) -> str:
    return hashlib.sha256(f"{year}:{client_id}".encode()).hexdigest()


@dataclass
class BuildReport:
    new_accounts: int = 0
    annual: int = 0


def build_regulatory_callbacks(core: Deps, day: date) -> BuildReport:
    now: datetime = core.clock()
    cal = core.calendar

    def work(s: Session) -> BuildReport:
        report = BuildReport()
        # new accounts opened within the last month and not yet given a call-back
        have = set(s.scalars(select(CareCallback.client_id).where(CareCallback.purpose == "regulatory_new")))
        for c in s.scalars(select(Client).where(Client.status != "closed", Client.opened_on <= day,
                                                Client.opened_on > day - timedelta(days=31)).order_by(Client.id)):
            if c.id in have or one_month_after(c.opened_on) < day:
                continue
            s.add(CareCallback(dedupe=f"new:{c.id}", client_id=c.id, purpose="regulatory_new",
                               script_id=NEW_ACCOUNT_SCRIPT, not_before=cal.add_trading_days(c.opened_on, 1),
                               due_on=one_month_after(c.opened_on), status="scheduled", created_at=now))
            report.new_accounts += 1
        # the annual sample of existing clients
        year_start = date(day.year, 1, 1)
        existing = list(s.scalars(select(Client.id).where(Client.status != "closed", Client.opened_on < year_start)))
        counted = s.scalar(select(func.count()).select_from(CareCallback).where(
            CareCallback.purpose == "regulatory_annual", CareCallback.year == day.year,
            CareCallback.status.in_(("scheduled", "done")))) or 0
        need = annual_target(len(existing), day.month) - counted
        if need > 0:
            taken = set(s.scalars(select(CareCallback.client_id).where(
                CareCallback.purpose == "regulatory_annual", CareCallback.year == day.year)))
            pool = sorted((cid for cid in existing if cid not in taken), key=lambda cid: sample_key(day.year, cid))
            month_end = date(day.year, day.month, _cal.monthrange(day.year, day.month)[1])
            for cid in pool[:need]:
                s.add(CareCallback(dedupe=f"annual:{day.year}:{cid}", client_id=cid, purpose="regulatory_annual",
                                   script_id=ANNUAL_SCRIPT, year=day.year, not_before=day, due_on=month_end,
                                   status="scheduled", created_at=now))
                report.annual += 1
        return report

    return run_in_transaction(core.sessions, work)


@dataclass(frozen=True)
class Coverage:
    year: int
    as_of: date
    new_accounts: int  # opened this year up to as_of (not closed)
    new_called_in_time: int  # done within a month of opening
    new_pending: int  # still inside their month, not yet done
    new_missed: int  # month over, not done in time
    existing_clients: int
    existing_called: int  # annual call-backs done this year
    existing_target: int  # 10 % of existing clients

    @property
    def new_rate(self) -> float:
        judged = self.new_called_in_time + self.new_missed
        return self.new_called_in_time / judged if judged else 1.0

    @property
    def existing_rate(self) -> float:
        return self.existing_called / self.existing_clients if self.existing_clients else 1.0

    @property
    def annual_met(self) -> bool:
        return self.existing_called >= self.existing_target


def coverage(core: Deps, year: int, as_of: date) -> Coverage:
    tz = core.settings.tz

    def work(s: Session) -> Coverage:
        new_clients = list(s.execute(select(Client.id, Client.opened_on).where(
            Client.status != "closed", Client.opened_on >= date(year, 1, 1), Client.opened_on <= as_of)))
        done = {cid: at for cid, at in s.execute(select(CareCallback.client_id, CareCallback.completed_at).where(
            CareCallback.purpose == "regulatory_new", CareCallback.status == "done"))}
        in_time = pending = missed = 0
        for cid, opened in new_clients:
            deadline = one_month_after(opened)
            at = done.get(cid)
            if at is not None and at.astimezone(tz).date() <= deadline:
                in_time += 1
            elif as_of <= deadline and at is None:
                pending += 1
            else:
                missed += 1
        existing = s.scalar(select(func.count()).select_from(Client).where(
            Client.status != "closed", Client.opened_on < date(year, 1, 1))) or 0
        called = s.scalar(select(func.count()).select_from(CareCallback).where(
            CareCallback.purpose == "regulatory_annual", CareCallback.year == year,
            CareCallback.status == "done")) or 0
        return Coverage(year, as_of, len(new_clients), in_time, pending, missed, existing, called,
                        annual_target(existing, 12))

    return run_in_transaction(core.sessions, work)
