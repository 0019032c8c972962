"""The records for the regulator (留痕): a regulatory 回访 made on a recorded call links to that recording (kept
as a call-back record from then on) and to the answers of the five mandatory items; the printable record page and
the year's list; the annual complaint summary for the 证监局 (counts by category, outcome, handling time) as a
page and as CSV (audited); who may see them."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.bootstrap import App
from callcenter.services.care.callbacks import callbacks_of, record_callback_result
from callcenter.services.care.complaints import ComplaintService
from callcenter.services.care.regulator import callback_record, complaint_summary, summary_csv
from callcenter.services.care.regulatory import build_regulatory_callbacks
from callcenter.services.recordings import RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Client
from callcenter.store.models.care import CareCallback
from callcenter.store.models.recordings import Recording
from tests.e2e.desk_world import build
from tests.e2e.test_recordings_pages import login, record

pytestmark = pytest.mark.db
ANSWERS = {"identity": "本人确认", "account_changes": "无变更", "operator": "本人操作", "risk_disclosure": "已了解",
           "discretionary_trading": "无代客理财"}


def utc(y: int, m: int, d: int, hh: int = 2) -> datetime:
    return datetime(y, m, d, hh, tzinfo=timezone.utc)


@pytest.fixture
def world(core: App, clock, tmp_path):  # type: ignore[no-untyped-def]
    clock.now = utc(2026, 3, 10)
    core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), core.clock)
    w = build(core)

    def opened(s):  # type: ignore[no-untyped-def]
        s.get(Client, w.mine).opened_on = date(2026, 3, 2)  # a new account: its 回访 is due within the month

    run_in_transaction(core.sessions, opened)
    build_regulatory_callbacks(core, date(2026, 3, 10))
    return w


def test_a_regulatory_callback_links_its_recording_and_the_five_answers(core: App, clock, world) -> None:  # type: ignore[no-untyped-def]
    [cb] = [c for c in callbacks_of(core, world.mine) if c.purpose == "regulatory_new"]
    ag1 = world.staff["ag1"]
    other = record(core, ag1, world.theirs)  # the same agent's call with another client: not this 回访's
    rid = record(core, ag1, world.mine, seconds=3.0)
    clock.now += timedelta(minutes=5)
    with pytest.raises(ValueError):  # an explicit recording of another client is refused
        record_callback_result(core, cb.id, "done", ANSWERS, staff_id=ag1, recording_id=other)
    record_callback_result(core, cb.id, "done", ANSWERS, staff_id=ag1)
    rec = run_in_transaction(core.sessions, lambda s: s.get(Recording, rid))
    assert rec.retention_class == "callback" and rec.expires_at.year == 2029  # kept as a call-back record
    r = run_in_transaction(core.sessions, lambda s: callback_record(s, cb.id))
    assert r.recording_id == rid and r.recording_duration_s == pytest.approx(3.0)
    assert r.answers == [(k, ANSWERS[k]) for k in ("identity", "account_changes", "operator", "risk_disclosure",
                                                   "discretionary_trading")]

    sup, _ = login(core, "sup1")  # supervises the client's group
    page = sup.get(f"/supervisor/care/callbacks/{cb.id}/record")
    assert page.status_code == 200
    for text in ("核实客户身份", "无代客理财", f'src="/recordings/{rid}/audio"', rec.sha256):
        assert text in page.text
    assert sup.get(f"/recordings/{rid}/audio").status_code == 200  # the supervisor may play it
    year = sup.get("/supervisor/care/regulator?year=2026")
    assert year.status_code == 200 and f'data-callback="{cb.id}"' in year.text and f"#{rid}" in year.text
    agent, _ = login(core, "ag1")
    assert agent.get(f"/supervisor/care/callbacks/{cb.id}/record").status_code == 403
    views = run_in_transaction(core.sessions, lambda s: list(s.scalars(
        select(AuditLog).where(AuditLog.action == "callback_record_view"))))
    assert [(v.staff_id, v.client_id) for v in views] == [(world.staff["sup1"], world.mine)]


def test_a_callback_made_without_a_recorded_call_says_so(core: App, clock, world) -> None:  # type: ignore[no-untyped-def]
    [cb] = [c for c in callbacks_of(core, world.mine) if c.purpose == "regulatory_new"]
    record_callback_result(core, cb.id, "done", ANSWERS, staff_id=world.staff["ag1"])
    assert run_in_transaction(core.sessions, lambda s: s.get(CareCallback, cb.id).recording_id) is None
    sup, _ = login(core, "sup1")
    assert "无录音" in sup.get(f"/supervisor/care/callbacks/{cb.id}/record").text


def test_the_annual_complaint_summary_counts_categories_outcomes_and_handling_time(core: App, clock, world) -> None:  # type: ignore[no-untyped-def]
    svc = ComplaintService.for_app(core)
    clock.now = datetime(2025, 12, 31, 17, tzinfo=timezone.utc)  # 1 Jan 2026 01:00 in Shanghai: a 2026 complaint
    early = svc.open(world.mine, "fund_transfer", "转账未到账", channel="agent")
    clock.now = datetime(2025, 12, 31, 15, tzinfo=timezone.utc)  # 31 Dec 2025 23:00 Shanghai: not 2026's
    svc.open(world.mine, "fund_transfer", "去年的投诉", channel="agent")
    clock.now = utc(2026, 3, 2)
    late = svc.open(world.mine, "fund_transfer", "转账延迟", channel="ivr")
    slow = svc.open(world.theirs, "service_attitude", "态度差", channel="agent")
    svc.open(world.theirs, "commission", "佣金偏高", channel="web")  # still open
    clock.now = datetime(2026, 1, 1, 5, tzinfo=timezone.utc)  # early: 12 h after opening, within its 24 h
    svc.move(early, "closed", staff_id=None, resolution="已到账")
    clock.now = utc(2026, 3, 3, 8)  # late: 30 h, past its 24 h
    svc.move(late, "resolved", staff_id=None, resolution="已处理")
    clock.now = utc(2026, 3, 4, 2)  # slow: 48 h of its 72 h
    svc.move(slow, "closed", staff_id=None, resolution="已道歉")
    summary = run_in_transaction(core.sessions, lambda s: complaint_summary(s, 2026, core.settings.tz, clock.now))
    lines = {line.category: line for line in summary.lines}
    ft = lines["fund_transfer"]
    assert (ft.total, ft.by_outcome["closed"], ft.by_outcome["resolved"], ft.in_time, ft.handled) == (2, 1, 1, 1, 2)
    assert (ft.mean_hours, ft.max_hours) == (21.0, 30.0)
    assert (lines["service_attitude"].total, lines["service_attitude"].mean_hours) == (1, 48.0)
    assert (lines["commission"].by_outcome["open"], lines["commission"].handled) == (1, 0)
    assert (summary.total.total, summary.total.in_time, summary.total.handled) == (4, 2, 3)
    assert summary.by_channel == {"agent": 2, "ivr": 1, "web": 1}
    rows = list(csv.reader(io.StringIO(summary_csv(summary).lstrip("\ufeff"))))
    assert rows[0][:3] == ["category", "total", "outcome_resolved"]
    assert ["fund_transfer", "2", "1", "1", "0", "0", "2", "1", "21.0", "21.0", "30.0"] in rows
    assert rows[-1][:2] == ["total", "4"]

    sup, _ = login(core, "sup1")
    page = sup.get("/supervisor/care/regulator?year=2026")
    assert page.status_code == 200 and "2026 年度投诉情况汇总" in page.text and "银证转账" in page.text
    got = sup.get("/supervisor/care/regulator/complaints.csv?year=2026")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="complaints-2026.csv"' in got.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert ["银证转账", "2", "1", "1", "0", "0", "2", "1", "21.0", "21.0", "30.0"] in table
    assert table[-1][:2] == ["合计", "4"]
    exports = run_in_transaction(core.sessions, lambda s: list(s.scalars(
        select(AuditLog).where(AuditLog.action == "complaint_summary_export"))))
    assert [(e.staff_id, e.detail) for e in exports] == [(world.staff["sup1"], "year 2026: 4 complaints")]
    agent, _ = login(core, "ag1")
    assert agent.get("/supervisor/care/regulator/complaints.csv?year=2026").status_code == 403
