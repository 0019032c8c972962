"""When the care jobs run: pure job timing (``due_jobs``, ``due_interval_jobs``, ``seconds_until_next``) and
``care_runner``, an asyncio task the scheduler wiring starts. Every job is idempotent, so a restart simply runs the
day's jobs again. Daily jobs run once a day at ``at``; interval jobs (``every_s`` > 0: the 成交回报 / 行情报警 job
``trading_alerts``) run every ``every_s`` seconds between ``at`` and ``until``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from callcenter.services.care.notify_calls import NotificationLine
from callcenter.domain.reminders import QuietHours
from callcenter.ports.calendar import Calendar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    at: time  # local time
    trading_days_only: bool
    every_s: float = 0.0  # > 0: an interval job, run every every_s seconds from ``at`` to ``until``
    until: time | None = None


DEFAULT_JOBS: tuple[Job, ...] = (
    Job("regulatory", time(8, 0), True),  # build 回访 call-backs and hand them to the dialler
    Job("reminders", time(9, 0), False),  # SMS reminders (trading days) and birthday greetings (every day)
    Job("notify_calls", time(9, 30), True),  # agentless notification calls
    Job("notify_calls_retry", time(14, 0), True),  # second attempts of unanswered calls
    # 成交回报 and 行情报警 (callcenter.services.care.trading_alerts), through the trading day
    Job("trading_alerts", time(9, 15), True, every_s=60.0, until=time(15, 30)),
)
# issue 15, run by the care part beside DEFAULT_JOBS (callcenter.runtime): 预约服务 reminders
# (callcenter.services.appointments.send_reminders); slots are on trading days, 09:00-17:00
APPOINTMENT_JOBS: tuple[Job, ...] = (
    Job("appointment_reminders", time(8, 0), True, every_s=300.0, until=time(17, 0)),
)
# issue 14, run by the care part beside DEFAULT_JOBS (callcenter.runtime): every day, trading or not
RECORDING_JOBS: tuple[Job, ...] = (
    Job("recordings_purge", time(2, 30), False),  # delete expired recordings not on legal hold
    Job("qa_sampling", time(3, 0), False),  # 质检 sample of last week's and this week's calls (idempotent)
)


def due_jobs(jobs: tuple[Job, ...], last_run: dict[str, date], local_now: datetime, calendar: Calendar) -> list[Job]:
    """Jobs whose time today has come and that have not run today (pure)."""
    today = local_now.date()
    return [j for j in jobs if not j.every_s and local_now.time() >= j.at and last_run.get(j.name) != today
            and (not j.trading_days_only or calendar.is_trading_day(today))]


def due_interval_jobs(jobs: tuple[Job, ...], last_tick: dict[str, datetime], local_now: datetime,
                      calendar: Calendar) -> list[Job]:
    """Interval jobs inside their window whose last run is ``every_s`` ago or more (pure)."""
    out = []
    for j in jobs:
        if not j.every_s or local_now.time() < j.at or (j.until is not None and local_now.time() >= j.until):
            continue
        if j.trading_days_only and not calendar.is_trading_day(local_now.date()):
            continue
        last = last_tick.get(j.name)
        if last is None or (local_now - last).total_seconds() >= j.every_s:
            out.append(j)
    return out


def seconds_until_next(jobs: tuple[Job, ...], local_now: datetime) -> float:
    """Seconds until the next job time (today's later ones, else tomorrow's first)."""
    today = local_now.date()
    times = sorted(j.at for j in jobs)
    for at in times:
        moment = datetime.combine(today, at, tzinfo=local_now.tzinfo)
        if moment > local_now:
            return (moment - local_now).total_seconds()
    first = datetime.combine(today + timedelta(days=1), times[0], tzinfo=local_now.tzinfo)
    return (first - local_now).total_seconds()


@dataclass
class CareWork:
    """The plain functions each job calls (swap any in tests)."""

    core: Any
    sms: Any
    line: NotificationLine | None = None  # the dialler part's notification caller; none: notification calls wait
    hand_over_to_dialler: bool = True
    quiet: QuietHours = field(default_factory=QuietHours)

    def regulatory(self, day: date) -> None:
        from callcenter.services.care.callbacks import hand_over
        from callcenter.services.care.regulatory import build_regulatory_callbacks

        report = build_regulatory_callbacks(self.core, day)
        log.info("regulatory call-backs built: %s new accounts, %s annual", report.new_accounts, report.annual)
        if self.hand_over_to_dialler:
            log.info("call-backs handed to the dialler: %s", hand_over(self.core, day))

    def trading_alerts(self, day: date) -> None:
        from callcenter.services.care.trading_alerts import run_trading_alerts

        r = run_trading_alerts(self.core, self.sms, quiet=self.quiet)
        if r.confirmations or r.alerts or r.failed:
            log.info("trading alerts: confirmations %s alerts %s failed %s", r.confirmations, r.alerts, r.failed)

    def appointment_reminders(self, day: date) -> None:
        service = getattr(self.core, "appointments", None)
        if service is not None:
            r = service.send_reminders(self.sms, quiet=self.quiet)
            if r["sent"] or r["failed"]:
                log.info("appointment reminders: sent %s failed %s", r["sent"], r["failed"])

    def reminders(self, day: date) -> None:
        from callcenter.services.care.dispatch import run_daily_reminders

        r = run_daily_reminders(self.core, day, sms=self.sms, quiet=self.quiet)
        log.info("reminders %s: sent %s failed %s calls %s agent %s skipped %s", day, r.sent, r.failed,
                 r.queued_calls, r.agent_callbacks, r.skipped)


    def recordings_purge(self, day: date) -> None:
        service = getattr(self.core, "recordings", None)
        if service is not None:
            report = service.purge_expired()
            log.info("recordings purge %s: deleted %s, kept on legal hold %s", day, len(report.deleted),
                     len(report.kept_on_hold))

    def qa_sampling(self, day: date) -> None:
        from callcenter.services.quality import sample_settings_week

        for week_day in (day - timedelta(days=7), day):  # last week closes, this week fills as calls come
            picks = sample_settings_week(self.core, week_day)
            log.info("质检 sample around %s: %s picked", week_day, picks)


async def care_runner(core: Any, stop: asyncio.Event, *, work: CareWork, jobs: tuple[Job, ...] = DEFAULT_JOBS,
                      max_sleep_s: float = 300.0, on_run: Callable[[str, date], None] | None = None) -> None:
    """Run the care jobs at their local times until ``stop`` is set. Synchronous jobs run in a worker thread;
    a failing job is logged and retried at the next wake-up (it is not marked done)."""
    tz = core.settings.tz
    last_run: dict[str, date] = {}
    last_tick: dict[str, datetime] = {}
    while not stop.is_set():
        local_now = core.clock().astimezone(tz)
        for job in due_interval_jobs(jobs, last_tick, local_now, core.calendar):
            last_tick[job.name] = local_now  # a failing interval job waits its interval too
            try:
                await asyncio.to_thread(getattr(work, job.name), local_now.date())
            except Exception:
                log.exception("care job %s failed", job.name)
                continue
            if on_run is not None:
                on_run(job.name, local_now.date())
        for job in due_jobs(jobs, last_run, local_now, core.calendar):
            day = local_now.date()
            try:
                if job.name.startswith("notify_calls"):
                    caller = work.line.caller if work.line is not None else None
                    if caller is not None:
                        await caller.place_due()
                else:
                    await asyncio.to_thread(getattr(work, job.name), day)
            except Exception:  # one bad job must not stop the others; it runs again next wake-up
                log.exception("care job %s failed", job.name)
                continue
            last_run[job.name] = day
            if on_run is not None:
                on_run(job.name, day)
        wait = min(seconds_until_next(jobs, core.clock().astimezone(tz)), max_sleep_s,
                   *(j.every_s for j in jobs if j.every_s))
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.01))
        except TimeoutError:
            pass
