"""The reports' rollup (``attempt_days``, ``dialer.rollups``) on SQLite and PostgreSQL: kept by the use cases that
close attempts and change a closed attempt's disposition, it gives a long-range report the figures of the
attempts themselves (``kpis.report(rollup=False)``, GROUP BY over the range) for every dimension; migration
0018's backfill rebuilds the same rows from the attempts; a 30-day report reads it."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
import random
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

import callcenter.store
from callcenter.bootstrap import App
from callcenter.services import kpis
from callcenter.services.dialer.campaigns import create_campaign, record_disposition_in, start_campaign
from callcenter.services.dialer.hopper import claim_leads, claim_one, finish_attempt, start_attempt
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import transaction
from callcenter.store.models import Staff
from callcenter.store.models.dialer import Attempt, AttemptDay, Campaign, Lead

pytestmark = pytest.mark.db
UTC = timezone.utc
SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
FIRST, LAST = date(2026, 10, 27), date(2026, 11, 25)  # 30 local days


def _migration_backfill() -> Callable[..., None]:
    path = Path(callcenter.store.__file__).parent / "migrations" / "versions" / "0018_scale_rollups.py"
    spec = importlib.util.spec_from_file_location("m0018", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    backfill: Callable[..., None] = module.backfill
    return backfill


def _rollup_rows(core: App) -> set[tuple[object, ...]]:
    with transaction(core.sessions) as s:
        return {(r.day, r.campaign_id, r.agent_id, r.disposition, r.attempts, r.contacts, r.talk_s)
                for r in s.scalars(select(AttemptDay)) if r.attempts or r.contacts or r.talk_s}


def _history(core: App) -> dict[str, int]:
    """Attempts over 32 days around local midnights, closed by each path that closes one; returns counts."""
    rng = random.Random(17)
    campaigns = []
    for k in range(2):
        cid = create_campaign(core, name=f"滚动{k}", kind="cold_leads", script_id="cold_call", window_start=time(0),
                              window_end=time(23, 59), days="every", max_attempts=20)
        start_campaign(core, cid)
        campaigns.append(cid)
    n = 160
    for cid in campaigns:
        add_leads(core, cid, [LeadRow(i, f"+86139{cid:02d}{i:06d}") for i in range(n)])
    counts = {"finished": 0, "reclosed": 0, "redisposed": 0, "lost_by_claim": 0, "open": 0}
    with transaction(core.sessions) as s:
        staff = [Staff(username=f"roll{k}", display_name=f"坐席{k}", password_hash="-", role="agent") for k in range(3)]
        s.add_all(staff)
        s.flush()
        agents = [st.id for st in staff]
        leads = list(s.scalars(select(Lead).order_by(Lead.id)))
        for i, lead in enumerate(leads):
            campaign = s.get(Campaign, lead.campaign_id)
            assert campaign is not None
            day = datetime.combine(FIRST - timedelta(days=1) + timedelta(days=rng.randrange(32)), time(0), SH)
            at = (day + timedelta(minutes=rng.randrange(-60, 60))).astimezone(UTC)
            assert claim_one(s, lead.id, "d1", at) is not None
            attempt = start_attempt(s, lead, campaign, "d1", at, mode="progressive")
            agent = rng.choice(agents) if rng.random() < 0.6 else None
            if agent is not None:
                attempt.agent_id, attempt.connected_at = agent, at + timedelta(seconds=8)
                if rng.random() < 0.3:  # disposed while still talking
                    record_disposition_in(s, agent, attempt.id, "callback", at, then="wrap_up", tz=SH)
            if i % 23 == 0:
                counts["open"] += 1
                continue
            if i % 19 == 0:  # left open by a dead dialler: closed lost by the next claim of its lead
                lead.claimed_until = at + timedelta(seconds=1)
                s.flush()
                assert claim_one(s, lead.id, "d2", at + timedelta(minutes=5)) is not None
                counts["lost_by_claim"] += 1
                continue
            finish_attempt(s, attempt, "human" if agent else rng.choice(["no_answer", "busy", "machine"]),
                           at + timedelta(minutes=2), talk_s=rng.uniform(1, 300) if agent else None, tz=SH)
            counts["finished"] += 1
            if i % 13 == 0:  # closed again (a late end event): its share replaced, not added twice
                finish_attempt(s, attempt, "human" if agent else "failed", at + timedelta(minutes=3),
                               talk_s=rng.uniform(1, 300) if agent else None, tz=SH)
                counts["reclosed"] += 1
            if agent is not None:
                for disposition in rng.sample(["appointment_booked", "not_interested", "callback"], rng.randrange(3)):
                    record_disposition_in(s, agent, attempt.id, disposition, at + timedelta(minutes=4),
                                          then="wrap_up", tz=SH)
                    counts["redisposed"] += 1
    return counts


def test_long_reports_from_the_rollup_are_those_of_the_attempts(core: App) -> None:
    counts = _history(core)
    assert all(counts.values()), counts  # every path was taken
    for first, last in ((FIRST, LAST), (FIRST + timedelta(days=3), LAST - timedelta(days=2))):
        for by in kpis.REPORT_DIMENSIONS:
            with transaction(core.sessions) as s:
                fast = kpis.report(s, by, first, last, SH, rollup=True)
                slow = kpis.report(s, by, first, last, SH, rollup=False)
                assert kpis.report(s, by, first, last, SH) == fast  # 30 days: the rollup by default
            assert fast == slow, by
            assert sum(r["attempts"] for r in fast) > 150 and any(r["dispositions"] for r in fast)
    # the open attempts are not in the rollup (the report adds them from the open-attempts index)
    with transaction(core.sessions) as s:
        in_rollup = sum(r.attempts for r in s.scalars(select(AttemptDay)))
        closed = len(list(s.scalars(select(Attempt.id).where(Attempt.ended_at.is_not(None)))))
    assert in_rollup == closed


def test_the_migrations_backfill_rebuilds_the_same_rows(core: App) -> None:
    _history(core)
    kept = _rollup_rows(core)
    assert kept
    backfill = _migration_backfill()
    with transaction(core.sessions) as s:
        s.execute(delete(AttemptDay))
        backfill(s.connection(), SH)
    assert _rollup_rows(core) == kept


def test_the_claim_of_a_lead_closes_its_left_open_attempt_in_the_rollup(core: App) -> None:
    cid = create_campaign(core, name="丢失", kind="cold_leads", script_id="cold_call", window_start=time(0),
                          window_end=time(23, 59), days="every", max_attempts=9)
    start_campaign(core, cid)
    add_leads(core, cid, [LeadRow(0, "+8613900000077")])
    with transaction(core.sessions) as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        [lead] = claim_leads(s, campaign, "dead", 1, NOW - timedelta(hours=1), lambda d: True,
                             lease=timedelta(seconds=30))
        start_attempt(s, lead, campaign, "dead", NOW - timedelta(hours=1), mode="progressive")
    with transaction(core.sessions) as s:
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        assert len(claim_leads(s, campaign, "d2", 1, NOW, lambda d: True)) == 1
    with transaction(core.sessions) as s:
        [row] = s.scalars(select(AttemptDay).where(AttemptDay.campaign_id == cid))
        attempt = s.scalars(select(Attempt).where(Attempt.campaign_id == cid)).one()
    assert attempt.outcome == "lost" and (row.day, row.agent_id, row.disposition, row.attempts) == \
        ((NOW - timedelta(hours=1)).astimezone(SH).date(), 0, "", 1)


def test_an_attempt_across_midnight_re_disposed_counts_once_on_the_day_it_was_dialled(core: App) -> None:
    """Dialled at 23:58 local, ended at 00:04 the next day, closed again by a late end event and disposed three
    times: one attempt, one contact, its last talk time and its last disposition, on the day it was dialled, in
    the rollup as in the attempts; the next day has nothing of it."""
    cid = create_campaign(core, name="跨夜", kind="cold_leads", script_id="cold_call", window_start=time(0),
                          window_end=time(23, 59), days="every", max_attempts=9)
    start_campaign(core, cid)
    add_leads(core, cid, [LeadRow(0, "+8613900000088")])
    day = date(2026, 11, 20)
    dialled = datetime.combine(day, time(23, 58), SH).astimezone(UTC)
    with transaction(core.sessions) as s:
        agent = Staff(username="night", display_name="夜班", password_hash="-", role="agent")
        s.add(agent)
        s.flush()
        campaign = s.get(Campaign, cid)
        lead = s.scalars(select(Lead).where(Lead.campaign_id == cid)).one()
        assert campaign is not None and claim_one(s, lead.id, "d1", dialled) is not None
        attempt = start_attempt(s, lead, campaign, "d1", dialled, mode="progressive")
        attempt.agent_id, attempt.connected_at = agent.id, dialled + timedelta(seconds=9)
        finish_attempt(s, attempt, "human", dialled + timedelta(minutes=6), talk_s=301.7, tz=SH)
        finish_attempt(s, attempt, "human", dialled + timedelta(minutes=7), talk_s=333.2, tz=SH)  # late, again
        for disposition in ("callback", "appointment_booked", "not_interested"):
            record_disposition_in(s, agent.id, attempt.id, disposition, dialled + timedelta(minutes=8),
                                  then="wrap_up", tz=SH)
        agent_id = agent.id
    assert attempt.ended_at is not None and attempt.ended_at.astimezone(SH).date() == day + timedelta(days=1)
    rows = {r for r in _rollup_rows(core) if r[1] == cid}
    assert rows == {(day, cid, agent_id, "not_interested", 1, 1, 333)}
    for by in kpis.REPORT_DIMENSIONS:
        with transaction(core.sessions) as s:
            fast = kpis.report(s, by, day, day + timedelta(days=1), SH, rollup=True)
            assert fast == kpis.report(s, by, day, day + timedelta(days=1), SH, rollup=False), by
            [row] = [r for r in fast if r["attempts"]]
            assert (row["attempts"], row["contacts"], row["talk_s"], row["dispositions"]) == \
                (1, 1, 333, {"not_interested": 1}), by
            assert not any(r["attempts"] for r in kpis.report(s, by, day + timedelta(days=1),
                                                                day + timedelta(days=1), SH, rollup=True))
