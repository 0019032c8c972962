"""The outbound dialler engine: drives a ``Telephony`` port, one pacer per running campaign, and the records.

Per running campaign: ask the pacer how many calls to place (``calls_to_place``), claim that many
leads from the hopper, create their ``Attempt`` rows and originate them with ``call_id = attempt_call_id(attempt.id)`` (``telephony/variables.py``).
Port events become attempt records: an answered human goes to the longest-idle ready agent of the
campaign (``ready -> reserved -> talking``); with nobody free within ``abandon_after_s`` (2 s) the
call hears the safe-harbour prompt and is recorded ``abandoned``; a machine is hung up on (or left a
message).  Every finished attempt is ``record``-ed to the pacer and moves its lead on by the campaign's
retry rules.  Preview campaigns show a lead to each ready agent, who dials or skips it.  Callbacks
that are due are placed with an agent reserved first (the owner for agent-only ones).

The database is the source of truth for agents (``agent_sessions``): the web changes ready / pause /
wrap-up through ``callcenter.dialer.service``, the engine re-reads its agents every ``sync_s`` seconds
and makes its own changes with the same state machine.  Several engines share one database: leads
are claimed with row locks (``hopper``) and each agent session is leased by one engine.

Time: ``clock.time()`` (seconds; the loop clock, or a ``VirtualClock`` for accelerated runs) and
``wall()`` (aware UTC datetime for records and calling windows).  DB work is short transactions run
inline on the loop.

Live events (``core.bus``):
* ``agent:<staff id>``: ``{"type": "call_connected", "attempt_id", "client_id", "lead_id", "campaign_id",
  "attempt_no"}``, ``{"type": "agent_state", "state", "reason", "attempt_id"}``, ``{"type": "preview",
  "lead_id", "campaign_id", "client_id", "name", "phone", "attempt_no"}``, ``{"type": "callback",
  "callback_id", "lead_id", "attempt_id", "campaign_id"}``.
* ``wallboard``: ``{"type": "dialer", "dialer_id", "campaign_id", "state", "mode", "in_flight", "waiting",
  "agents": {state: n}, "attempts", "humans", "connected", "abandoned", "abandon_rate"}``.
* ``calls``: ``{"type": "attempt_ended", "attempt_id", "campaign_id", "lead_id", "outcome", "abandoned"}``.
  The engine reads ``calls`` too: ``{"type": "hangup_requested", "contact_id", "staff_id"}`` from the agent
  screen hangs that agent's call up through the port.

Agent sessions opened on the screen before any campaign ran (``campaign_id`` NULL) or whose campaign ended
join the highest-priority running campaign they are assigned to at the next sync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from callcenter.bootstrap import App
from callcenter.care.notify_calls import CALL_PREFIX as NOTIFY_PREFIX
from callcenter.dialer.hopper import (
    DEFAULT_LEASE,
    claim_leads,
    claim_one,
    finish_attempt,
    release_lead,
    renew_claims,
    rules_of,
    start_attempt,
)
from callcenter.dialer.pacing import AgentView, AttemptOutcome, DialerState, Pacer, make_pacer
from callcenter.dialer.service import campaign_agent_ids, change_agent_state, start_due
from callcenter.domain.campaigns import RuleError, in_window, on_dnc
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import AgentSession, Attempt, Callback, Campaign, DncEntry, Lead
from callcenter.telephony import variables as V
from callcenter.ports.telephony import (
    AgentLeft,
    Answered,
    Connected,
    Ended,
    Failed,
    NoServerAvailable,
    OriginateRejected,
    Telephony,
    TelephonyError,
    TelephonyEvent,
    mask_number,
    notsure_as,
)

log = logging.getLogger(__name__)


if TYPE_CHECKING:
    from callcenter.care.notify_calls import NotificationCaller

SAFE_HARBOUR_PROMPT = "cc/safe-harbour"
MACHINE_PROMPT = "cc/leave-message"


class Clock(Protocol):
    def time(self) -> float: ...


class _LoopTime:
    def time(self) -> float:
        return asyncio.get_running_loop().time()


@dataclass
class Call:
    call_id: str
    attempt_id: int
    campaign_id: int
    lead_id: int
    client_id: int | None
    phone: str
    attempt_no: int
    dialled: float  # clock seconds
    agent_id: int | None = None  # pre-assigned (preview, callback) or routed
    callback_id: int | None = None
    state: str = "dialing"  # dialing -> waiting | connecting | connected | machine | abandoning
    answered: float | None = None
    connected: float | None = None
    amd: str | None = None
    abandoned: bool = False


@dataclass
class Agent:
    staff_id: int
    session_id: int
    campaign_id: int | None
    phone: str
    state: str
    since: datetime
    call_id: str | None = None
    preview_lead_id: int | None = None
    phone_up: bool = False
    wrap_deadline: float | None = None
    login_retry_at: float = 0.0


@dataclass
class CampaignRun:
    id: int
    state: str
    mode: str
    caller_id: str
    amd_policy: str
    leave_message: bool
    pacer: Pacer
    waiting: deque[str] = field(default_factory=deque)
    hopper_empty_until: float = 0.0
    attempts: int = 0
    humans: int = 0
    connected: int = 0
    abandoned: int = 0
    last_board: tuple[Any, ...] = ()


def _pacer_for(c: Campaign) -> Pacer:
    if c.dial_mode == "ratio":
        return make_pacer("ratio", ratio=c.ratio)
    if c.dial_mode == "predictive":
        return make_pacer("predictive", target_abandon=c.target_abandon)
    return make_pacer(c.dial_mode)


def default_dialer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


class DialerEngine:
    def __init__(
        self,
        core: App,
        telephony: Telephony,
        *,
        dialer_id: str | None = None,
        clock: Clock | None = None,
        wall: Callable[[], datetime] | None = None,
        abandon_after_s: float = 2.0,
        sync_s: float = 1.0,
        tick_s: float = 1.0,
        wallboard_s: float = 1.0,
        auto_wrap_up_s: float | None = None,
        originate_timeout_s: float = 30.0,
        lease: timedelta = DEFAULT_LEASE,
        callback_grace: timedelta = timedelta(hours=2),
        campaign_ids: set[int] | None = None,
        progressive_floor: bool = True,
    ) -> None:
        self.core = core
        self.telephony = telephony
        self.dialer_id = dialer_id or default_dialer_id()
        self.clock: Clock = clock or _LoopTime()
        self.wall = wall or core.clock
        self.abandon_after_s = abandon_after_s
        self.sync_s = sync_s
        self.tick_s = tick_s
        self.wallboard_s = wallboard_s
        self.auto_wrap_up_s = auto_wrap_up_s
        self.originate_timeout_s = originate_timeout_s
        self.lease = lease
        self.callback_grace = callback_grace
        self.only_campaigns = campaign_ids
        self.progressive_floor = progressive_floor
        self.calls: dict[str, Call] = {}
        self.agents: dict[int, Agent] = {}
        self.campaigns: dict[int, CampaignRun] = {}
        self._next_sync = 0.0
        self._next_tick = 0.0
        self._next_board = 0.0
        self._next_renew = datetime.min.replace(tzinfo=timezone.utc)
        self._lock = asyncio.Lock()
        self.stats = {"originated": 0, "rejected": 0}

    # --- helpers ----------------------------------------------------------------------------------

    def _tx(self, work: Callable[[Session], Any]) -> Any:
        return run_in_transaction(self.core.sessions, work)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.core.bus.publish(topic, payload)

    def next_deadline(self) -> float:
        """The next clock time the engine wants to run at (drivers of a virtual clock use it)."""
        times = [self._next_sync, self._next_tick]
        for cid in self.campaigns.values():
            for call_id in cid.waiting:
                call = self.calls.get(call_id)
                if call is not None and call.answered is not None:
                    times.append(call.answered + self.abandon_after_s)
        times += [a.wrap_deadline for a in self.agents.values() if a.wrap_deadline is not None]
        return min(times)

    # --- the two entry points: events and ticks ---------------------------------------------------

    async def handle(self, event: TelephonyEvent) -> None:
        async with self._lock:
            await self._handle(event)
            await self._serve_waiting()

    async def tick(self) -> None:
        async with self._lock:
            now = self.clock.time()
            if now >= self._next_sync:
                self._next_sync = now + self.sync_s
                await self._sync()
            await self._wrap_ups(now)
            await self._abandons(now)
            await self._serve_waiting()
            await self._dial(now)
            if now >= self._next_tick:
                self._next_tick = now + self.tick_s
            if now >= self._next_board:
                self._next_board = now + self.wallboard_s
                self._wallboard()

    async def run(self, stop: asyncio.Event) -> None:
        """Real time: read port events and tick until ``stop`` is set."""
        wake = asyncio.Event()

        async def read() -> None:
            async for event in self.telephony.events():
                notify = self.core.notifications.caller if self.core.notifications is not None else None
                if notify is not None and str(getattr(event, "call_id", "")).startswith(NOTIFY_PREFIX):
                    await notify.handle(event)  # an agentless notification call, not a dialler attempt
                    continue
                await self.handle(event)
                wake.set()

        reader = asyncio.create_task(read())
        hanger = asyncio.create_task(self.serve_hangups(wake))
        try:
            while not stop.is_set():
                if reader.done():
                    reader.result()  # a crashed reader fails the runner
                    break
                if hanger.done():
                    hanger.result()
                    break
                await self.tick()
                delay = min(max(self.next_deadline() - self.clock.time(), 0.02), 0.5)
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                except TimeoutError:
                    pass
                wake.clear()
        finally:
            for task in (reader, hanger):
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            await self.shutdown()

    async def serve_hangups(self, wake: asyncio.Event | None = None) -> None:
        """Carry out the agent screen's hang-up button (``calls`` ``hangup_requested``) until cancelled."""
        async with self.core.bus.subscribe("calls") as sub:
            async for _topic, event in sub:
                if event.get("type") != "hangup_requested":
                    continue
                try:
                    await self.hangup_requested(int(event["contact_id"]), int(event["staff_id"]))
                except (KeyError, TypeError, ValueError):
                    log.warning("bad hang-up request %r", event)
                if wake is not None:
                    wake.set()

    async def hangup_requested(self, contact_id: int, staff_id: int) -> bool:
        """The agent pressed hang-up on the desk contact ``contact_id``: hang its call up through the port.
        Returns False when no call of ours belongs to that contact and agent (already over, or not ours)."""
        from callcenter.store.models.desk import DeskContact

        def attempt_of(s: Session) -> int | None:
            contact = s.get(DeskContact, contact_id)
            return contact.attempt_id if contact is not None and contact.agent_id == staff_id else None

        attempt_id = self._tx(attempt_of)
        if attempt_id is None:
            return False
        async with self._lock:
            call = next((c for c in self.calls.values() if c.attempt_id == attempt_id and c.agent_id == staff_id), None)
            if call is None:
                return False
            try:
                await self.telephony.hangup(call.call_id)
            except TelephonyError as exc:
                log.warning("hang-up of %s failed: %s", call.call_id, exc)
                return False
            return True

    async def shutdown(self) -> None:
        """Give back previewed leads and agent leases (calls in flight finish on the PBX; their claims expire)."""
        now = self.wall()

        def work(s: Session) -> None:
            for agent in self.agents.values():
                if agent.preview_lead_id is not None:
                    lead = s.get(Lead, agent.preview_lead_id)
                    if lead is not None and lead.status == "in_progress" and lead.claimed_by == self.dialer_id:
                        release_lead(s, lead, now)
                    session = s.get(AgentSession, agent.session_id)
                    if session is not None and session.state == "reserved":
                        session.preview_lead_id = None
                        change_agent_state(s, session, "release", now, reason="dialler_stopped")
            s.execute(update(AgentSession).where(AgentSession.dialer_id == self.dialer_id)
                      .values(dialer_id=None, lease_until=None))

        self._tx(work)

    # --- sync with the database ---------------------------------------------------------------------

    async def _sync(self) -> None:
        now = self.wall()

        def load(s: Session) -> tuple[list[Campaign], list[AgentSession], list[Callback]]:
            start_due(s, now)
            q = select(Campaign).where(Campaign.state.in_(("running", "paused")))
            campaigns = [c for c in s.scalars(q) if self.only_campaigns is None or c.id in self.only_campaigns]
            mine = [c.id for c in campaigns]
            self._adopt_agents(s, [c for c in campaigns if c.state == "running"], now)
            s.execute(update(AgentSession).where(
                AgentSession.ended_at.is_(None), AgentSession.campaign_id.in_(mine),
                or_(AgentSession.dialer_id.is_(None), AgentSession.dialer_id == self.dialer_id,
                    AgentSession.lease_until < now),
            ).values(dialer_id=self.dialer_id, lease_until=now + self.lease))
            sessions = list(s.scalars(select(AgentSession).where(
                AgentSession.dialer_id == self.dialer_id, AgentSession.ended_at.is_(None))))
            in_flight = [c.lead_id for c in self.calls.values()]
            in_flight += [a.preview_lead_id for a in self.agents.values() if a.preview_lead_id is not None]
            if in_flight and now >= self._next_renew:
                renew_claims(s, self.dialer_id, in_flight, now + self.lease)
                self._next_renew = now + self.lease / 4
            running = [c.id for c in campaigns if c.state == "running"]
            callbacks = list(s.scalars(select(Callback).where(
                Callback.status == "pending", Callback.due_at <= now, Callback.campaign_id.in_(running))
                .order_by(Callback.due_at, Callback.id).limit(50))) if running else []
            return campaigns, sessions, callbacks

        campaigns, sessions, callbacks = self._tx(load)
        seen = set()
        for c in campaigns:
            seen.add(c.id)
            run = self.campaigns.get(c.id)
            if run is None or run.mode != c.dial_mode:
                run = CampaignRun(c.id, c.state, c.dial_mode, c.caller_id, c.amd_policy, c.leave_message, _pacer_for(c))
                self.campaigns[c.id] = run
            run.state, run.caller_id, run.amd_policy, run.leave_message = c.state, c.caller_id, c.amd_policy, c.leave_message
        for cid, run in list(self.campaigns.items()):
            if cid not in seen:
                run.state = "finished"
                if not any(call.campaign_id == cid for call in self.calls.values()):
                    del self.campaigns[cid]
        await self._sync_agents(sessions)
        for session in sessions:
            if session.preview_action is not None:
                await self._preview_action(session)
        await self._previews()
        for cb in callbacks:
            await self._place_callback(cb)

    def _adopt_agents(self, s: Session, running: list[Campaign], now: datetime) -> None:
        """Sessions opened on the agent screen with no running campaign (none was running at login, or theirs
        has ended) join the highest-priority running campaign of ours they are assigned to."""
        if not running:
            return
        live = select(Campaign.id).where(Campaign.state.in_(("running", "paused")))
        homeless = list(s.scalars(select(AgentSession).where(
            AgentSession.ended_at.is_(None), AgentSession.state.in_(("ready", "paused")),
            or_(AgentSession.campaign_id.is_(None), AgentSession.campaign_id.not_in(live)))))
        if not homeless:
            return
        order = sorted(running, key=lambda c: (-c.priority, c.id))
        members = {c.id: campaign_agent_ids(s, c.id) for c in order}
        for session in homeless:
            cid = next((c.id for c in order if session.staff_id in members[c.id]), None)
            if cid is not None:
                session.campaign_id = cid
                session.dialer_id, session.lease_until = None, None

    async def _sync_agents(self, sessions: list[AgentSession]) -> None:
        present = set()
        for row in sessions:
            present.add(row.staff_id)
            agent = self.agents.get(row.staff_id)
            if agent is None or agent.session_id != row.id:
                agent = Agent(row.staff_id, row.id, row.campaign_id, row.phone, row.state, row.state_since)
                self.agents[row.staff_id] = agent
            agent.campaign_id = row.campaign_id
            if agent.state != row.state:
                agent.state, agent.since = row.state, row.state_since
                if row.state != "wrap_up":
                    agent.wrap_deadline = None
            agent.preview_lead_id = row.preview_lead_id
            if row.state == "wrap_up" and agent.wrap_deadline is None and self.auto_wrap_up_s is not None:
                agent.wrap_deadline = self.clock.time() + self.auto_wrap_up_s
            if not agent.phone_up and self.clock.time() >= agent.login_retry_at:
                agent.login_retry_at = self.clock.time() + 30.0  # a phone that will not answer: not every second
                try:
                    await self.telephony.agent_login(str(row.staff_id), row.phone)
                    agent.phone_up = True
                except (TelephonyError, ValueError) as exc:
                    log.warning("agent %s phone login failed: %s", row.staff_id, exc)
        for staff_id in [s for s in self.agents if s not in present]:
            agent = self.agents.pop(staff_id)
            if agent.phone_up:
                try:
                    await self.telephony.agent_logout(str(staff_id))
                except TelephonyError:
                    pass

    # --- agents -------------------------------------------------------------------------------------

    def _agent_event(self, agent: Agent, event: str, *, reason: str = "", attempt_id: int | None = None,
                     extra: Callable[[Session], None] | None = None) -> bool:
        """Apply an engine-made agent transition in one transaction; False when the row moved meanwhile."""
        now = self.wall()
        expected = agent.state

        def work(s: Session) -> str | None:
            session = s.get(AgentSession, agent.session_id)
            if session is None or session.ended_at is not None:
                return None
            if session.state != expected:
                return session.state
            if extra is not None:
                extra(s)
            change_agent_state(s, session, event, now, reason=reason, attempt_id=attempt_id)
            return "ok:" + session.state

        try:
            result = self._tx(work)
        except RuleError:
            return False
        if result is None:
            self.agents.pop(agent.staff_id, None)
            return False
        if not result.startswith("ok:"):
            agent.state, agent.since = result, now  # somebody else (the web) changed it; take theirs
            return False
        agent.state, agent.since = result[3:], now
        agent.wrap_deadline = (self.clock.time() + self.auto_wrap_up_s
                               if agent.state == "wrap_up" and self.auto_wrap_up_s is not None else None)
        if agent.state not in ("reserved", "talking", "wrap_up"):
            agent.call_id = None
        self._publish(f"agent:{agent.staff_id}", {"type": "agent_state", "state": agent.state, "reason": reason,
                                                  "attempt_id": attempt_id})
        return True

    def _ready_agents(self, campaign_id: int) -> list[Agent]:
        ready = [a for a in self.agents.values()
                 if a.campaign_id == campaign_id and a.state == "ready" and a.phone_up]
        ready.sort(key=lambda a: (a.since, a.staff_id))  # longest idle first
        return ready

    async def _wrap_ups(self, now: float) -> None:
        for agent in list(self.agents.values()):
            if agent.wrap_deadline is not None and now >= agent.wrap_deadline and agent.state == "wrap_up":
                attempt_id = None
                call_id = agent.call_id

                def fill(s: Session, call_id: str | None = call_id) -> None:
                    if call_id is not None:
                        s.execute(update(Attempt).where(Attempt.call_id == call_id, Attempt.disposition.is_(None))
                                  .values(disposition="completed"))

                self._agent_event(agent, "ready", reason="auto_wrap_up", attempt_id=attempt_id, extra=fill)
                agent.wrap_deadline = None

    # --- dialling -----------------------------------------------------------------------------------

    def _views(self, campaign_id: int, now_wall: datetime) -> list[AgentView]:
        views = []
        for a in self.agents.values():
            if a.campaign_id != campaign_id or not a.phone_up:
                continue
            secs = max(0.0, (now_wall - a.since).total_seconds())
            if a.state == "ready":
                views.append(AgentView("idle", secs))
            elif a.state in ("reserved", "talking"):
                views.append(AgentView("talking", secs if a.state == "talking" else 0.0))
            elif a.state == "wrap_up":
                views.append(AgentView("wrap_up", secs))
        return views

    async def _dial(self, now: float) -> None:
        wall = self.wall()
        for run in list(self.campaigns.values()):
            if run.state != "running" or run.mode == "preview" or now < run.hopper_empty_until:
                continue
            in_flight = [now - c.dialled for c in self.calls.values()
                         if c.campaign_id == run.id and c.state == "dialing"]
            views = self._views(run.id, wall)
            n = run.pacer.calls_to_place(DialerState(now, views, in_flight))
            if self.progressive_floor:
                # never fewer calls than idle agents not covered by a call in flight or waiting: such calls
                # always find an agent, so this cannot abandon; it keeps a pacer that holds back from stalling
                covered = len(in_flight) + len(run.waiting)
                n = max(n, sum(1 for v in views if v.state == "idle") - covered)
            if n <= 0:
                continue
            started = self._claim_and_start(run, n, wall)
            if len(started) < n:
                run.hopper_empty_until = now + max(self.sync_s, 5.0)
            for call, number in started:
                await self._originate(run, call, number)

    def _claim_and_start(self, run: CampaignRun, n: int, wall: datetime,
                         agent_id: int | None = None) -> list[tuple[Call, str]]:
        now_mono = self.clock.time()

        def work(s: Session) -> list[tuple[Call, str]]:
            campaign = s.get(Campaign, run.id)
            if campaign is None or campaign.state != "running":
                return []
            out = []
            for lead in claim_leads(s, campaign, self.dialer_id, n, wall, self.core.calendar.is_trading_day,
                                    lease=self.lease):
                attempt = start_attempt(s, lead, campaign, self.dialer_id, wall, mode=campaign.dial_mode,
                                        agent_id=agent_id)
                out.append((Call(attempt.call_id or V.attempt_call_id(attempt.id), attempt.id, campaign.id, lead.id,
                                 lead.client_id, lead.phone, attempt.attempt_no, now_mono, agent_id), lead.phone))
            return out

        return self._tx(work)

    async def _originate(self, run: CampaignRun, call: Call, number: str) -> None:
        self.calls[call.call_id] = call
        variables = {V.CC_CALL_ID: call.call_id, V.CC_CAMPAIGN_ID: str(call.campaign_id),
                     V.CC_CLIENT_ID: str(call.client_id or "")}
        try:
            await self.telephony.originate(call.call_id, number, run.caller_id or "", variables,
                                           self.originate_timeout_s)
            self.stats["originated"] += 1
            run.attempts += 1
        except (OriginateRejected, ValueError) as exc:
            self.stats["rejected"] += 1
            lost = isinstance(exc, NoServerAvailable) or (
                isinstance(exc, OriginateRejected) and not isinstance(exc, ValueError))
            log.warning("originate %s to %s refused: %s", call.call_id, mask_number(number), exc)
            if isinstance(exc, NoServerAvailable):
                self._hold_dialling(run)
            await self._finish(call, "lost" if lost else "failed", cause_text=str(exc)[:64], record=False)
        except TelephonyError as exc:
            # Sent or not, the PBX never confirmed it (the connection dropped, no reply in time): the attempt
            # is "lost", which does not use up one of the lead's attempts. Never an exception that ends the
            # dialler (and with it the engine). The adapter does not re-send it.
            self.stats["unconfirmed"] = self.stats.get("unconfirmed", 0) + 1
            log.warning("originate %s to %s not confirmed (%s); recorded as lost", call.call_id,
                        mask_number(number), exc)
            self._hold_dialling(run)
            await self._finish(call, "lost", cause_text=str(exc)[:64], record=False)

    def _hold_dialling(self, run: CampaignRun) -> None:
        """The PBX is not taking calls: claim no more leads of this campaign for a few seconds (rather than
        turning the whole hopper into "lost" attempts while it is down)."""
        run.hopper_empty_until = max(run.hopper_empty_until, self.clock.time() + max(self.sync_s, 5.0))

    # --- port events --------------------------------------------------------------------------------

    async def _handle(self, event: TelephonyEvent) -> None:
        if isinstance(event, AgentLeft):
            agent = self.agents.get(int(event.agent_id)) if event.agent_id.isdigit() else None
            if agent is not None:
                agent.phone_up = False
            return
        call = self.calls.get(getattr(event, "call_id", ""))
        if call is None:
            return  # not ours, or a duplicate after the terminal event
        run = self.campaigns.get(call.campaign_id)
        if isinstance(event, Answered):
            await self._answered(call, run, event)
        elif isinstance(event, Connected):
            await self._connected(call, event)
        elif isinstance(event, Failed):
            kind = event.reason if event.reason in ("busy", "no_answer", "lost") else "failed"
            await self._finish(call, kind, cause=event.cause, cause_text=event.reason)
        elif isinstance(event, Ended):
            await self._ended(call, event)

    async def _answered(self, call: Call, run: CampaignRun | None, event: Answered) -> None:
        if call.state != "dialing":
            return
        call.answered = self.clock.time()
        policy: Literal["human", "machine"] = "machine" if run is not None and run.amd_policy == "machine" else "human"
        call.amd = notsure_as(event.amd, policy)
        wall = self.wall()
        raw_amd, amd_cause = event.amd, (event.amd_cause or "")[:64]

        def mark(s: Session) -> None:
            s.execute(update(Attempt).where(Attempt.id == call.attempt_id)
                      .values(answered_at=wall, amd=raw_amd, amd_cause=amd_cause))

        if call.amd == "machine":
            call.state = "machine"
            self._tx(mark)
            try:
                if run is not None and run.leave_message:
                    await self.telephony.play(call.call_id, MACHINE_PROMPT)
                else:
                    await self.telephony.hangup(call.call_id)
            except TelephonyError:
                pass
            return
        if run is not None:
            run.humans += 1
        if call.agent_id is not None:  # preview / callback: the agent is waiting for this call
            self._tx(mark)
            agent = self.agents.get(call.agent_id)
            if agent is not None and await self._connect(call, agent):
                return
            call.agent_id = None
        call.state = "waiting"
        agent = self._pick_agent(call)
        if agent is not None and self._agent_event(agent, "reserve", reason="route", attempt_id=call.attempt_id,
                                                   extra=mark):
            if await self._connect(call, agent):
                return
        else:
            self._tx(mark)
        call.state = "waiting"
        if run is not None and call.call_id not in run.waiting:
            run.waiting.append(call.call_id)

    def _pick_agent(self, call: Call) -> Agent | None:
        ready = self._ready_agents(call.campaign_id)
        return ready[0] if ready else None

    async def _connect(self, call: Call, agent: Agent) -> bool:
        """Move the call to a reserved agent's room; on failure the agent is released."""
        call.state = "connecting"
        call.agent_id = agent.staff_id
        agent.call_id = call.call_id
        try:
            await self.telephony.connect(call.call_id, str(agent.staff_id))
            return True
        except TelephonyError as exc:
            log.warning("connect %s to agent %s failed: %s", call.call_id, agent.staff_id, exc)
            agent.phone_up = False
            self._agent_event(agent, "release", reason="connect_failed")
            call.agent_id = None
            call.state = "waiting"
            return False

    async def _serve_waiting(self) -> None:
        for run in self.campaigns.values():
            while run.waiting:
                call = self.calls.get(run.waiting[0])
                if call is None or call.state != "waiting":
                    run.waiting.popleft()
                    continue
                agent = self._pick_agent(call)
                if agent is None:
                    break
                run.waiting.popleft()
                if self._agent_event(agent, "reserve", reason="route", attempt_id=call.attempt_id):
                    if not await self._connect(call, agent):
                        run.waiting.appendleft(call.call_id)
                else:
                    run.waiting.appendleft(call.call_id)

    async def _abandons(self, now: float) -> None:
        for run in self.campaigns.values():
            keep: deque[str] = deque()
            for call_id in run.waiting:
                call = self.calls.get(call_id)
                if call is None or call.state != "waiting":
                    continue
                if call.answered is not None and now >= call.answered + self.abandon_after_s:
                    call.state = "abandoning"
                    call.abandoned = True
                    try:
                        await self.telephony.play(call.call_id, SAFE_HARBOUR_PROMPT)
                    except TelephonyError:
                        try:
                            await self.telephony.hangup(call.call_id)
                        except TelephonyError:
                            pass
                else:
                    keep.append(call_id)
            run.waiting = keep

    async def _connected(self, call: Call, event: Connected) -> None:
        if call.state == "connected":
            return
        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        call.state = "connected"
        call.connected = self.clock.time()
        wall = self.wall()
        staff_id = call.agent_id

        def mark(s: Session) -> None:
            s.execute(update(Attempt).where(Attempt.id == call.attempt_id)
                      .values(connected_at=wall, agent_id=staff_id))

        if agent is not None and agent.state == "reserved":
            self._agent_event(agent, "connect", reason="call", attempt_id=call.attempt_id, extra=mark)
        else:
            self._tx(mark)
        run = self.campaigns.get(call.campaign_id)
        if run is not None:
            run.connected += 1
        if staff_id is not None:
            self._publish(f"agent:{staff_id}", {
                "type": "call_connected", "attempt_id": call.attempt_id, "client_id": call.client_id,
                "lead_id": call.lead_id, "campaign_id": call.campaign_id, "attempt_no": call.attempt_no})

    async def _ended(self, call: Call, event: Ended) -> None:
        if call.state == "machine":
            await self._finish(call, "machine", cause=event.cause, cause_text=event.cause_text)
        elif call.state == "connected":
            talk = event.talk_s if event.talk_s is not None else (self.clock.time() - (call.connected or 0.0))
            await self._finish(call, "human", cause=event.cause, cause_text=event.cause_text, talk_s=talk)
        elif call.abandoned:
            await self._finish(call, "abandoned", cause=event.cause, cause_text=event.cause_text)
        else:  # the person hung up before we reached them (within the grace period), or before an answer
            outcome = "human" if call.answered is not None else "no_answer"
            await self._finish(call, outcome, cause=event.cause, cause_text=event.cause_text,
                               lead_outcome="abandoned" if outcome == "human" else None)

    async def _finish(self, call: Call, outcome: str, *, cause: int | None = None, cause_text: str = "",
                      talk_s: float | None = None, lead_outcome: str | None = None, record: bool = True) -> None:
        self.calls.pop(call.call_id, None)
        run = self.campaigns.get(call.campaign_id)
        if run is not None and call.call_id in run.waiting:
            run.waiting.remove(call.call_id)
        now = self.clock.time()
        wall = self.wall()
        abandoned = outcome == "abandoned"
        callback_status = "done" if call.connected is not None else "missed"

        def close(s: Session) -> None:
            attempt = s.get(Attempt, call.attempt_id)
            assert attempt is not None
            finish_attempt(s, attempt, outcome, wall, lead_outcome=lead_outcome, cause=cause,
                           cause_text=cause_text, talk_s=talk_s, abandoned=abandoned)
            if call.callback_id is not None:
                s.execute(update(Callback).where(Callback.id == call.callback_id).values(status=callback_status))

        agent = self.agents.get(call.agent_id) if call.agent_id is not None else None
        if agent is not None and agent.call_id == call.call_id and agent.state in ("reserved", "talking"):
            event = "hangup" if agent.state == "talking" else "release"
            if not self._agent_event(agent, event, reason=outcome, attempt_id=call.attempt_id, extra=close):
                self._tx(close)
        else:
            self._tx(close)
        if run is not None and record:
            kind = "human" if outcome in ("human", "abandoned") else outcome
            if kind in ("human", "machine", "busy", "no_answer", "failed"):
                ring = (call.answered if call.answered is not None else now) - call.dialled
                connected_talk = talk_s if outcome == "human" and call.connected is not None else None
                run.pacer.record(AttemptOutcome(kind, max(0.0, ring), connected_talk, abandoned))
            if abandoned:
                run.abandoned += 1
        self._publish("calls", {"type": "attempt_ended", "attempt_id": call.attempt_id, "campaign_id": call.campaign_id,
                                "lead_id": call.lead_id, "outcome": outcome, "abandoned": abandoned})

    # --- preview mode -------------------------------------------------------------------------------

    async def _previews(self) -> None:
        wall = self.wall()
        for run in self.campaigns.values():
            if run.state != "running" or run.mode != "preview":
                continue
            for agent in self._ready_agents(run.id):
                if agent.preview_lead_id is not None:
                    continue
                found: dict[str, Any] = {}

                def show(s: Session, agent: Agent = agent, found: dict[str, Any] = found) -> None:
                    campaign = s.get(Campaign, run.id)
                    leads = claim_leads(s, campaign, self.dialer_id, 1, wall, self.core.calendar.is_trading_day,
                                        lease=self.lease) if campaign is not None else []
                    if not leads:
                        raise _NothingToShow
                    lead = leads[0]
                    session = s.get(AgentSession, agent.session_id)
                    assert session is not None
                    session.preview_lead_id = lead.id
                    session.preview_action = None
                    found.update(lead_id=lead.id, client_id=lead.client_id, name=lead.name, phone=lead.phone,
                                 attempt_no=lead.attempts + 1)

                try:
                    ok = self._agent_event(agent, "reserve", reason="preview", extra=show)
                except _NothingToShow:
                    break
                if ok:
                    agent.preview_lead_id = found["lead_id"]
                    self._publish(f"agent:{agent.staff_id}", {"type": "preview", "campaign_id": run.id, **found})

    async def _preview_action(self, session: AgentSession) -> None:
        agent = self.agents.get(session.staff_id)
        run = self.campaigns.get(session.campaign_id or -1)
        lead_id = session.preview_lead_id
        if agent is None or run is None or lead_id is None or agent.state != "reserved":
            return
        wall = self.wall()
        action = session.preview_action
        if action == "skip":
            def skip(s: Session) -> None:
                row = s.get(AgentSession, agent.session_id)
                lead = s.get(Lead, lead_id)
                campaign = s.get(Campaign, run.id)
                if lead is not None and campaign is not None and lead.claimed_by == self.dialer_id:
                    release_lead(s, lead, wall, at=wall + rules_of(campaign).delay_for("skipped"))
                if row is not None:
                    row.preview_lead_id = None
                    row.preview_action = None

            self._agent_event(agent, "release", reason="preview_skip", extra=skip)
            agent.preview_lead_id = None
            return
        now_mono = self.clock.time()
        started: list[Call] = []

        def dial(s: Session) -> None:
            row = s.get(AgentSession, agent.session_id)
            lead = s.get(Lead, lead_id)
            campaign = s.get(Campaign, run.id)
            if row is not None:
                row.preview_lead_id = None
                row.preview_action = None
            if lead is None or campaign is None or lead.claimed_by != self.dialer_id or lead.status != "in_progress":
                return
            attempt = start_attempt(s, lead, campaign, self.dialer_id, wall, mode="preview", agent_id=agent.staff_id)
            if row is not None:
                row.attempt_id = attempt.id
            started.append(Call(attempt.call_id or V.attempt_call_id(attempt.id), attempt.id, campaign.id, lead.id, lead.client_id,
                                lead.phone, attempt.attempt_no, now_mono, agent.staff_id))

        self._tx(dial)
        agent.preview_lead_id = None
        if not started:
            self._agent_event(agent, "release", reason="preview_gone")
            return
        call = started[0]
        agent.call_id = call.call_id
        await self._originate(run, call, call.phone)

    # --- callbacks ----------------------------------------------------------------------------------

    async def _place_callback(self, cb: Callback) -> None:
        run = self.campaigns.get(cb.campaign_id or -1)
        if run is None or run.state != "running" or cb.lead_id is None:
            return
        wall = self.wall()
        if wall - cb.due_at > self.callback_grace:
            self._tx(lambda s: s.execute(update(Callback).where(Callback.id == cb.id, Callback.status == "pending")
                                         .values(status="missed")))
            return
        ready = self._ready_agents(run.id)
        if cb.agent_only:
            ready = [a for a in ready if a.staff_id == cb.owner_id]
        if not ready:
            return
        agent = ready[0]
        now_mono = self.clock.time()
        started: list[Call] = []

        def place(s: Session) -> None:
            row = s.get(Callback, cb.id)
            campaign = s.get(Campaign, run.id)
            if row is None or row.status != "pending" or campaign is None:
                raise _NothingToShow
            dnc = [(d.phone, d.campaign_id) for d in s.scalars(select(DncEntry).where(DncEntry.phone == row.phone))]
            lead_row = s.get(Lead, row.lead_id)
            if lead_row is None or on_dnc(row.phone, campaign.id, dnc) or lead_row.status == "dnc":
                row.status = "missed"
                return
            if not in_window(wall, lead_row.timezone, rules_of(campaign).window, self.core.calendar.is_trading_day):
                raise _NothingToShow  # try again when the window opens (within the grace)
            lead = claim_one(s, lead_row.id, self.dialer_id, wall, self.lease)
            if lead is None:
                raise _NothingToShow
            attempt = start_attempt(s, lead, campaign, self.dialer_id, wall, mode="callback",
                                    agent_id=agent.staff_id, callback_id=row.id)
            row.status = "placed"
            row.placed_at = wall
            row.attempt_id = attempt.id
            started.append(Call(attempt.call_id or V.attempt_call_id(attempt.id), attempt.id, campaign.id, lead.id, lead.client_id,
                                lead.phone, attempt.attempt_no, now_mono, agent.staff_id, callback_id=row.id))

        try:
            ok = self._agent_event(agent, "reserve", reason="callback", extra=place)
        except _NothingToShow:
            return
        if not ok or not started:
            if ok:
                self._agent_event(agent, "release", reason="callback_missed")
            return
        call = started[0]
        agent.call_id = call.call_id
        self._publish(f"agent:{agent.staff_id}", {"type": "callback", "callback_id": cb.id, "lead_id": call.lead_id,
                                                  "attempt_id": call.attempt_id, "campaign_id": call.campaign_id})
        await self._originate(run, call, call.phone)

    # --- wallboard ----------------------------------------------------------------------------------

    def _wallboard(self) -> None:
        for run in self.campaigns.values():
            agents: dict[str, int] = {}
            for a in self.agents.values():
                if a.campaign_id == run.id:
                    key = a.state
                    agents[key] = agents.get(key, 0) + 1
            in_flight = sum(1 for c in self.calls.values() if c.campaign_id == run.id)
            board = (run.state, in_flight, len(run.waiting), tuple(sorted(agents.items())), run.attempts,
                     run.humans, run.connected, run.abandoned)
            if board == run.last_board:
                continue
            run.last_board = board
            self._publish("wallboard", {
                "type": "dialer", "dialer_id": self.dialer_id, "campaign_id": run.id, "state": run.state,
                "mode": run.mode, "in_flight": in_flight, "waiting": len(run.waiting), "agents": agents,
                "attempts": run.attempts, "humans": run.humans, "connected": run.connected,
                "abandoned": run.abandoned,
                "abandon_rate": round(run.abandoned / run.humans, 4) if run.humans else 0.0})


class _NothingToShow(Exception):
    pass
