"""Dialler process leases (dialer.leases) on SQLite and PostgreSQL: a dead dialler's agents, attempts and
claimed leads are taken over once its lease has run out, never before; a live dialler's are untouched; a lead
is never in two open attempts; the take-over is idempotent; two live diallers never both take one over."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from callcenter.bootstrap import App
from callcenter.services.dialer.hopper import claim_leads, start_attempt
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.leases import TakeOver, heartbeat, retire, take_over_dead
from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, change_agent_state, create_campaign, start_campaign
from callcenter.store.db import dialect_name, run_in_transaction, transaction
from callcenter.store.models.dialer import AgentSession, Attempt, Campaign, DialerProcess, Lead
from tests.factories import make_staff

pytestmark = pytest.mark.db
UTC = timezone.utc
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # Wednesday 10:30 in Shanghai
LEASE = timedelta(seconds=30)


class World:
    """One campaign, three agents: two driven by dialler "dead", one by "live"; each dialler with calls."""

    def __init__(self, core: App) -> None:
        self.core = core
        self.cid = create_campaign(core, name="接管", kind="cold_leads", script_id="cold_call",
                                   window_start=time(9), window_end=time(20), days="every")
        start_campaign(core, self.cid)
        add_leads(core, self.cid, [LeadRow(0, f"+8613900000{i:03d}") for i in range(8)])
        self.staff = [make_staff(core, f"agent{i}", "pw-123456", "agent") for i in range(3)]
        assign_campaign(core, self.cid, staff_ids=self.staff)
        for sid in self.staff:
            agent_login(core, sid, campaign_id=self.cid)
            agent_ready(core, sid)
        run_in_transaction(core.sessions, self._set_up)

    def _set_up(self, s):  # type: ignore[no-untyped-def]
        heartbeat(s, "dead", NOW, LEASE)
        heartbeat(s, "live", NOW, LEASE)
        c = s.get(Campaign, self.cid)
        sessions = {row.staff_id: row for row in s.scalars(select(AgentSession))}
        for sid, owner in zip(self.staff, ("dead", "dead", "live")):
            sessions[sid].dialer_id, sessions[sid].lease_until = owner, NOW + timedelta(minutes=10)
        dead = claim_leads(s, c, "dead", 3, NOW, lambda d: True)
        live = claim_leads(s, c, "live", 2, NOW, lambda d: True)
        # dead: one call talking to agent 0, one ringing, one lead previewed by agent 1 (no attempt)
        talking = start_attempt(s, dead[0], c, "dead", NOW, mode="progressive", agent_id=self.staff[0])
        talking.connected_at = NOW
        change_agent_state(s, sessions[self.staff[0]], "reserve", NOW, attempt_id=talking.id)
        change_agent_state(s, sessions[self.staff[0]], "connect", NOW, attempt_id=talking.id)
        start_attempt(s, dead[1], c, "dead", NOW, mode="progressive")
        change_agent_state(s, sessions[self.staff[1]], "reserve", NOW)
        sessions[self.staff[1]].preview_lead_id = dead[2].id
        for lead in live:
            start_attempt(s, lead, c, "live", NOW, mode="progressive")
        self.dead_leads = [lead.id for lead in dead]
        self.live_leads = [lead.id for lead in live]

    def take_over(self, at: datetime, by: str = "live") -> TakeOver:
        def work(s):  # type: ignore[no-untyped-def]
            heartbeat(s, by, at, LEASE)
            return take_over_dead(s, by, at)

        return run_in_transaction(self.core.sessions, work)

    def snapshot(self) -> dict[str, object]:
        with transaction(self.core.sessions) as s:
            return {
                "sessions": sorted((r.staff_id, r.state, r.dialer_id, r.preview_lead_id is not None)
                                   for r in s.scalars(select(AgentSession))),
                "attempts": sorted((a.lead_id, a.dialer_id, a.outcome, a.ended_at is not None)
                                   for a in s.scalars(select(Attempt))),
                "leads": sorted((lead.id, lead.status, lead.claimed_by, lead.attempts)
                                for lead in s.scalars(select(Lead))),
                "processes": sorted(s.scalars(select(DialerProcess.dialer_id))),
            }


def open_attempts_per_lead(core: App) -> Counter[int]:
    with transaction(core.sessions) as s:
        return Counter(s.scalars(select(Attempt.lead_id).where(Attempt.ended_at.is_(None))))


def test_dead_dialler_is_taken_over_after_its_lease_and_not_before(core: App) -> None:
    w = World(core)
    before = w.snapshot()
    assert not w.take_over(NOW + timedelta(seconds=29))  # "dead" is still within its lease
    assert w.snapshot() == {**before, "processes": ["dead", "live"]}
    done = w.take_over(NOW + timedelta(seconds=31))
    assert done.dialers == ("dead",)
    assert len(done.agent_sessions) == 2 and len(done.attempts) == 2
    assert sorted(done.leads) == sorted(w.dead_leads)
    after = w.snapshot()
    a0, a1, a2 = w.staff
    assert after["sessions"] == sorted([
        (a0, "wrap_up", None, False),  # was talking: its call may still be up, the agent writes it up
        (a1, "ready", None, False),  # was reserved for a preview: back to ready, preview dropped
        (a2, "ready", "live", False),  # the live dialler's: untouched
    ])
    attempts = after["attempts"]
    # the call that reached agent 0 talked to a person: human (never re-dialled as lost); the ringing one is lost
    assert sorted(o for _, d, o, _ in attempts if d == "dead") == ["human", "lost"]  # type: ignore[misc]
    assert [(o, ended) for _, d, o, ended in attempts if d == "live"] == [(None, False)] * 2  # type: ignore[misc]
    leads = {lid: (status, by, n) for lid, status, by, n in after["leads"]}  # type: ignore[misc]
    for lid in w.dead_leads:
        assert leads[lid][1] is None  # released
    assert [leads[lid][2] for lid in w.dead_leads] == [1, 0, 0]  # lost used up no attempt; human did
    assert [leads[lid][0] for lid in w.dead_leads][1:] == ["retry", "new"]
    assert leads[w.dead_leads[0]][0] != "retry"
    for lid in w.live_leads:
        assert leads[lid] == ("in_progress", "live", 0)
    assert after["processes"] == ["live"]
    # idempotent: nothing left to take over, nothing changes
    again = w.take_over(NOW + timedelta(seconds=40))
    assert again == TakeOver() and not again
    assert w.snapshot() == after


def test_released_leads_are_dialled_again_but_never_twice_at_once(core: App) -> None:
    w = World(core)
    w.take_over(NOW + timedelta(seconds=31))
    assert max(open_attempts_per_lead(core).values()) == 1
    later = NOW + timedelta(minutes=6)  # after the "lost" retry delay (5 minutes)

    def redial(s):  # type: ignore[no-untyped-def]
        c = s.get(Campaign, w.cid)
        leads = claim_leads(s, c, "live", 20, later, lambda d: True)
        for lead in leads:
            start_attempt(s, lead, c, "live", later, mode="progressive")
        return [lead.id for lead in leads]

    redialled = run_in_transaction(core.sessions, redial)
    assert set(w.dead_leads[1:]) <= set(redialled)  # the dead dialler's lost leads come back
    assert w.dead_leads[0] not in redialled  # the one that talked to an agent does not
    assert not set(w.live_leads) & set(redialled)  # the live one's are still in flight
    counts = open_attempts_per_lead(core)
    assert max(counts.values()) == 1 and set(w.live_leads) <= set(counts)


def test_a_stalled_dialler_finds_it_was_taken_over_and_cannot_take_itself_over(core: App) -> None:
    w = World(core)
    at = NOW + timedelta(seconds=31)

    def stalled_wakes_up_first(s):  # type: ignore[no-untyped-def]
        heartbeat(s, "live", at, LEASE)  # the live one is renewed...
        return take_over_dead(s, "dead", at)  # ...and its own expired row is not "dead" to a dialler

    assert not run_in_transaction(core.sessions, stalled_wakes_up_first)
    w.take_over(at + timedelta(seconds=1))
    with transaction(core.sessions) as s:
        assert heartbeat(s, "dead", at + timedelta(seconds=2)) is False  # its row was gone: it was taken over
        assert heartbeat(s, "dead", at + timedelta(seconds=3)) is True


def test_lead_held_by_another_dialler_is_not_released_by_the_take_over(core: App) -> None:
    w = World(core)
    ringing = w.dead_leads[1]
    with transaction(core.sessions) as s:  # "live" holds the lead now (say, the dead one's claim ran out)
        s.execute(update(Lead).where(Lead.id == ringing).values(claimed_by="live"))
    w.take_over(NOW + timedelta(seconds=31))
    with transaction(core.sessions) as s:
        lead = s.get(Lead, ringing)
        assert (lead.status, lead.claimed_by) == ("in_progress", "live")
        assert s.scalars(select(Attempt.outcome).where(Attempt.lead_id == ringing)).all() == ["lost"]


def test_a_call_still_up_on_the_pbx_is_adopted_not_closed_and_its_agent_stays_talking(core: App) -> None:
    """Real-Asterisk finding 12: the taker saw the dead dialler's talking call still up (CoreShowChannels)."""
    w = World(core)
    with transaction(core.sessions) as s:
        talking = s.scalars(select(Attempt).where(Attempt.lead_id == w.dead_leads[0])).one()
        call_id = talking.call_id
    assert call_id is not None

    def work(s):  # type: ignore[no-untyped-def]
        heartbeat(s, "live", NOW + timedelta(seconds=31), LEASE)
        return take_over_dead(s, "live", NOW + timedelta(seconds=31), alive={call_id})

    done = run_in_transaction(core.sessions, work)
    assert done.adopted == (talking.id,) and len(done.attempts) == 1
    with transaction(core.sessions) as s:
        attempt = s.get(Attempt, talking.id)
        assert attempt.ended_at is None and attempt.dialer_id == "live"
        lead = s.get(Lead, w.dead_leads[0])
        assert (lead.status, lead.claimed_by) == ("in_progress", "live")
        session = s.scalars(select(AgentSession).where(AgentSession.staff_id == w.staff[0])).one()
        assert session.state == "talking" and session.dialer_id is None  # the live dialler leases it at its sync


