"""A whole campaign at accelerated time: the real engine and database on a simulated PBX and a virtual clock.

``run_simulated_campaign`` creates agents, a campaign and its leads, then drives the ``DialerEngine``
event by event: the virtual clock jumps to the next PBX timer or engine deadline, the PBX's events are
handed to the engine, and the engine ticks.  Agents are simulated: ready at once, wrap-up of the
customer model's length.  Used by the end-to-end test and ``callcenter dialer simulate``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from sqlalchemy.orm import Session, sessionmaker

from callcenter.ports.progress import Progress, no_progress
from callcenter.ports.calendar import Calendar
from callcenter.services.bus import EventBus
from callcenter.services.deps import Deps
from callcenter.settings import Settings
from callcenter.services.dialer.engine import DialerDeps, DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, create_campaign, start_campaign
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.store.db import transaction
from callcenter.store.models.core import Staff
from callcenter.store.models.dialer import Lead
from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock


@dataclass
class SimReport:
    campaign_id: int
    virtual_seconds: float
    attempts: int
    humans: int
    connected: int
    abandoned: int
    lead_status: dict[str, int] = field(default_factory=dict)
    max_concurrent_per_lead: int = 0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.humans if self.humans else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "virtual_seconds": round(self.virtual_seconds, 1),
                "attempts": self.attempts, "humans": self.humans, "connected": self.connected,
                "abandoned": self.abandoned, "abandon_rate": round(self.abandon_rate, 4),
                "lead_status": self.lead_status}


def make_agents(core: Deps, n: int, prefix: str = "simagent") -> list[int]:
    with transaction(core.sessions) as s:
        ids = []
        for i in range(n):
            staff = Staff(username=f"{prefix}{i:03d}", display_name=f"坐席{i:03d}", password_hash="!", role="agent")
            s.add(staff)
            s.flush()
            ids.append(staff.id)
        return ids


@dataclass(frozen=True)
class _VirtualTime:
    """The caller's dependencies with the simulation's virtual clock: the services record in virtual time."""

    sessions: sessionmaker[Session]
    bus: EventBus
    calendar: Calendar
    settings: Settings
    clock: Callable[[], datetime]


async def run_simulated_campaign(
    deps: Deps,
    *,
    agents: int = 10,
    leads: int = 2000,
    mode: str = "predictive",
    model: CustomerModel | None = None,
    seed: int = 1,
    start: datetime = datetime(2026, 11, 25, 1, 0, tzinfo=timezone.utc),  # 09:00 in Shanghai, a Wednesday
    max_attempts: int = 3,
    retry_minutes: dict[str, float] | None = None,
    max_hours: float = 12.0,
    sync_s: float = 30.0,
    until: str = "settled",
    progressive_floor: bool = True,
    progress: Progress = no_progress,
) -> SimReport:
    """``until``: ``settled`` -- every lead final; ``first_pass`` -- no lead new or in flight (retries may remain)."""
    model = model or CustomerModel()
    vclock = VirtualClock()

    def wall() -> datetime:
        return start + timedelta(seconds=vclock.time())

    core = _VirtualTime(deps.sessions, deps.bus, deps.calendar, deps.settings, wall)  # the services in virtual time
    staff_ids = make_agents(core, agents, prefix=f"sim{seed}-")
    cid = create_campaign(core, name=f"模拟活动 {seed}", kind="cold_leads", script_id="cold_call", dial_mode=mode,
                          window_start=time(0, 0), window_end=time(23, 59, 59), days="every",
                          max_attempts=max_attempts,
                          retry_delays=retry_minutes or {"busy": 5, "no_answer": 30, "machine": 60, "failed": 10,
                                                         "abandoned": 15})
    assign_campaign(core, cid, staff_ids=staff_ids)
    add_leads(core, cid, [LeadRow(0, f"+86139{seed % 100:02d}{i:06d}", f"客户{i}", i % 3) for i in range(leads)])
    start_campaign(core, cid)
    for sid in staff_ids:
        agent_login(core, sid, campaign_id=cid)
        agent_ready(core, sid)

    pbx = SimulatedPbx(model, vclock, seed=seed)
    await pbx.start()
    dialler = DialerDeps(sessions=core.sessions, bus=core.bus, is_trading_day=core.calendar.is_trading_day, wall=wall,
                         scripts_dir=core.settings.scripts_path, tz=core.settings.tz)
    engine = DialerEngine(dialler, pbx, dialer_id=f"sim-{seed}", clock=vclock, sync_s=sync_s,
                          auto_wrap_up_s=model.wrap_up_s, campaign_ids={cid},
                          progressive_floor=progressive_floor)
    in_flight_per_lead: Counter[int] = Counter()
    max_concurrent = 0
    next_check = 0.0
    limit = max_hours * 3600
    while vclock.time() < limit:
        targets = [engine.next_deadline()]
        nxt = vclock.next_time()
        if nxt is not None:
            targets.append(nxt)
        vclock.run_until(max(min(targets), vclock.time()))
        for event in pbx.stream.pending():
            await engine.handle(event)
        await engine.tick()
        in_flight_per_lead = Counter(c.lead_id for c in engine.calls.values())
        if in_flight_per_lead:
            max_concurrent = max(max_concurrent, max(in_flight_per_lead.values()))
        if vclock.time() >= next_check:
            next_check = vclock.time() + 60
            with transaction(core.sessions) as s:
                open_statuses = ("new", "in_progress") if until == "first_pass" else ("new", "retry", "in_progress")
                open_leads = s.execute(select(func.count(Lead.id)).where(
                    Lead.campaign_id == cid, Lead.status.in_(open_statuses))).scalar_one()
            progress(leads - open_leads, leads)
            if open_leads == 0 and not engine.calls:
                break
    # let the last calls' wrap-ups finish (the auto wrap-up completes their disposition) before stopping
    drain_until = vclock.time() + (model.wrap_up_s or 0.0) + 2 * sync_s
    while vclock.time() < drain_until and any(a.state == "wrap_up" for a in engine.agents.values()):
        vclock.run_until(max(min(engine.next_deadline(), drain_until), vclock.time()))
        for event in pbx.stream.pending():
            await engine.handle(event)
        await engine.tick()
    await engine.shutdown()
    await pbx.aclose()
    with transaction(core.sessions) as s:
        status = dict(s.execute(select(Lead.status, func.count(Lead.id)).where(Lead.campaign_id == cid)
                                .group_by(Lead.status)).all())
    run = engine.campaigns.get(cid)
    return SimReport(cid, vclock.time(), engine.stats["originated"], run.humans if run else 0,
                     run.connected if run else 0, run.abandoned if run else 0, status, max_concurrent)
