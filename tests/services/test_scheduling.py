"""Campaign schedules in APScheduler's SQLAlchemy job store: across a restart nothing is lost and nothing runs
twice, even with two schedulers on the same store; trading-day schedules skip holidays."""

from __future__ import annotations

import threading
from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select

from callcenter.parts.scheduler import CampaignScheduler
from callcenter.services.dialer.campaigns import create_campaign
from callcenter.store.db import run_in_transaction
from callcenter.store.models.desk import ScheduledRunClaim
from callcenter.store.models.dialer import Campaign

pytestmark = pytest.mark.db


class Runs:
    """Collects runs from every scheduler; ``wait_for(n)`` blocks on an event, never on a sleep."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, job_id, action, payload, run_time, outcome) -> None:  # type: ignore[no-untyped-def]
        with self._cond:
            self.items.append((job_id, run_time.isoformat(), outcome))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 20) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.items) >= n, timeout)


def _campaign(core) -> int:  # type: ignore[no-untyped-def]
    return create_campaign(core, name="老客户回访", kind="former_clients", script_id="win_back",
                           window_start=time(9), window_end=time(20))


def _state(core, cid: int) -> str:  # type: ignore[no-untyped-def]
    return run_in_transaction(core.sessions, lambda s: s.get(Campaign, cid).state)


def _claims(core) -> list[ScheduledRunClaim]:  # type: ignore[no-untyped-def]
    return run_in_transaction(core.sessions, lambda s: list(s.execute(select(ScheduledRunClaim)).scalars()))


def test_schedule_survives_restart_and_runs_once(core) -> None:  # type: ignore[no-untyped-def]
    cid = _campaign(core)
    runs = Runs()
    first = CampaignScheduler(core, on_run=runs)
    first.start(paused=True)  # the process runs, but goes down before the start time
    real_now = datetime.now(timezone.utc)
    job_id = first.schedule_once(cid, "campaign_start", real_now + timedelta(hours=1))
    daily = first.schedule_trading_days(cid, "campaign_stop", 15, 0)
    assert _state(core, cid) == "scheduled"
    first.shutdown()  # "restart"

    second = CampaignScheduler(core, on_run=runs)
    second.start(paused=True)
    assert {j.id for j in second.jobs()} == {job_id, daily}  # nothing lost
    # the start time passes while the engine is down: move the stored job's next run into the recent past
    second.scheduler.modify_job(job_id, next_run_time=real_now - timedelta(seconds=5))
    second.shutdown()

    third = CampaignScheduler(core, on_run=runs)
    fourth = CampaignScheduler(core, on_run=runs)  # a second engine process on the same database
    third.start()
    fourth.start()
    try:
        assert runs.wait_for(1)
        assert third.scheduler.get_job(job_id) is None or fourth.scheduler.get_job(job_id) is None
    finally:
        third.shutdown()
        fourth.shutdown()
    assert [r[2] for r in runs.items] == ["running"]
    assert _state(core, cid) == "running"
    claims = [c for c in _claims(core) if c.job_id == job_id]
    assert len(claims) == 1 and claims[0].outcome == "running"

    fifth = CampaignScheduler(core, on_run=runs)  # a later restart does not replay the one-off start
    fifth.start(paused=True)
    assert [j.id for j in fifth.jobs()] == [daily]
    fifth.shutdown()


def test_the_same_scheduled_time_is_claimed_once(core) -> None:  # type: ignore[no-untyped-def]
    from callcenter.parts.scheduler import claim

    at = datetime(2026, 11, 25, 1, 30, tzinfo=timezone.utc)
    assert claim(core.sessions, "campaign:1:campaign_start:trading:0930", at, "a", core.clock())
    assert not claim(core.sessions, "campaign:1:campaign_start:trading:0930", at, "b", core.clock())
    assert claim(core.sessions, "campaign:1:campaign_start:trading:0930", at + timedelta(days=1), "b", core.clock())


def test_trading_day_schedule_skips_holidays(core) -> None:  # type: ignore[no-untyped-def]
    cid = _campaign(core)
    sched = CampaignScheduler(core)
    national_day = datetime(2026, 10, 1, 1, 30, tzinfo=timezone.utc)  # Thursday, 09:30 Shanghai, market closed
    assert sched._run("j", "campaign_start", {"campaign_id": cid, "trading_days_only": True},
                      national_day) == "skipped_non_trading_day"
    assert _state(core, cid) == "draft"
    trading = datetime(2026, 11, 25, 1, 30, tzinfo=timezone.utc)
    assert sched._run("j", "campaign_start", {"campaign_id": cid, "trading_days_only": True}, trading) == "running"
    job = sched.schedule_trading_days(cid, "campaign_start", 9, 30)
    assert job.endswith(":trading:0930")


def test_missed_beyond_grace_is_dropped_not_run(core) -> None:  # type: ignore[no-untyped-def]
    cid = _campaign(core)
    runs = Runs()
    sched = CampaignScheduler(core, on_run=runs, misfire_grace_s=60)
    sched.start(paused=True)
    job_id = sched.schedule_once(cid, "campaign_start", datetime.now(timezone.utc) + timedelta(hours=1))
    sched.scheduler.modify_job(job_id, next_run_time=datetime.now(timezone.utc) - timedelta(hours=2))
    missed = threading.Event()
    from apscheduler.events import EVENT_JOB_MISSED

    sched.scheduler.add_listener(lambda e: missed.set(), EVENT_JOB_MISSED)
    sched.resume()
    try:
        assert missed.wait(20)
    finally:
        sched.shutdown()
    assert runs.items == []
    assert _state(core, cid) == "scheduled"


def test_the_scheduler_goes_through_the_one_life_cycle(core) -> None:  # type: ignore[no-untyped-def]
    from callcenter.domain.campaigns import CampaignRefused

    cid = _campaign(core)
    sched = CampaignScheduler(core)
    at = datetime(2026, 11, 25, 1, 30, tzinfo=timezone.utc)

    def run(action: str) -> str:
        return sched._run("j", action, {"campaign_id": cid}, at)

    assert run("campaign_start") == "running"
    assert run("campaign_start") == "running"  # a daily start of a running campaign changes nothing
    assert run("campaign_pause") == "paused"
    sched.start(paused=True)
    try:
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        job = sched.schedule_once(cid, "campaign_start", later)
        assert _state(core, cid) == "paused"  # started once: never "scheduled" again; the job resumes it
        assert run("campaign_start") == "running"
        assert run("campaign_stop") == "finished"
        assert run("campaign_start") == "refused:finished"
        with pytest.raises(CampaignRefused):
            sched.schedule_once(cid, "campaign_start", later + timedelta(days=1))
        assert [j.id for j in sched.jobs(cid)] == [job]  # the refused schedule left no job behind
    finally:
        sched.shutdown()
    assert _state(core, cid) == "finished"