def test_a_call_that_reached_an_agent_and_ended_meanwhile_is_human_with_its_talk_time(core: App) -> None:
    w = World(core)
    with transaction(core.sessions) as s:
        call_id = s.scalars(select(Attempt.call_id).where(Attempt.lead_id == w.dead_leads[0])).one()

    def work(s):  # type: ignore[no-untyped-def]
        heartbeat(s, "live", NOW + timedelta(seconds=31), LEASE)
        return take_over_dead(s, "live", NOW + timedelta(seconds=31), ended={call_id: NOW + timedelta(seconds=12)})

    run_in_transaction(core.sessions, work)
    with transaction(core.sessions) as s:
        attempt = s.scalars(select(Attempt).where(Attempt.call_id == call_id)).one()
        assert attempt.outcome == "human" and attempt.talk_s == pytest.approx(12.0)


def test_retire_hands_back_its_own_work_and_leaves_the_others(core: App) -> None:
    w = World(core)
    done = run_in_transaction(core.sessions, lambda s: retire(s, "live", NOW + timedelta(seconds=5)))
    assert done.dialers == ("live",) and len(done.attempts) == 2 and sorted(done.leads) == sorted(w.live_leads)
    snap = w.snapshot()
    assert snap["processes"] == ["dead"]
    assert [d for _, _, d, _ in snap["sessions"]].count("dead") == 2  # type: ignore[misc]
    assert [d for _, _, d, _ in snap["sessions"]].count("live") == 0  # type: ignore[misc]
    assert run_in_transaction(core.sessions, lambda s: retire(s, "live", NOW + timedelta(seconds=6))).attempts == ()


