"""Dialler use cases on the database: campaign life, agents, DNC, lead files and client segments."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer.leads import (
    InvalidPhone,
    LeadFile,
    LeadFileError,
    LeadRow,
    add_leads,
    import_lead_file,
    import_leads,
    normalise_phone,
)
from callcenter.services.dialer.segment_leads import add_segment_leads
from callcenter.services.dialer.campaigns import (
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


def _problems(report) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    return [(p.row, p.code) for p in report.problems]


def test_csv_import_refuses_repeats_and_keeps_dnc_numbers(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="branch_prospect")
    add_dnc(core, "13900000003")
    path = tmp_path / "leads.csv"
    path.write_text("姓名,手机,优先级,met_at\n王一,139 0000 0001,1,工行徐汇支行\n王二,021-62345678,,\n"
                    ",+8613900000001,5,\n赵三,13900000003,,\n", encoding="utf-8-sig")
    report = import_leads(core, cid, path)  # row 4 is row 2's number again: nothing is imported
    assert not report.imported and (report.rows, report.created) == (4, 0)
    assert _problems(report) == [(4, "phone_repeated")]
    assert report.sentences() == ["第 4 行：电话号码 139****0001 与第 2 行重复"]
    with transaction(core.sessions) as s:
        assert s.scalars(select(Lead).where(Lead.campaign_id == cid)).all() == []
    path.write_text("姓名,手机,优先级,met_at\n王一,139 0000 0001,1,工行徐汇支行\n王二,021-62345678,,\n"
                    "赵三,13900000003,,\n", encoding="utf-8-sig")
    report = import_leads(core, cid, path)
    assert report.imported and (report.rows, report.created, report.dnc) == (3, 3, 1)
    assert report.summary() == "已导入 3 条名单（其中 1 条在免打扰名单上，不会拨打），共 3 行"
    with transaction(core.sessions) as s:
        leads = {lead.phone: lead for lead in s.scalars(select(Lead).where(Lead.campaign_id == cid))}
    assert set(leads) == {"+8613900000001", "+862162345678", "+8613900000003"}
    assert (leads["+8613900000001"].name, leads["+8613900000001"].priority) == ("王一", 1)
    assert leads["+8613900000001"].extra == {"met_at": "工行徐汇支行"}
    assert leads["+8613900000003"].status == "dnc"
    again = import_leads(core, cid, path)  # the same file twice: refused, nothing doubled
    assert not again.imported and _problems(again) == [(2, "phone_in_campaign"), (3, "phone_in_campaign"),
                                                        (4, "phone_in_campaign")]
    with transaction(core.sessions) as s:
        assert len(s.scalars(select(Lead).where(Lead.campaign_id == cid)).all()) == 3


def test_xlsx_import_is_all_or_nothing_with_row_errors(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="cold_call")
    wb = Workbook()
    ws = wb.active
    ws.append(["name", "phone", "priority", "met_date"])
    ws.append(["甲", 13900000011, 1, datetime(2026, 11, 20)])  # typed as a number and a date in Excel
    ws.append(["乙", "62345678", 1])  # landline without area code
    ws.append(["丙", "13900000012", "high"])
    ws.append(["丁", "0755-23456789", 2])
    path = tmp_path / "leads.xlsx"
    wb.save(path)
    report = import_leads(core, cid, path)
    assert not report.imported and _problems(report) == [(3, "phone_invalid"), (4, "priority_not_number")]
    with transaction(core.sessions) as s:
        assert s.scalars(select(Lead).where(Lead.campaign_id == cid)).all() == []
    ws.delete_rows(3, 2)
    wb.save(path)
    report = import_leads(core, cid, path)
    assert report.imported and (report.created, report.rows) == (2, 2)
    with transaction(core.sessions) as s:
        first = s.scalars(select(Lead).where(Lead.phone == "+8613900000011")).one()
    assert first.extra == {"met_date": "2026-11-20"}


def test_every_field_of_a_lead_file_is_checked(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="branch_prospect")
    known, _ = make_client(core, accounts=[(0, 0)])
    with transaction(core.sessions) as s:
        client_no = s.get(Client, known).client_no
    path = tmp_path / "leads.csv"
    path.write_text(
        "phone,name,priority,timezone,client_no,met_at,met_date,branch\n"
        f"13900000021,甲,1,Asia/Shanghai,{client_no},建行人民路支行,2026-11-02,徐汇\n"  # row 2: good
        "13900000022,乙,0,,,,2026-13-45,\n"  # not a date
        "13900000023,丙,0,,,2026-11-02,,\n"  # a date where the place goes
        "13900000024,丁,0,,C999999,,,\n"  # no such client
        "13900000025,戊,150,,,,,\n"  # priority out of range
        "13900000026,己,0,Mars/Base,,,,\n"  # no such zone
        "13900000027,庚,0,,,,2026-12-30,\n"  # after today (2026-11-25)
        f"13900000028,{'长' * 65},0,,,,,\n"
        f"13900000029,辛,0,,,,,{'x' * 201}\n"
        ",壬,0,,,,,\n"
        "13900000030,张三,李四,1,,,,,徐汇\n", encoding="utf-8")  # an unquoted comma in the name
    report = import_leads(core, cid, path)
    assert not report.imported
    assert _problems(report) == [(3, "met_date_invalid"), (4, "met_at_is_date"), (5, "client_unknown"),
                                 (6, "priority_out_of_range"), (7, "timezone_unknown"), (8, "met_date_future"),
                                 (9, "name_too_long"), (10, "value_too_long"), (11, "phone_missing"),
                                 (12, "too_many_cells"), (12, "priority_not_number"), (12, "timezone_unknown")]
    assert report.sentences()[0] == "第 3 行：认识日期“2026-13-45”不是有效日期（格式 YYYY-MM-DD）"
    assert report.sentences("en")[2] == 'Row 5: no client with client number "C999999"'
    for problem, sentence in zip(report.problems, report.sentences()):  # sentences, never raw codes
        assert problem.code not in sentence and sentence.startswith(f"第 {problem.row} 行：")
    with transaction(core.sessions) as s:
        assert s.scalars(select(Lead).where(Lead.campaign_id == cid)).all() == []
    path.write_text("phone,name,priority,timezone,client_no,met_at,met_date,branch\n"
                    f"13900000021,甲,1,Asia/Shanghai,{client_no},建行人民路支行,2026/11/02,徐汇\n", encoding="utf-8")
    report = import_leads(core, cid, path)
    assert report.imported
    with transaction(core.sessions) as s:
        lead = s.scalars(select(Lead).where(Lead.campaign_id == cid)).one()
    assert (lead.client_id, lead.priority, lead.extra) == (
        known, 1, {"met_at": "建行人民路支行", "met_date": "2026-11-02", "branch": "徐汇"})


def test_lead_file_problems_of_the_whole_file(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="cold_call")
    now = core.clock()
    cases = [
        (LeadFile.from_bytes("leads.pdf", b"%PDF"), "bad_type"),
        (LeadFile.from_bytes("leads.csv", b"name,priority\n\xe7\x8e\x8b,1\n"), "no_phone_column"),
        (LeadFile.from_bytes("leads.csv", b""), "empty"),
        (LeadFile.from_bytes("leads.csv", b"phone,\xff\xfe\xfa\n"), "bad_encoding"),
        (LeadFile.from_bytes("leads.xlsx", b"not a zip"), "unreadable"),
        (LeadFile.from_bytes("leads.csv", "phone,手机\n13900000001,13900000002\n".encode()), "duplicate_column"),
    ]
    for source, code in cases:
        with pytest.raises(LeadFileError) as err:
            import_lead_file(core.sessions, cid, source, now)
        assert err.value.code == code and code not in err.value.sentence() and err.value.sentence()
    gbk = LeadFile.from_bytes("leads.csv", "手机,姓名\n13900000031,王五\n".encode("gb18030"))  # Excel's CSV
    assert import_lead_file(core.sessions, cid, gbk, now).created == 1
    stop_campaign(core, cid)
    with pytest.raises(LeadFileError) as err:
        import_lead_file(core.sessions, cid, LeadFile.from_bytes("x.csv", b"phone\n13900000032\n"), now)
    assert err.value.sentence() == f"外呼活动 {cid} 已结束，不能再导入名单"


def test_repeats_across_batches_are_found(core: App, tmp_path: Path) -> None:
    cid = new_campaign(core, kind="cold_leads", script_id="cold_call")
    lines = [f"139{i:08d}" for i in range(25)] + ["13900000003", "13900000024"]
    source = LeadFile.from_bytes("leads.csv", ("phone\n" + "\n".join(lines) + "\n").encode())
    batches: list[int] = []
    report = import_lead_file(core.sessions, cid, source, core.clock(), batch_size=10, on_batch=batches.append)
    assert batches == [10, 20, 27]
    assert _problems(report) == [(27, "phone_repeated_earlier"), (28, "phone_repeated")]
    assert report.created == 0
    with transaction(core.sessions) as s:
        assert s.scalars(select(Lead).where(Lead.campaign_id == cid)).all() == []


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


def test_birthday_segment_and_greetings_share_the_leap_day_rule(core: App) -> None:
    from callcenter.services.care import planner
    from callcenter.services.segments import birthday_clients

    leapling, _ = make_client(core, accounts=[(0, 0)])
    with transaction(core.sessions) as s:
        s.get(Client, leapling).birthday = date(2000, 2, 29)
        s.commit()
    cid = new_campaign(core)
    add_segment_leads(core, cid, "birthdays", date(2027, 2, 21), within_days=7)  # up to Sunday 28 February 2027
    with transaction(core.sessions) as s:
        assert set(s.scalars(select(Lead.client_id).where(Lead.campaign_id == cid))) == {leapling}
        assert [c.id for c in birthday_clients(s, date(2027, 2, 28), date(2027, 2, 28))] == [leapling]
        assert birthday_clients(s, date(2028, 2, 28), date(2028, 2, 28)) == []  # leap year: on the 29th
        assert [c.id for c in birthday_clients(s, date(2028, 2, 29), date(2028, 2, 29))] == [leapling]
        assert planner.birthday_clients is birthday_clients  # the care planner asks the same query


def test_dnc_request_stops_open_leads(core: App) -> None:
    cid = new_campaign(core)
    add_leads(core, cid, [LeadRow(0, "+8613900000001"), LeadRow(0, "+8613900000002")])
    add_dnc(core, "+8613900000002", campaign_id=cid, reason="客户拒绝")
    with transaction(core.sessions) as s:
        assert dict(s.execute(select(Lead.phone, Lead.status)).all()) == {
            "+8613900000001": "new", "+8613900000002": "dnc"}
