"""The dialler engine on the simulated PBX at virtual time, with the real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer.engine import SAFE_HARBOUR_PROMPT, DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.parts.dialer import dialer_deps
from callcenter.services.dialer.campaigns import (
    add_dnc,
    agent_login,
    agent_ready,
    assign_campaign,
    book_callback,
    create_campaign,
    preview_choice,
    record_disposition,
    start_campaign,
)
from callcenter.store.db import transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession, AgentStateChange, Attempt, Callback, Lead
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock
from callcenter.ports.channel_variables import attempt_call_id
from tests.factories import make_staff

pytestmark = pytest.mark.db
BASE = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


class Rig:
    def __init__(self, core: App, outcomes: dict[str, str], mode: str = "progressive", agents: int = 1,
                 **campaign: object) -> None:
        self.core = core
        self.vclock = VirtualClock()
        core.clock = self.wall
        self.agents = [make_staff(core, f"agent{i}", "pw-agent-123456", "agent") for i in range(agents)]
        self.cid = create_campaign(core, name="测试", kind="cold_leads", script_id="cold_call", dial_mode=mode,
                                   window_start=time(0), window_end=time(23, 59, 59), days="every", **campaign)
        assign_campaign(core, self.cid, staff_ids=self.agents)
        add_leads(core, self.cid, [LeadRow(0, phone, f"客户{i}") for i, phone in enumerate(outcomes)])
        self.pbx = SimulatedPbx(CustomerModel(talk_mean_s=30.0, talk_sd_s=5.0), clock=self.vclock, outcomes=outcomes, seed=3)
        self.engine = DialerEngine(dialer_deps(core), self.pbx, dialer_id="test", clock=self.vclock, sync_s=1.0)
        self.originated: list[str] = []
        original = self.pbx.originate

        async def spy(call_id, number, caller_id, variables, timeout_s):  # type: ignore[no-untyped-def]
            self.originated.append(number)
            await original(call_id, number, caller_id, variables, timeout_s)

        self.pbx.originate = spy  # type: ignore[method-assign]

    def wall(self) -> datetime:
        return BASE + timedelta(seconds=self.vclock.time())

    async def start(self, ready: list[int] | None = None) -> None:
        start_campaign(self.core, self.cid)
        await self.pbx.start()
        for sid in self.agents if ready is None else ready:
            agent_login(self.core, sid, campaign_id=self.cid)
            agent_ready(self.core, sid)
            self.vclock.advance(1.0)  # distinct idle times: the first agent has been idle longest

    async def run(self, seconds: float) -> None:
        until = self.vclock.time() + seconds
        while self.vclock.time() < until:
            targets = [self.engine.next_deadline(), until]
            nxt = self.vclock.next_time()
            if nxt is not None:
                targets.append(nxt)
            self.vclock.run_until(max(min(targets), self.vclock.time()))
            for event in self.pbx.stream.pending():
                await self.engine.handle(event)
            await self.engine.tick()

    def attempts(self) -> list[Attempt]:
        with transaction(self.core.sessions) as s:
            return list(s.scalars(select(Attempt).order_by(Attempt.id)))

    def lead(self, phone: str) -> Lead:
        with transaction(self.core.sessions) as s:
            return s.scalars(select(Lead).where(Lead.phone == phone)).one()


async def test_answered_human_goes_to_longest_idle_agent_with_live_event(core: App) -> None:
    rig = Rig(core, {"+8613900000001": "human"}, agents=2)
    await rig.start()
    first, second = rig.agents
    async with core.bus.subscribe(f"agent:{first}", f"agent:{second}", "wallboard") as sub:
        await rig.run(20)  # answered after 12 s, talking for about 30 s
        events = []
        while not sub.queue.empty():
            events.append(sub.queue.get_nowait())
    [attempt] = rig.attempts()
    assert attempt.call_id == attempt_call_id(attempt.id)
    assert attempt.agent_id == first
    assert attempt.outcome is None and attempt.answered_at and attempt.connected_at and attempt.amd == "human"
    opened = [(t, e) for t, e in events if e.get("type") == "contact_opened"]
    assert [t for t, _ in opened] == [f"agent:{first}", "wallboard"]
    event = opened[0][1]
    assert {k: event[k] for k in ("staff_id", "attempt_id", "client_id", "campaign_id")} == {
        "staff_id": first, "attempt_id": attempt.id, "client_id": None, "campaign_id": rig.cid}
    with transaction(core.sessions) as s:  # opened by the engine with the connect, before the event
        contact = s.get(DeskContact, event["contact_id"])
        assert (contact.agent_id, contact.attempt_id, contact.lead_id, contact.attempt_no) == (
            first, attempt.id, attempt.lead_id, 1)
    assert any(t == "wallboard" and e["type"] == "dialer" and e["connected"] == 1 for t, e in events)
    await rig.run(300)  # the customer hangs up after the talk time
    [attempt] = rig.attempts()
    assert attempt.outcome == "human" and attempt.ended_at and attempt.talk_s and attempt.talk_s > 0
    assert rig.lead("+8613900000001").status == "done"
    record_disposition(core, first, attempt.id, "interested", notes="约了下周面谈", script_run={"answers": {"q1": "yes"}})
    with transaction(core.sessions) as s:
        changes = [(c.from_state, c.to_state) for c in s.scalars(
            select(AgentStateChange).where(AgentStateChange.staff_id == first).order_by(AgentStateChange.id))]
        assert s.get(Attempt, attempt.id).disposition == "interested"
    assert changes == [("logged_out", "paused"), ("paused", "ready"), ("ready", "reserved"), ("reserved", "talking"),
                       ("talking", "wrap_up"), ("wrap_up", "ready")]


async def test_no_agent_within_two_seconds_is_abandoned_with_safe_harbour(core: App) -> None:
    phones = {f"+86139000000{i:02d}": "human" for i in range(3)}
    rig = Rig(core, phones, mode="ratio", ratio=3.0, agents=1)
    played: list[str] = []
    original_play = rig.pbx.play

    async def spy_play(call_id: str, prompt: str) -> None:
        played.append(prompt)
        await original_play(call_id, prompt)

    rig.pbx.play = spy_play  # type: ignore[method-assign]
    await rig.start()
    await rig.run(40)
    attempts = rig.attempts()
    assert len(attempts) == 3
    abandoned = [a for a in attempts if a.abandoned]
    assert len(abandoned) == 2 and played == [SAFE_HARBOUR_PROMPT, SAFE_HARBOUR_PROMPT]
    for a in abandoned:
        assert a.outcome == "abandoned" and a.connected_at is None and a.agent_id is None
        assert a.ended_at is not None and a.answered_at is not None
        lead = rig.lead(a.phone)
        assert lead.status == "retry" and lead.next_attempt_at > rig.wall()
    assert rig.engine.campaigns[rig.cid].abandoned == 2


async def test_machine_busy_and_failed_are_recorded_and_retried(core: App) -> None:
    outcomes = {"+8613900000001": "machine", "+8613900000002": "busy", "+8613900000003": "failed",
                "+8613900000004": "no_answer"}
    rig = Rig(core, outcomes, agents=4, retry_delays={"busy": 10, "machine": 240})
    await rig.start()
    await rig.run(120)
    by_phone = {a.phone: a for a in rig.attempts()}
    assert by_phone["+8613900000001"].outcome == "machine" and by_phone["+8613900000001"].amd == "machine"
    assert by_phone["+8613900000002"].outcome == "busy" and by_phone["+8613900000002"].hangup_cause == 17
    assert by_phone["+8613900000003"].outcome == "failed"
    assert by_phone["+8613900000004"].outcome == "no_answer"
    assert all(a.ended_at is not None and a.agent_id is None for a in by_phone.values())
    busy = rig.lead("+8613900000002")
    assert busy.status == "retry" and busy.attempts == 1
    assert busy.next_attempt_at == by_phone["+8613900000002"].ended_at + timedelta(minutes=10)
    with transaction(core.sessions) as s:
        assert set(s.scalars(select(AgentSession.state))) == {"ready"}


async def test_dnc_number_is_never_dialled(core: App) -> None:
    rig = Rig(core, {"+8613900000001": "human", "+8613900000002": "human"}, agents=2)
    add_dnc(core, "139 0000 0002", reason="客户要求")
    await rig.start()
    await rig.run(30)
    assert rig.originated == ["+8613900000001"]
    assert rig.lead("+8613900000002").status == "dnc"


async def test_preview_agent_sees_the_lead_then_dials(core: App) -> None:
    rig = Rig(core, {"+8613900000001": "human", "+8613900000002": "busy"}, mode="preview", agents=1)
    await rig.start()
    [agent] = rig.agents
    async with core.bus.subscribe(f"agent:{agent}") as sub:
        await rig.run(5)
        previews = [e for _, e in [sub.queue.get_nowait() for _ in range(sub.queue.qsize())] if e["type"] == "preview"]
    assert rig.originated == []  # preview never dials by itself
    assert len(previews) == 1
    shown = previews[0]
    assert shown["campaign_id"] == rig.cid and shown["attempt_no"] == 1
    preview_choice(core, agent, "skip")
    await rig.run(5)
    with transaction(core.sessions) as s:
        skipped = s.get(Lead, shown["lead_id"])
        assert skipped.status == "new" and skipped.next_attempt_at is not None and skipped.attempts == 0
        session = s.scalars(select(AgentSession)).one()
        assert session.state == "reserved" and session.preview_lead_id not in (None, shown["lead_id"])
        second = session.preview_lead_id
    preview_choice(core, agent, "dial")
    await rig.run(60)
    attempts = rig.attempts()
    assert [a.lead_id for a in attempts] == [second]
    assert attempts[0].agent_id == agent and attempts[0].mode == "preview"


async def test_agent_only_callback_is_placed_to_its_owner(core: App) -> None:
    rig = Rig(core, {"+8613900000001": "human"}, agents=2)
    first, second = rig.agents
    with transaction(core.sessions) as s:
        lead = s.scalars(select(Lead)).one()
        lead.status = "done"  # reached before; the client asked to be called back
        lead_id = lead.id
        s.commit()
    cb = book_callback(core, lead_id=lead_id, due_at=BASE + timedelta(seconds=30), agent_only=True, owner_id=second,
                       note="收盘后回电")
    await rig.start()
    await rig.run(20)
    assert rig.attempts() == []  # not due yet
    await rig.run(60)
    [attempt] = rig.attempts()
    assert attempt.agent_id == second and attempt.mode == "callback" and attempt.callback_id == cb
    assert attempt.connected_at is not None
    await rig.run(300)
    with transaction(core.sessions) as s:
        assert s.get(Callback, cb).status == "done"


async def test_dialer_runner_in_real_time_until_stopped(core: App) -> None:
    """``dialer_runner`` (what ``callcenter run`` starts) on the loop clock: a call reaches the agent, then stop."""
    import asyncio

    from callcenter.parts.dialer import dialer_runner
    from callcenter.adapters.telephony.simulated import LoopClock

    fast = CustomerModel(human_answer_min_s=0.05, human_answer_max_s=0.1, talk_mean_s=0.3, talk_sd_s=0.05)
    pbx = SimulatedPbx(fast, clock=LoopClock(), outcomes={"+8613900000001": "human"}, seed=1)
    core.telephony = lambda: pbx
    agent = make_staff(core, "rt-agent", "pw-agent-123456", "agent")
    cid = create_campaign(core, name="实时", kind="cold_leads", script_id="cold_call", window_start=time(0),
                          window_end=time(23, 59, 59), days="every")
    assign_campaign(core, cid, staff_ids=[agent])
    add_leads(core, cid, [LeadRow(0, "+8613900000001")])
    start_campaign(core, cid)
    agent_login(core, agent, campaign_id=cid)
    agent_ready(core, agent)
    stop = asyncio.Event()
    async with core.bus.subscribe(f"agent:{agent}") as sub:
        runner = asyncio.create_task(dialer_runner(core, stop))
        async with asyncio.timeout(30):
            while True:
                _, event = await sub.__anext__()
                if event["type"] == "contact_opened":
                    break
        stop.set()
        await asyncio.wait_for(runner, 10)
    with transaction(core.sessions) as s:
        attempt = s.scalars(select(Attempt)).one()
        assert attempt.agent_id == agent and attempt.connected_at is not None
        assert s.scalars(select(AgentSession.dialer_id)).one() is None  # lease given back on stop


async def test_connected_call_opens_the_desk_contact_with_no_browser_subscribed(core: App) -> None:
    """Nobody listens on the agent's topic: the contact exists all the same, and the agent is talking."""
    rig = Rig(core, {"+8613900000001": "human"}, agents=1)
    await rig.start()
    [agent] = rig.agents
    assert core.bus.subscriber_count(f"agent:{agent}") == 0
    await rig.run(20)  # answered after 12 s, talking for about 30 s
    [attempt] = rig.attempts()
    assert attempt.connected_at is not None and attempt.outcome is None
    with transaction(core.sessions) as s:
        [contact] = s.scalars(select(DeskContact)).all()
        assert (contact.agent_id, contact.attempt_id, contact.campaign_id) == (agent, attempt.id, rig.cid)
        assert contact.direction == "outbound" and contact.ended_at is None
        session = s.scalars(select(AgentSession).where(AgentSession.staff_id == agent)).one()
        assert session.state == "talking" and session.attempt_id == attempt.id


