"""The hot queries use their indexes (EXPLAIN, not timings), on SQLite and PostgreSQL: the hopper's lead claim
(in index order, no sort: LIMIT stops the scan after the batch), the open-calls counts of the wall board and the
metrics, and the ledger's book lookup.

Each query is run as the engine runs it (same statement, same driver parameters); a cursor hook EXPLAINs it
first. PostgreSQL plans on a few thousand analysed rows with ``enable_seqscan`` off, so an empty table's seq scan
does not hide a missing index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.orm import Session

from callcenter.bootstrap import App
from callcenter.services.dialer.hopper import claim_leads
from callcenter.services.dialer.campaigns import create_campaign, start_campaign
from callcenter.services import kpis
from callcenter.services.metrics import in_flight_query
from callcenter.store import ledger
from callcenter.store.db import dialect_name
from callcenter.store.models import LedgerAccount
from callcenter.store.models.dialer import Attempt, Campaign, Lead

pytestmark = pytest.mark.db
UTC = timezone.utc
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # Wednesday 10:30 in Shanghai
ROWS = 3000


@contextmanager
def explained(s: Session, table: str) -> Iterator[list[str]]:
    """Collect the plan lines of every statement run in ``s`` that reads ``table`` (``FROM table``)."""
    conn = s.connection()
    plans: list[str] = []
    sqlite = dialect_name(s) == "sqlite"

    def hook(_conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if f"FROM {table}" not in statement or not statement.lstrip().upper().startswith("SELECT"):
            return
        cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
        rows = cursor.fetchall()
        plans.append("\n".join(str(r[-1] if sqlite else r[0]) for r in rows))

    if not sqlite:
        s.execute(text("SET LOCAL enable_seqscan = off"))
    event.listen(conn, "before_cursor_execute", hook)
    try:
        yield plans
    finally:
        event.remove(conn, "before_cursor_execute", hook)


def fill(core: App) -> int:
    """A campaign with ROWS leads (most done, some dialable), ROWS attempts (a few open) and books of ROWS
    owners; ANALYZE on PostgreSQL."""
    cid = create_campaign(core, name="计划", kind="cold_leads", script_id="cold_call", window_start=time(0),
                          window_end=time(23, 59), days="every")
    start_campaign(core, cid)
    with core.sessions() as s, s.begin():
        s.execute(insert(Lead), [
            {"campaign_id": cid, "phone": f"+86139{i:08d}", "name": "", "timezone": "Asia/Shanghai",
             "priority": i % 3, "status": "new" if i % 10 == 0 else "done", "attempts": 0 if i % 10 == 0 else 1,
             "extra": {}, "created_at": NOW, "updated_at": NOW} for i in range(ROWS)])
        first = s.execute(text("SELECT min(id) FROM leads")).scalar_one()
        s.execute(insert(Attempt), [
            {"lead_id": first + i, "campaign_id": cid, "attempt_no": 1, "phone": f"+86139{i:08d}",
             "dialled_at": NOW - timedelta(minutes=i), "ended_at": None if i % 500 == 0 else NOW,
             "dialer_id": "", "server": "", "mode": "progressive", "hangup_text": "", "amd_cause": "",
             "abandoned": False, "notes": ""} for i in range(ROWS)])
        s.execute(insert(LedgerAccount), [
            {"kind": kind, "owner_id": 100_000 + i, "balance_fen": 0} for i in range(ROWS) for kind in ("fund", "bank")])
    with core.sessions() as s:
        if dialect_name(s) == "postgresql":
            s.execute(text("ANALYZE"))
            s.commit()
    return cid


def in_plan(s: Session, table: str, run: Callable[[], object]) -> list[str]:
    with explained(s, table) as plans:
        run()
    assert plans, f"no statement read {table}"
    return plans


def no_full_scan(plan: str, table: str) -> None:
    assert f"SCAN {table}\n" not in plan + "\n" and "Seq Scan" not in plan, plan


def test_the_lead_claim_walks_the_dialable_index_in_order(core: App) -> None:
    cid = fill(core)
    with core.sessions() as s, s.begin():
        campaign = s.get(Campaign, cid)
        assert campaign is not None
        plans = in_plan(s, "leads", lambda: claim_leads(s, campaign, "d1", 20, NOW, lambda d: True))
        claimed = s.query(Lead).filter(Lead.claimed_by == "d1").count()
    assert claimed == 20
    fresh, expired = plans[0], plans[1]  # the fresh leads, then the expired claims
    assert "ix_leads_dialable" in fresh, fresh
    assert "TEMP B-TREE" not in fresh and "Sort" not in fresh, fresh  # in index order: LIMIT ends the scan
    assert "ix_leads_in_flight" in expired, expired
    for plan in plans:
        no_full_scan(plan, "leads")


def test_the_open_calls_counts_use_the_open_attempts_index(core: App) -> None:
    fill(core)
    with core.sessions() as s, s.begin():
        today = datetime(2026, 11, 24, 16, tzinfo=UTC)
        plans = in_plan(s, "attempts", lambda: s.execute(kpis.open_calls_query(today)).scalar_one())
        plans += in_plan(s, "attempts", lambda: s.execute(in_flight_query()).all())
        board = kpis.wallboard(s, NOW, core.settings.tz)
    for plan in plans:
        assert "ix_attempts_open" in plan, plan
        no_full_scan(plan, "attempts")
    # the open ones (one in 500) dialled since 12 h before local midnight (22.5 h ago), none answered
    assert board["ringing"] == len([i for i in range(0, ROWS, 500) if i <= 22.5 * 60]) == 3


def test_the_wallboard_reads_no_table_in_full(core: App) -> None:
    fill(core)
    with core.sessions() as s, s.begin():
        plans = []
        for table in ("attempts", "agent_sessions", "ivr_sessions", "abandon_days"):
            plans += [(table, p) for p in in_plan(s, table, lambda: kpis.wallboard(s, NOW, core.settings.tz))]
    for table, plan in plans:
        no_full_scan(plan, table)


def test_the_book_lookup_is_one_index_search_per_book(core: App) -> None:
    fill(core)
    wanted = {("fund", 100_007), ("bank", 100_007), ("fund", 100_999)}
    with core.sessions() as s, s.begin():
        plans = in_plan(s, "ledger_accounts", lambda: s.execute(ledger.books_query(wanted)).all())
        found = {(k, o) for _, k, o in s.execute(ledger.books_query(wanted))}
    assert found == wanted
    (plan,) = plans
    if "MULTI-INDEX OR" in plan:  # SQLite: the unique constraint's own index, searched once per book
        assert plan.count("USING COVERING INDEX sqlite_autoindex_ledger_accounts_1 (kind=? AND owner_id=?)") == 3
    else:  # PostgreSQL
        assert "uq_ledger_accounts_kind_owner" in plan, plan
    no_full_scan(plan, "ledger_accounts")


def floor(core: App) -> None:
    """Fill's campaign plus a floor of agents: ROWS // 10 agents with ROWS agent sessions (one in 50 still open),
    ROWS desk contacts over 30 days, ROWS IVR sessions (one in 100 open, handed off) and their steps (the partial
    index ``ix_ivr_steps_handoffs`` comes with the migrations, 0020)."""
    from callcenter.store.models import Staff
    from callcenter.store.models.desk import DeskContact
    from callcenter.store.models.dialer import AgentSession
    from callcenter.store.models.ivr import IvrSession, IvrStep

    with core.sessions() as s, s.begin():
        agents = ROWS // 10
        s.execute(insert(Staff), [{"username": f"agent{i}", "display_name": f"坐席{i}", "password_hash": "x",
                                   "role": "agent", "back_office": False, "extension": "", "active": True}
                                  for i in range(agents)])
        first = s.execute(text("SELECT min(id) FROM staff")).scalar_one()
        s.execute(insert(AgentSession), [
            {"staff_id": first + i % agents, "phone": "", "state": ("ready", "talking", "paused")[i % 3] if i % 50 == 0
             else "logged_out", "reason": "", "state_since": NOW - timedelta(minutes=i),
             "started_at": NOW - timedelta(minutes=i), "ended_at": None if i % 50 == 0 else NOW - timedelta(minutes=i - 1)}
            for i in range(ROWS)])
        s.execute(insert(DeskContact), [
            {"agent_id": first + i % agents, "direction": "outbound", "attempt_no": 1,
             "started_at": NOW - timedelta(minutes=15 * i), "ended_at": NOW - timedelta(minutes=15 * i - 3),
             "script_id": "", "script_state": "", "note": "", "disposition": "completed", "complaint": False}
            for i in range(ROWS)])
        s.execute(insert(IvrSession), [
            {"call_id": f"call-{i}", "channel": "ivr-agi", "caller": "", "masked_account": "", "lang": "zh-CN",
             "started_at": NOW - timedelta(minutes=10 * i), "handed_off": i % 2 == 0, "summary": "",
             "transfer_refs": "", "end_reason": "", "ended_at": None if i % 100 == 0 else NOW - timedelta(minutes=10 * i - 2)}
            for i in range(ROWS)])
        ivr_first = s.execute(text("SELECT min(id) FROM ivr_sessions")).scalar_one()
        s.execute(insert(IvrStep), [
            {"session_id": ivr_first + i, "at": NOW - timedelta(minutes=10 * i) + timedelta(seconds=k),
             "step": step, "detail": "{}"}
            for i in range(0, ROWS, 2) for k, step in enumerate(("handoff", "agent_connected"))])
    with core.sessions() as s:
        if dialect_name(s) == "postgresql":
            s.execute(text("ANALYZE"))
            s.commit()


def full_scans(plan: str) -> list[str]:
    """The plan's full reads of a table (SQLite ``SCAN t`` without an index, PostgreSQL ``Seq Scan``)."""
    return [line for line in plan.splitlines()
            if "Seq Scan" in line or (line.strip().startswith("SCAN ") and "INDEX" not in line)]


def test_the_wallboard_grid_and_queue_read_no_table_in_full(core: App) -> None:
    fill(core)
    floor(core)
    with core.sessions() as s, s.begin():
        plans = []
        for table in ("agent_sessions", "desk_contacts", "ivr_sessions", "ivr_steps"):
            plans += [(table, p) for p in in_plan(s, table, lambda: kpis.wallboard(s, NOW, core.settings.tz))]
        board = kpis.wallboard(s, NOW, core.settings.tz)
    for table, plan in plans:
        assert not full_scans(plan), (table, plan)
    joined = "\n".join(p for _, p in plans)
    # (one session's steps, the waiting hand-offs' lookups, stay on ix_ivr_steps_session_id: the new index is partial)
    for index in ("ix_agent_sessions_open", "ix_desk_contacts_agent_started", "ix_ivr_sessions_open",
                  "ix_ivr_steps_handoffs", "ix_ivr_steps_session_id"):
        assert index in joined, (index, joined)
    assert len(board["agent_rows"]) == len(range(0, ROWS, 50))
