"""APScheduler 3 with the SQLAlchemy job store on the engine's database: campaign start/pause/stop at a time,
every trading day at HH:MM, or once (reminder campaigns).

Survive restarts: jobs live in the ``apscheduler_jobs`` table. Never fire twice: ``coalesce`` (missed runs
collapse into one), a misfire grace time (a run missed by more is dropped), ``max_instances=1``, and above
all a database claim per (job id, scheduled time) taken by our executor before it runs anything — a second
scheduler process on the same store, or a restart that re-reads a not-yet-updated job, finds the claim and
skips. The executor calls our handler directly (no module-level registry): the stored job only names
``scheduled_action`` and carries (action, payload).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.dialer import campaigns as campaigns
from callcenter.domain.campaigns import CampaignRefused
from callcenter.store.db import run_in_transaction
from callcenter.store.models.desk import ScheduledRunClaim

log = logging.getLogger(__name__)

ACTIONS = ("campaign_start", "campaign_pause", "campaign_stop")
MISFIRE_GRACE_S = 15 * 60

Handler = Callable[[str, str, dict[str, Any], datetime], str]


def scheduled_action(action: str, payload: dict[str, Any]) -> None:
    """The function named in stored jobs. ``ClaimingExecutor`` intercepts every run and calls the scheduler's
    handler instead; calling this directly is a wiring mistake."""
    raise RuntimeError("scheduled jobs run through ClaimingExecutor")


def _iso(run_time: datetime) -> str:
    return run_time.astimezone(timezone.utc).isoformat(timespec="seconds")


def claim(sessions: sessionmaker[Session], job_id: str, run_time: datetime, owner: str, now: datetime) -> bool:
    """True when this process is the first to claim (job, run time); the unique key decides between racers."""
    try:
        run_in_transaction(sessions, lambda s: s.add(ScheduledRunClaim(job_id=job_id[:191], run_at=_iso(run_time),
                                                                       claimed_at=now, claimed_by=owner[:64])))
        return True
    except IntegrityError:
        return False


def _record(sessions: sessionmaker[Session], job_id: str, run_time: datetime, outcome: str, detail: str) -> None:
    def work(s: Session) -> None:
        row = s.query(ScheduledRunClaim).filter_by(job_id=job_id[:191], run_at=_iso(run_time)).one_or_none()
        if row is not None:
            row.outcome, row.detail = outcome[:32], detail[:2000]

    run_in_transaction(sessions, work)


class SharedSQLAlchemyJobStore(SQLAlchemyJobStore):
    """Several engine processes may share the store: a job another process already removed is not an error."""

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.debug("job %s was removed by another scheduler", job.id)


class SharedScheduler(BackgroundScheduler):
    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        try:
            super().remove_job(job_id, jobstore)
        except JobLookupError:
            log.debug("job %s was removed by another scheduler", job_id)


class ClaimingExecutor(BaseExecutor):
    """Runs each due job on the scheduler's thread after claiming (job id, scheduled time) in the database."""

    def __init__(self, sessions: sessionmaker[Session], handler: Handler, owner: str,
                 clock: Callable[[], datetime]) -> None:
        super().__init__()
        self._sessions = sessions
        self._handler = handler
        self._owner = owner
        self._clock = clock

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        events = []
        now = datetime.now(timezone.utc)
        for run_time in run_times:
            late = (now - run_time.astimezone(timezone.utc)).total_seconds()
            if job.misfire_grace_time is not None and late > job.misfire_grace_time:
                events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, run_time))
                continue
            if not claim(self._sessions, job.id, run_time, self._owner, self._clock()):
                log.info("scheduled run %s at %s already claimed elsewhere; skipped", job.id, _iso(run_time))
                continue
            action, payload = job.args
            try:
                outcome = self._handler(job.id, action, payload, run_time)
            except Exception as exc:  # noqa: BLE001 - the run is recorded as failed, the scheduler goes on
                log.exception("scheduled run %s failed", job.id)
                _record(self._sessions, job.id, run_time, "error", f"{type(exc).__name__}: {exc}")
                events.append(JobExecutionEvent(EVENT_JOB_ERROR, job.id, job._jobstore_alias, run_time,
                                                exception=exc))
                continue
            _record(self._sessions, job.id, run_time, outcome, "")
            events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_time,
                                            retval=outcome))
        self._run_job_success(job.id, events)


@dataclass(frozen=True)
class ScheduledJob:
    id: str
    campaign_id: int
    action: str
    kind: str  # once / trading_days
    next_run: datetime | None
    description: str