def _seed_budget(core: App, cid: int, humans: int, abandoned: int) -> None:
    from callcenter.store.models.dialer import AbandonDay

    local_day = BASE.astimezone(core.settings.tz).date()
    with transaction(core.sessions) as s:
        s.add(AbandonDay(campaign_id=cid, day=local_day, humans=humans, abandoned=abandoned,
                         connected=humans - abandoned))


@pytest.mark.parametrize("abandoned, expected", [(0, 6), (5, 2)], ids=["under the cap", "at the cap"])
async def test_a_ratio_campaign_at_its_abandon_cap_dials_progressively_and_a_restart_remembers(
        core: App, abandoned: int, expected: int) -> None:
    """The day's abandons are in the database (every dialler's, and before this process started): 5 of 100
    live answers is over the 3 % cap, so a ratio-3 campaign with two idle agents places two calls, not six —
    and a restarted dialler (a new engine, a new process id) reads the same figures."""
    outcomes = {f"+86139000001{i:02d}": "no_answer" for i in range(20)}
    rig = Rig(core, outcomes, mode="ratio", agents=2, ratio=3.0)
    _seed_budget(core, rig.cid, 100, abandoned)
    await rig.start()
    await rig.run(3)  # nobody answers for 25 s: every call placed is still in flight
    assert len(rig.originated) == expected
    await rig.engine.shutdown()
    restarted = DialerEngine(dialer_deps(core), rig.pbx, dialer_id="test-restarted", clock=rig.vclock, sync_s=1.0)
    rig.engine = restarted
    await rig.run(30)  # the first calls end unanswered; the restarted dialler places the next ones
    placed_after = [a for a in rig.attempts() if a.dialer_id == "test-restarted"]
    assert placed_after, "the restarted dialler placed nothing"
    assert _most_at_once(placed_after) == expected  # the same pace after the restart: the budget is the database's


