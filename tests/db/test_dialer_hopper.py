"""The hopper on SQLite and PostgreSQL: priority order, in-flight, DNC, attempts, windows, expired claims,
a property over random lead data and clocks, and two dialler processes sharing one campaign."""

from __future__ import annotations

import os
import subprocess
import sys
import time as time_mod
from collections import Counter
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from callcenter.bootstrap import App
from callcenter.services.dialer.hopper import claim_leads, finish_attempt, start_attempt
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.campaigns import add_dnc, create_campaign, start_campaign
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.dialer import Attempt, Campaign, DncEntry, Lead

pytestmark = pytest.mark.db
UTC = timezone.utc
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # Wednesday 10:30 in Shanghai


def campaign(core: App, **kw) -> int:
    kw.setdefault("window_start", time(9))
    kw.setdefault("window_end", time(20))
    cid = create_campaign(core, name="测试活动", kind="cold_leads", script_id="cold_call", **kw)
    start_campaign(core, cid)
    return cid


def claim(core: App, cid: int, n: int, now: datetime = NOW, dialer: str = "d1") -> list[Lead]:
    def work(s):  # type: ignore[no-untyped-def]
        c = s.get(Campaign, cid)
        leads = claim_leads(s, c, dialer, n, now, core.calendar.is_trading_day)
        for lead in leads:
            start_attempt(s, lead, c, dialer, now, mode="progressive")
        return leads

    return run_in_transaction(core.sessions, work)


def test_claims_in_priority_order_and_never_twice(core: App) -> None:
    cid = campaign(core)
    add_leads(core, cid, [LeadRow(0, f"+8613900000{i:03d}", f"L{i}", priority=i % 4) for i in range(20)])
    first = claim(core, cid, 5)
    assert [lead.priority for lead in first] == [3, 3, 3, 3, 3]
    second = claim(core, cid, 100)
    assert len(second) == 15
    assert not {lead.id for lead in first} & {lead.id for lead in second}
    assert [lead.priority for lead in second] == sorted((lead.priority for lead in second), reverse=True)
    assert claim(core, cid, 5) == []  # all in flight


def test_dnc_attempts_and_retry_delay(core: App) -> None:
    cid = campaign(core, max_attempts=2, retry_delays={"busy": 10})
    other = campaign(core)
    add_leads(core, cid, [LeadRow(0, f"+8613900000{i:03d}") for i in range(4)])
    add_dnc(core, "13900000000")  # global
    add_dnc(core, "+8613900000001", campaign_id=cid)
    add_dnc(core, "+8613900000002", campaign_id=other)  # another campaign's list: no effect here
    leads = claim(core, cid, 10)
    assert sorted(lead.phone for lead in leads) == ["+8613900000002", "+8613900000003"]
    with transaction(core.sessions) as s:
        assert s.scalars(select(Lead.status).where(Lead.phone == "+8613900000000")).one() == "dnc"

    def end_busy(s):  # type: ignore[no-untyped-def]
        for a in s.scalars(select(Attempt).where(Attempt.campaign_id == cid, Attempt.ended_at.is_(None))):
            finish_attempt(s, a, "busy", NOW, cause=17)

    run_in_transaction(core.sessions, end_busy)
    assert claim(core, cid, 10, NOW + timedelta(minutes=9)) == []
    again = claim(core, cid, 10, NOW + timedelta(minutes=10))
    assert len(again) == 2
    run_in_transaction(core.sessions, end_busy)
    with transaction(core.sessions) as s:
        statuses = Counter(s.scalars(select(Lead.status).where(Lead.campaign_id == cid)))
    assert statuses == {"dnc": 2, "exhausted": 2}
    assert claim(core, cid, 10, NOW + timedelta(days=1)) == []


def test_outside_window_pushed_to_next_opening(core: App) -> None:
    cid = campaign(core, days="working")
    add_leads(core, cid, [LeadRow(0, "+8613900000001", timezone="Asia/Shanghai"),
                          LeadRow(0, "+8613900000002", timezone="America/New_York")])  # 21:30 there
    leads = claim(core, cid, 10)
    assert [lead.phone for lead in leads] == ["+8613900000001"]
    with transaction(core.sessions) as s:
        ny = s.scalars(select(Lead).where(Lead.phone == "+8613900000002")).one()
        assert ny.status == "new"
        assert ny.next_attempt_at == datetime(2026, 11, 25, 9, 0, tzinfo=ZoneInfo("America/New_York"))


def test_expired_claim_comes_back_and_lost_attempt_is_closed(core: App) -> None:
    cid = campaign(core)
    add_leads(core, cid, [LeadRow(0, "+8613900000001")])
    assert len(claim(core, cid, 1, dialer="crashed")) == 1
    assert claim(core, cid, 1, NOW + timedelta(minutes=5)) == []  # claim still valid
    later = claim(core, cid, 1, NOW + timedelta(minutes=11), dialer="d2")
    assert len(later) == 1 and later[0].claimed_by == "d2"
    with transaction(core.sessions) as s:
        attempts = s.scalars(select(Attempt).order_by(Attempt.id)).all()
        assert [a.outcome for a in attempts] == ["lost", None]
        assert [a.attempt_no for a in attempts] == [1, 1]  # a lost call does not use up an attempt