def test_bad_input_is_refused_clearly(core: App) -> None:
    with transaction(core.sessions) as s:
        with pytest.raises(ValueError, match="dialer_id"):
            heartbeat(s, "", NOW)
        with pytest.raises(ValueError, match="aware"):
            take_over_dead(s, "d1", NOW.replace(tzinfo=None))
        with pytest.raises(ValueError, match="lease"):
            heartbeat(s, "d1", NOW, timedelta(0))


def test_two_live_diallers_never_both_take_over_one(core: App) -> None:
    if dialect_name(core.sessions) != "postgresql":
        pytest.skip("SQLite has one writer at a time (BEGIN IMMEDIATE): the second waits, then finds nothing")
    w = World(core)
    at = NOW + timedelta(seconds=31)
    with transaction(core.sessions) as first:
        heartbeat(first, "live", at, LEASE)
        taken = take_over_dead(first, "live", at)
        with transaction(core.sessions) as second:  # a third dialler, while the first has not committed
            heartbeat(second, "other", at, LEASE)
            assert take_over_dead(second, "other", at) == TakeOver()  # the row is locked: skipped
    assert taken.dialers == ("dead",)
    with transaction(core.sessions) as s:
        outcomes = s.scalars(select(Attempt.outcome).where(Attempt.ended_at.is_not(None))).all()
        assert sorted(outcomes) == ["human", "lost"]  # once each: the call that reached an agent is human
