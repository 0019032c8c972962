"""Birthday greetings through Aliyun SMS (the local fake gateway checking signatures): the registered signature
and the birthday template code are sent, the delivery keeps Aliyun's BizId, and the receipt Aliyun pushes to
the engine's token URL marks it delivered (a second push changes nothing; a wrong token is not found)."""

from __future__ import annotations

import json
from datetime import date

import httpx
from sqlalchemy import select

from callcenter.bootstrap import sms_sender
from callcenter.services.care.dispatch import apply_sms_receipts, run_daily_reminders
from callcenter.ports.sms import SmsReceipt
from callcenter.store.db import run_in_transaction
from callcenter.store.models.care import CareDelivery
from callcenter.web.app import create_app
from tests.adapters.aliyun_fake import KEY_ID, SECRET, FakeAliyun
from tests.db.test_care_support import client_holding, mobile_of, utc


async def test_birthday_sms_through_aliyun_and_its_pushed_receipt(core) -> None:  # type: ignore[no-untyped-def]
    ok = client_holding(core, birthday=date(1980, 4, 1))
    s = core.settings
    with FakeAliyun() as fake:
        s.sms_backend, s.aliyun_access_key_id = "aliyun", KEY_ID
        s.aliyun_access_key_secret = type(s.aliyun_access_key_secret)(SECRET)
        s.aliyun_sms_sign_name, s.aliyun_sms_endpoint = "某某证券", fake.url
        s.aliyun_sms_templates = {"birthday": "SMS_300000002", "default": "SMS_300000009"}
        report = run_daily_reminders(core, date(2026, 4, 1), sms=sms_sender(s), now=utc(2026, 4, 1))
        assert (report.sent, report.failed) == (1, 0)
        [sent] = fake.sent
        assert (sent["SignName"], sent["TemplateCode"]) == ("某某证券", "SMS_300000002")
        assert sent["PhoneNumbers"] == mobile_of(core, ok).removeprefix("+86")
        assert "生日快乐" in json.loads(sent["TemplateParam"])["content"]
    [row] = run_in_transaction(core.sessions, lambda x: list(s_ for s_ in x.scalars(select(CareDelivery))))
    assert (row.status, row.provider_ref) == ("sent", "000001^0")

    s.aliyun_sms_report_token = type(s.aliyun_sms_report_token)("report-token-42")
    web = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(core)), base_url="http://cc")
    push = json.dumps([{"phone_number": sent["PhoneNumbers"], "success": True, "err_code": "DELIVERED",
                        "err_msg": "用户接收成功", "biz_id": row.provider_ref, "out_id": sent["OutId"]}])
    assert (await web.post("/sms/aliyun/report/wrong", content=push)).status_code == 404
    r = await web.post("/sms/aliyun/report/report-token-42", content=push)
    assert r.status_code == 200 and r.json() == {"code": 0, "msg": "ok"}
    assert run_in_transaction(core.sessions, lambda x: x.get(CareDelivery, row.id).status) == "delivered"
    assert apply_sms_receipts(core, [SmsReceipt(row.provider_ref, "failed", "MK:0001")]) == 0  # final: kept
    await web.aclose()
