"""The world of the live dialler-outcomes test over SIP (tests/live/test_live_sip.py) and of its replay
(tests/adapters/test_live_captures.py): one running campaign with answering-machine detection on (``amd_policy``
``human``), four leads whose last digit picks what the sipp customer of tests/live/sipp/outcomes.xml does, and one
ready agent whose phone is a simulated party (the test is about the customers). Built the same way on a fresh
database, so the ids the recording holds (the attempts' call ids, the agent's room) are the ids of the replay."""

from __future__ import annotations

from datetime import time as dtime

from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, create_campaign, start_campaign
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import transaction
from callcenter.store.models.dialer import Attempt
from callcenter.adapters.telephony.ami import AmiOptions
from tests.factories import make_staff

# the lead's number -> the attempt's outcome (and, for the failures, the reason the port gave: hangup_text)
EXPECTED = {
    "+8613900000002": ("busy", "busy"),  # 486 Busy Here
    "+8613900000003": ("no_answer", "no_answer"),  # 180 Ringing until the originate timeout
    "+8613900000004": ("failed", "congestion"),  # 503 Service Unavailable
    "+8613900000008": ("machine", ""),  # a long recorded greeting: AMD() says MACHINE, the engine hangs up
}
OPTIONS = AmiOptions(dial_template="PJSIP/{digits}@sim-sip-customer", heartbeat_s=0, backoff_initial_s=0.5,
                     agent_ring_timeout_s=3)
ORIGINATE_TIMEOUT_S = 6.0  # how long the no-answer customer rings before Asterisk CANCELs


def build_outcomes_world(core: App) -> int:
    """The campaign, its leads and one ready agent at ``Local/<staff id>@sim-agent-phones``; returns the staff id."""
    cid = create_campaign(core, name="SIP 外呼", kind="cold_leads", script_id="cold_call", window_start=dtime(0),
                          window_end=dtime(23, 59, 59), days="every", amd_policy="human", dial_mode="progressive")
    staff = make_staff(core, "sip1", "pw-agent-123456", "agent")
    assign_campaign(core, cid, staff_ids=[staff])
    add_leads(core, cid, [LeadRow(0, number, "客户") for number in EXPECTED])
    start_campaign(core, cid)
    agent_login(core, staff, campaign_id=cid, phone=f"Local/{staff}@sim-agent-phones")
    agent_ready(core, staff)
    return staff


def outcomes(core: App) -> dict[str, tuple[str | None, str]]:
    """Each ended attempt's number -> (outcome, hangup_text); an attempt still up is left out."""
    with transaction(core.sessions) as s:
        rows = s.scalars(select(Attempt).where(Attempt.ended_at.is_not(None)).order_by(Attempt.id)).all()
        return {a.phone: (a.outcome, a.hangup_text) for a in rows}


def check_outcomes(core: App) -> None:
    """What the engine recorded is what the SIP customers did."""
    seen = outcomes(core)
    assert {n: o for n, (o, _) in seen.items()} == {n: o for n, (o, _) in EXPECTED.items()}, seen
    for number, (outcome, text) in EXPECTED.items():
        if outcome != "machine":
            assert seen[number][1] == text, seen
    amd, cause = machine_amd(core)
    assert amd == "machine" and cause, (amd, cause)


def machine_amd(core: App) -> tuple[str | None, str]:
    with transaction(core.sessions) as s:
        a = s.scalars(select(Attempt).where(Attempt.phone.like("%8"))).one()
        return a.amd, a.amd_cause
