"""Campaign schedules on APScheduler 3 with its SQLAlchemy job store on the engine's own database.

Public surface: ``CampaignScheduler`` (start/shutdown, schedule_once, schedule_trading_days, jobs, cancel),
``scheduler_runner(core, stop)`` for the engine's TaskGroup, ``ACTIONS``.
"""

from callcenter.scheduling.service import ACTIONS, CampaignScheduler, ScheduledJob, scheduler_runner

__all__ = ["ACTIONS", "CampaignScheduler", "ScheduledJob", "scheduler_runner"]