def _most_at_once(attempts: list[Attempt]) -> int:
    edges = sorted([(a.dialled_at, 1) for a in attempts] +
                   [(a.ended_at, -1) for a in attempts if a.ended_at is not None], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def test_the_records_of_a_burst_of_port_events_are_one_transaction_and_their_events_follow_the_commit(
        core: App) -> None:
    phones = [f"+861390000010{i}" for i in range(4)]
    rig = Rig(core, {p: "busy" for p in phones}, agents=4)
    await rig.start()
    while len(rig.originated) < 4 and rig.vclock.time() < 60:  # one call per agent, each busy after 3 s
        await rig.run(0.5)
    assert len(rig.originated) == 4
    rig.vclock.run_until(rig.vclock.time() + 10)  # every call fails while the engine is busy elsewhere
    burst = list(rig.pbx.stream.pending())
    assert sum(type(e).__name__ == "Failed" for e in burst) == 4
    bus = rig.engine.deps.bus
    emit = bus.emit
    seen: list[str | None] = []

    def spy(event):  # what the database says when the event goes out
        if type(event).__name__ == "AttemptEnded":
            seen.extend(a.outcome for a in rig.attempts() if a.id == event.attempt_id)
        emit(event)

    bus.emit = spy  # type: ignore[method-assign]
    try:
        before = rig.engine.stats["transactions"]
        await rig.engine.handle_burst(burst)
        assert rig.engine.stats["transactions"] - before == 1  # four attempts closed in one transaction
    finally:
        del bus.emit
    assert seen == ["busy"] * 4  # each event emitted after its attempt's end was committed
    assert [a.outcome for a in rig.attempts()] == ["busy"] * 4