class CampaignScheduler:
    """One per engine process. ``start()`` opens the job store on ``core.database`` and begins firing."""

    def __init__(self, core: Any, *, owner: str | None = None, misfire_grace_s: int = MISFIRE_GRACE_S,
                 on_run: Callable[[str, str, dict[str, Any], datetime, str], None] | None = None) -> None:
        self.core = core
        self.tz = ZoneInfo(core.settings.timezone)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._on_run = on_run
        self.scheduler = SharedScheduler(
            jobstores={"default": SharedSQLAlchemyJobStore(engine=core.database, tablename="apscheduler_jobs")},
            executors={"default": ClaimingExecutor(core.sessions, self._run, self.owner, core.clock)},
            job_defaults={"coalesce": True, "misfire_grace_time": misfire_grace_s, "max_instances": 1},
            timezone=self.tz,
        )

    # --- life cycle --------------------------------------------------------------------------------------
    def start(self, paused: bool = False) -> None:
        self.scheduler.start(paused=paused)

    def resume(self) -> None:
        self.scheduler.resume()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    # --- scheduling --------------------------------------------------------------------------------------
    def schedule_once(self, campaign_id: int, action: str, at: datetime) -> str:
        """Run ``action`` on the campaign once at ``at`` (aware datetime). Replaces the same schedule."""
        self._check(action)
        if at.tzinfo is None:
            raise ValueError("naive datetime")
        campaigns.check_schedule_time(self.core, at)  # a time in the past would be dropped silently
        job_id = f"campaign:{campaign_id}:{action}:once:{_iso(at)}"
        if action == "campaign_start":  # before the job exists: a refused campaign gets no job
            campaigns.plan_start(self.core, campaign_id, at)
        self.scheduler.add_job(scheduled_action, DateTrigger(run_date=at, timezone=self.tz), id=job_id,
                               args=(action, {"campaign_id": campaign_id}), replace_existing=True,
                               name=f"{action} {campaign_id} once")
        return job_id

    def schedule_trading_days(self, campaign_id: int, action: str, hour: int, minute: int) -> str:
        """Run ``action`` every trading day at hour:minute local time (weekdays fire; holidays are skipped by
        the trading calendar at run time)."""
        self._check(action)
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError("bad time")
        job_id = f"campaign:{campaign_id}:{action}:trading:{hour:02d}{minute:02d}"
        self.scheduler.add_job(scheduled_action,
                               CronTrigger(day_of_week="mon-fri", hour=hour, minute=minute, timezone=self.tz),
                               id=job_id, args=(action, {"campaign_id": campaign_id, "trading_days_only": True}),
                               replace_existing=True, name=f"{action} {campaign_id} trading {hour:02d}:{minute:02d}")
        return job_id

    def jobs(self, campaign_id: int | None = None) -> list[ScheduledJob]:
        out = []
        for job in self.scheduler.get_jobs():
            action, payload = job.args
            if campaign_id is not None and payload.get("campaign_id") != campaign_id:
                continue
            kind = "trading_days" if payload.get("trading_days_only") else "once"
            out.append(ScheduledJob(job.id, payload.get("campaign_id"), action, kind,
                                    getattr(job, "next_run_time", None), job.name))
        return sorted(out, key=lambda j: (j.next_run is None, j.next_run or datetime.max.replace(tzinfo=timezone.utc)))

    def cancel(self, job_id: str) -> bool:
        if self.scheduler.get_job(job_id) is None:
            return False
        self.scheduler.remove_job(job_id)
        return True

    @staticmethod
    def _check(action: str) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")

    # --- running -----------------------------------------------------------------------------------------
    def _run(self, job_id: str, action: str, payload: dict[str, Any], run_time: datetime) -> str:
        campaign_id = int(payload["campaign_id"])
        if payload.get("trading_days_only") and not self.core.calendar.is_trading_day(run_time.astimezone(self.tz).date()):
            outcome = "skipped_non_trading_day"
        else:
            verb = action.split("_", 1)[1]
            try:  # the same use case as the pages and the CLI (it tells the wall board)
                outcome = campaigns.campaign_action(self.core, campaign_id, verb)
            except CampaignRefused as exc:
                outcome = f"refused:{exc.state}"
            except campaigns.DialerError:
                outcome = "refused:not_found"
        if self._on_run is not None:
            self._on_run(job_id, action, payload, run_time, outcome)
        return outcome


async def scheduler_runner(core: Any, stop: asyncio.Event) -> None:
    """The scheduler part (``runtime.part_runners``): run the campaign scheduler until the engine stops."""
    sched: CampaignScheduler = core.scheduler  # built once by the composition root
    core.bus.bind_loop(asyncio.get_running_loop())
    sched.start()
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(sched.shutdown)
