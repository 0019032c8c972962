"""A whole simulated campaign end to end at accelerated time: real engine, real database, simulated PBX."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.demo.campaign_simulation import SimReport, run_simulated_campaign
from callcenter.store.db import transaction
from callcenter.store.models.dialer import AgentStateChange, Attempt, Lead
from callcenter.ports.channel_variables import attempt_call_id

pytestmark = pytest.mark.db


def check_records(core: App, report: SimReport, leads: int) -> None:
    assert sum(report.lead_status.values()) == leads
    assert set(report.lead_status) <= {"done", "exhausted", "dnc", "retry"}  # final or waiting for a retry
    assert report.max_concurrent_per_lead == 1
    assert report.humans > 0 and report.abandon_rate <= 0.03
    with transaction(core.sessions) as s:
        attempts = list(s.scalars(select(Attempt).where(Attempt.campaign_id == report.campaign_id)
                                  .order_by(Attempt.lead_id, Attempt.dialled_at, Attempt.id)))
        assert len(attempts) == report.attempts
        per_lead: dict[int, list[Attempt]] = defaultdict(list)
        for a in attempts:
            per_lead[a.lead_id].append(a)
            assert a.call_id == attempt_call_id(a.id)
            assert a.ended_at is not None and a.ended_at >= a.dialled_at
            assert a.outcome in ("human", "machine", "busy", "no_answer", "failed", "abandoned")
            assert a.abandoned == (a.outcome == "abandoned")
            if a.outcome in ("human", "machine", "abandoned"):
                assert a.answered_at is not None and a.amd is not None
            if a.connected_at is not None:
                assert a.outcome == "human" and a.agent_id is not None and a.talk_s is not None
                assert a.disposition == "completed"
            if a.outcome == "abandoned":
                assert a.connected_at is None and a.agent_id is None
        for lead_attempts in per_lead.values():  # never two attempts of one lead at once
            for earlier, later in zip(lead_attempts, lead_attempts[1:]):
                assert earlier.ended_at <= later.dialled_at
            assert [a.attempt_no for a in lead_attempts] == list(range(1, len(lead_attempts) + 1))
        leads_rows = {lead.id: lead for lead in s.scalars(select(Lead).where(Lead.campaign_id == report.campaign_id))}
        for lead_id, lead in leads_rows.items():
            assert lead.attempts == len(per_lead.get(lead_id, []))
            assert lead.claimed_by is None
            if lead.status == "done":
                assert any(a.connected_at is not None for a in per_lead[lead_id])
        connected = sum(1 for a in attempts if a.connected_at is not None)
        assert connected == report.connected
        changes = list(s.scalars(select(AgentStateChange).order_by(AgentStateChange.id)))
        last: dict[int, str] = {}
        for c in changes:  # every agent state change recorded, as one unbroken chain per session
            assert last.get(c.session_id, "logged_out") == c.from_state
            last[c.session_id] = c.to_state
        talking = sum(1 for c in changes if c.to_state == "talking")
        assert talking == connected


def test_small_simulated_campaign(core: App) -> None:
    report = asyncio.run(run_simulated_campaign(core, agents=5, leads=150, seed=2))
    check_records(core, report, 150)
    assert set(report.lead_status) <= {"done", "exhausted"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_whole_campaign_10_agents_2000_leads(core: App) -> None:
    report = asyncio.run(run_simulated_campaign(core, agents=10, leads=2000, seed=7, until="first_pass"))
    print(report.as_dict())
    check_records(core, report, 2000)
    assert report.lead_status.get("new", 0) == 0
