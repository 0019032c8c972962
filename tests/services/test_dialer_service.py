"""Dialler use cases on the database: campaign life, agents, DNC, lead files and client segments."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.dialer.leads import ImportRejected, LeadRow, add_leads, import_leads, normalise_phone, InvalidPhone
from callcenter.dialer.segments import add_segment_leads
from callcenter.dialer.service import (
    DialerError,
    add_dnc,
    agent_login,
    agent_logout,
    agent_pause,
    agent_ready,
    agent_state,
    assign_campaign,
    create_campaign,
    edit_campaign,
    pause_campaign,
    resume_campaign,
    schedule_campaign,
    start_campaign,
    start_due_campaigns,
    stop_campaign,
)
from callcenter.domain.campaigns import RuleError
from callcenter.store.db import transaction
from callcenter.store.models.core import Client, Security
from callcenter.store.models.dialer import AgentStateChange, Campaign, Lead
from tests.factories import make_client, make_group, make_staff

pytestmark = pytest.mark.db


def new_campaign(core: App, **kw) -> int:
    kw = {"kind": "former_clients", "script_id": "win_back", **kw}
    return create_campaign(core, name="挽回流失客户", **kw)


def test_campaign_life_and_edit_rules(core: App) -> None:
    cid = new_campaign(core, dial_mode="predictive", retry_delays={"busy": 10, "no_answer": 120},
                       window_start="09:30", window_end="17:00", days="trading")
    with transaction(core.sessions) as s:
        c = s.get(Campaign, cid)
        assert (c.state, c.target_abandon, c.window_start, c.days, c.timezone) == (
            "draft", 0.03, time(9, 30), "trading", "Asia/Shanghai")
    at = datetime(2026, 11, 26, 1, 0, tzinfo=timezone.utc)
    assert schedule_campaign(core, cid, at) == "scheduled"
    assert start_due_campaigns(core, datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)) == []
    assert start_due_campaigns(core, at) == [cid]
    with pytest.raises(DialerError):
        edit_campaign(core, cid, max_attempts=5)  # running: pause first
    assert pause_campaign(core, cid) == "paused"
    edit_campaign(core, cid, max_attempts=5, priority=3)
    assert resume_campaign(core, cid) == "running"
    assert stop_campaign(core, cid) == "finished"
    with pytest.raises(RuleError):
        start_campaign(core, cid)
    for bad in ({"dial_mode": "telepathy"}, {"retry_delays": {"busy": -1}}, {"window_start": "20:00"},
                {"timezone": "Mars/Base"}, {"target_abandon": 0.9}):
        with pytest.raises(RuleError):
            new_campaign(core, **bad)


def test_agent_states_are_recorded(core: App) -> None:
    cid = new_campaign(core)
    group = make_group(core, "一组")
    agent = make_staff(core, "zhang", "pw-agent-123456", "agent", group_id=group)
    outsider = make_staff(core, "li", "pw-agent-123456", "agent")
    assign_campaign(core, cid, group_ids=[group])
    start_campaign(core, cid)
    with pytest.raises(DialerError):
        agent_login(core, outsider, campaign_id=cid)
    with pytest.raises(DialerError):
        agent_ready(core, agent)  # not logged in
    agent_login(core, agent)  # picks the running campaign it is assigned to (through its group)
    assert agent_state(core, agent)["campaign_id"] == cid
    assert agent_ready(core, agent) == "ready"
    assert agent_pause(core, agent, "lunch") == "paused"
    assert agent_state(core, agent)["reason"] == "lunch"
    with pytest.raises(DialerError):
        agent_pause(core, agent, "")
    assert agent_ready(core, agent) == "ready"
    assert agent_logout(core, agent) == "logged_out"
    assert agent_state(core, agent) is None
    with transaction(core.sessions) as s:
        changes = [(c.from_state, c.to_state, c.reason) for c in s.scalars(select(AgentStateChange).order_by(AgentStateChange.id))]
    assert changes == [("logged_out", "paused", "login"), ("paused", "ready", ""), ("ready", "paused", "lunch"),
                       ("paused", "ready", ""), ("ready", "logged_out", "logout")]


def test_phone_normalisation() -> None:
    assert normalise_phone("139 1234 5678") == "+8613912345678"
    assert normalise_phone("+86-139-1234-5678") == "+8613912345678"
    assert normalise_phone("021-6234 5678") == "+862162345678"
    assert normalise_phone("(010)88888888") == "+861088888888"
    for bad in ("62345678", "12345", "139123456789", "hello", ""):
        with pytest.raises(InvalidPhone):
            normalise_phone(bad)


def test_csv_import_merges_duplicates_and_honours_dnc(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="branch_prospect")
    add_dnc(core, "13900000003")
    path = tmp_path / "leads.csv"
    path.write_text("姓名,手机,优先级,met_at\n王一,139 0000 0001,1,工行徐汇支行\n王二,021-62345678,,\n"
                    ",+8613900000001,5,\n赵三,13900000003,,\n", encoding="utf-8-sig")
    result = import_leads(core, cid, path)
    assert (result.rows, result.created, result.merged, result.dnc) == (4, 3, 1, 1)
    with transaction(core.sessions) as s:
        leads = {lead.phone: lead for lead in s.scalars(select(Lead).where(Lead.campaign_id == cid))}
    assert set(leads) == {"+8613900000001", "+862162345678", "+8613900000003"}
    merged = leads["+8613900000001"]
    assert (merged.name, merged.priority, merged.extra["met_at"]) == ("王一", 5, "工行徐汇支行")
    assert leads["+8613900000003"].status == "dnc"
    again = import_leads(core, cid, path)  # importing the same file again adds nothing
    assert (again.created, again.merged) == (0, 4)


def test_xlsx_import_is_all_or_nothing_with_row_errors(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="cold_call")
    wb = Workbook()
    ws = wb.active
    ws.append(["name", "phone", "priority"])
    ws.append(["甲", 13900000011, 1])  # typed as a number in Excel
    ws.append(["乙", "62345678", 1])  # landline without area code
    ws.append(["丙", "13900000012", "high"])
    ws.append(["丁", "0755-23456789", 2])
    path = tmp_path / "leads.xlsx"
    wb.save(path)
    with pytest.raises(ImportRejected) as err:
        import_leads(core, cid, path)
    assert [e.row for e in err.value.errors] == [3, 4]
    with transaction(core.sessions) as s:
        assert s.scalars(select(Lead).where(Lead.campaign_id == cid)).all() == []
    ws.delete_rows(3, 2)
    wb.save(path)
    result = import_leads(core, cid, path, progress=False)
    assert (result.created, result.rows) == (2, 2)


def test_leads_from_segments(core: App) -> None:
    cid = new_campaign(core)
    former, _ = make_client(core, accounts=[(0, 0)], status="closed")  # closed 2026-01-01
    dormant, _ = make_client(core, accounts=[(0, 0)])
    holder, accounts = make_client(core, accounts=[(0, 0)])
    today = date(2026, 11, 25)
    with transaction(core.sessions) as s:
        s.get(Client, dormant).last_trade_on = date(2026, 1, 5)
        s.get(Client, holder).last_trade_on = date(2026, 11, 20)
        s.get(Client, holder).birthday = date(1980, 11, 28)
        s.get(Client, former).last_trade_on = date(2025, 12, 20)
        from callcenter.store.models.core import FundAccount, Holding

        if s.get(Security, "600519") is None:
            s.add(Security(code="600519", name="贵州茅台", exchange="SSE", last_price_fen=150_000))
        fund = s.scalars(select(FundAccount).where(FundAccount.account_no == accounts[0])).one()
        s.flush()
        s.add(Holding(fund_account_id=fund.id, code="600519", quantity=100, cost_fen=140_000))
        s.commit()

    def clients_of(result_cid: int) -> set[int]:
        with transaction(core.sessions) as s:
            return set(s.scalars(select(Lead.client_id).where(Lead.campaign_id == result_cid)))

    add_segment_leads(core, cid, "former", today, months=12)
    assert clients_of(cid) == {former}
    c2 = new_campaign(core)
    add_segment_leads(core, c2, "dormant", today, days=180)
    assert dormant in clients_of(c2) and holder not in clients_of(c2) and former not in clients_of(c2)
    c3 = new_campaign(core)
    add_segment_leads(core, c3, "holders", today, code="600519")
    assert clients_of(c3) == {holder}
    c4 = new_campaign(core)
    add_segment_leads(core, c4, "birthdays", today, within_days=7)
    assert clients_of(c4) == {holder}
    again = add_segment_leads(core, c3, "holders", today, code="600519")
    assert (again.created, again.merged) == (0, 1)


def test_dnc_request_stops_open_leads(core: App) -> None:
    cid = new_campaign(core)
    add_leads(core, cid, [LeadRow(0, "+8613900000001"), LeadRow(0, "+8613900000002")])
    add_dnc(core, "+8613900000002", campaign_id=cid, reason="客户拒绝")
    with transaction(core.sessions) as s:
        assert dict(s.execute(select(Lead.phone, Lead.status)).all()) == {
            "+8613900000001": "new", "+8613900000002": "dnc"}
