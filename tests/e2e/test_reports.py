"""Issue 13: reports with translated headers, dispositions and periods, and the inbound / IVR, transfer and
complaint reports, on the page and in the CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Transfer
from callcenter.store.models.care import Complaint
from callcenter.store.models.ivr import IvrSession
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db


def _seed(core: App, world: World) -> None:
    now = core.clock()

    def work(s) -> None:  # type: ignore[no-untyped-def]
        s.add_all([
            IvrSession(call_id="r-1", channel="ivr-agi", caller="+8613900000001", client_id=world.mine,
                       started_at=now - timedelta(minutes=30), ended_at=now - timedelta(minutes=28),
                       end_reason="handoff", handed_off=True),
            IvrSession(call_id="r-2", channel="ivr-agi", caller="+8613900000002", client_id=None,
                       started_at=now - timedelta(minutes=20), ended_at=now - timedelta(minutes=19, seconds=30),
                       end_reason="caller_hangup", handed_off=False),
        ])
        for i, (kind, status, amount) in enumerate((("bank_to_fund", "done", 100_000), ("bank_to_fund", "rejected", 5),
                                                    ("fund_to_bank", "done", 2_500))):
            s.add(Transfer(idempotency_scope="t", idempotency_key=f"k{i}", request_hash="h", reference=f"R{i:05d}",
                           client_id=world.mine, kind=kind, amount_fen=amount, status=status, channel="ivr",
                           trade_date=now.astimezone(core.settings.tz).date(), created_at=now))
        s.add_all([
            Complaint(client_id=world.mine, category="fund_transfer", text="转账慢", channel="agent", status="closed",
                      opened_at=now - timedelta(hours=5), due_at=now + timedelta(days=1),
                      closed_at=now - timedelta(hours=2), resolution="已处理"),
            Complaint(client_id=world.mine, category="fund_transfer", text="又慢", channel="ivr", status="open",
                      opened_at=now - timedelta(days=3), due_at=now - timedelta(hours=1)),
        ])

    run_in_transaction(core.sessions, work)


def test_inbound_transfer_and_complaint_reports_in_the_users_words(core: App) -> None:
    world = build(core)
    _seed(core, world)
    web = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(web, "sup1")
    day = core.clock().astimezone(core.settings.tz).date().isoformat()

    inbound = web.get("/supervisor/reports", params={"kind": "inbound"})
    assert inbound.status_code == 200 and "转人工" in inbound.text
    rows = list(csv.reader(io.StringIO(web.get("/supervisor/reports.csv", params={"kind": "inbound"}).text.lstrip("\ufeff"))))
    assert rows[0][0].startswith("呼入与自助语音报表：")
    assert rows[1] == ["日期", "呼入", "验证身份", "转人工", "语音中挂机", "平均语音时长(秒)"]
    assert rows[2] == [day, "2", "1", "1", "1", "75"]

    rows = list(csv.reader(io.StringIO(web.get("/supervisor/reports.csv", params={"kind": "transfers"}).text.lstrip("\ufeff"))))
    assert rows[1] == ["日期", "类型", "申请", "成功", "成功金额(元)", "未成功"]
    assert rows[2:] == [[day, "银行转证券", "2", "1", "1,000.00", "1"], [day, "证券转银行", "1", "1", "25.00", "0"]]

    start = (core.clock() - timedelta(days=5)).astimezone(core.settings.tz).date().isoformat()
    rows = list(csv.reader(io.StringIO(web.get("/supervisor/reports.csv", params={
        "kind": "complaints", "start": start}).text.lstrip("\ufeff"))))
    assert rows[1][0] == "投诉类别"
    assert rows[2] == ["银证转账", "2", "1", "1", "1", "3.0"]
    page = web.get("/supervisor/reports", params={"kind": "complaints", "start": start}).text
    assert "fund_transfer" not in page and "银证转账" in page
    assert web.get("/supervisor/reports", params={"kind": "nosuch"}).status_code == 422


def test_the_outbound_csv_has_one_translated_column_per_disposition(core: App) -> None:
    build(core)
    web = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(web, "sup1")
    text = web.get("/supervisor/reports.csv", params={"by": "day"}).text.lstrip("\ufeff")
    header = list(csv.reader(io.StringIO(text)))[1]
    assert header[:6] == ["日期", "拨打", "接通", "通话时长(分)", "约见", "按时回访"]
    assert all("_" not in h and "=" not in h for h in header)