ZONES = ["Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Sydney"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_hopper_never_returns_dnc_or_out_of_window(core: App, data: st.DataObject) -> None:
    """Whatever the leads (zones, statuses, attempts, due times) and the clock, a claimed lead is dialable."""
    now = data.draw(st.datetimes(datetime(2026, 1, 1), datetime(2027, 6, 30), timezones=st.just(UTC)))
    start_h = data.draw(st.integers(0, 20))
    end_h = data.draw(st.integers(start_h + 1, 23))
    days = data.draw(st.sampled_from(["trading", "working", "every"]))
    n = data.draw(st.integers(1, 15))
    phones = [f"+86139000{i:05d}" for i in range(n)]
    dnc = data.draw(st.lists(st.tuples(st.sampled_from(phones), st.booleans()), max_size=5))
    cid = campaign(core, window_start=time(start_h), window_end=time(end_h), days=days, max_attempts=3)

    def setup(s):  # type: ignore[no-untyped-def]
        for i, phone in enumerate(phones):
            s.add(Lead(campaign_id=cid, phone=phone, name="", timezone=data.draw(st.sampled_from(ZONES)),
                       priority=data.draw(st.integers(0, 3)),
                       status=data.draw(st.sampled_from(["new", "retry", "in_progress", "done", "dnc"])),
                       attempts=data.draw(st.integers(0, 4)),
                       next_attempt_at=data.draw(st.none() | st.just(now + timedelta(minutes=data.draw(st.integers(-600, 600))))),
                       claimed_until=now + timedelta(minutes=data.draw(st.integers(-30, 30))),
                       extra={}, created_at=now, updated_at=now))
        for phone, is_global in dnc:
            s.add(DncEntry(phone=phone, campaign_id=None if is_global else cid, reason="", at=now))

    run_in_transaction(core.sessions, setup)
    with transaction(core.sessions) as s:
        before = {lead.id: (lead.status, lead.claimed_until) for lead in s.scalars(select(Lead).where(Lead.campaign_id == cid))}
    try:
        claimed = claim(core, cid, 20, now)
        dnc_phones = {p for p, _ in dnc}
        for lead in claimed:
            local = now.astimezone(ZoneInfo(lead.timezone))
            assert time(start_h) <= local.time().replace(tzinfo=None) < time(end_h)
            if days != "every":
                assert local.weekday() < 5
            if days == "trading":
                assert core.calendar.is_trading_day(local.date())
            assert lead.phone not in dnc_phones
            status, claimed_until = before[lead.id]
            assert status in ("new", "retry") or (status == "in_progress" and claimed_until <= now)
            assert lead.attempts < 3
    finally:
        def clean(s):  # type: ignore[no-untyped-def]
            s.execute(delete(Attempt).where(Attempt.campaign_id == cid))
            s.execute(delete(DncEntry))
            s.execute(delete(Lead).where(Lead.campaign_id == cid))
            s.execute(delete(Campaign).where(Campaign.id == cid))

        run_in_transaction(core.sessions, clean)


def test_two_dialler_processes_never_claim_a_lead_twice(core: App, db_url: str, tmp_path: Path) -> None:
    pg = db_url.startswith("postgresql")
    leads = 2000 if pg else 400
    cid = campaign(core)
    add_leads(core, cid, [LeadRow(0, f"+86139{i:08d}", priority=i % 5) for i in range(leads)])
    start_file = tmp_path / "go"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.db.dialer_worker", db_url, str(cid), f"proc{i}",
                               NOW.isoformat(), str(start_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=root, env=env) for i in range(2)]
    ready = [Path(f"{start_file}.proc{i}.ready") for i in range(2)]
    deadline = time_mod.monotonic() + 120
    while not all(r.exists() for r in ready) and time_mod.monotonic() < deadline:
        time_mod.sleep(0.01)  # waiting for both children to be ready (a start line, not a timing assertion)
    start_file.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    claimed = [[int(line) for line in out.split()] for out, _ in outs]
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == leads  # each lead exactly once
    if pg:  # SQLite serialises writers and one process may take everything before the other gets the lock
        assert all(claimed), "both processes claimed some leads"
    with transaction(core.sessions) as s:
        per_lead = s.execute(select(Attempt.lead_id, func.count()).group_by(Attempt.lead_id)
                             .having(func.count() > 1)).all()
        assert per_lead == []
        owners = dict(s.execute(select(Lead.claimed_by, func.count()).group_by(Lead.claimed_by)).all())
        assert owners == {f"proc{i}": len(ids) for i, ids in enumerate(claimed) if ids}
