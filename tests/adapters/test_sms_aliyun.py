"""Aliyun SMS over its signed HTTP API, against a local fake server that checks signatures as Aliyun does."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from callcenter.adapters.sms_aliyun import AliyunSms, mainland_number, parse_report, sign
from tests.adapters.aliyun_fake import KEY_ID, SECRET, FakeAliyun

TEMPLATES = {"event": "SMS_300000001", "default": "SMS_300000009"}


def test_signature_is_the_documented_example() -> None:
    """The worked example of Aliyun's signature documentation (SendSms, GET, testId/testSecret)."""
    params = {"AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
              "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
              "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
              "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
              "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25"}
    assert sign("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_send_with_sign_name_and_template_of_its_kind_then_poll_the_receipt() -> None:
    with FakeAliyun() as fake:
        sms = AliyunSms(KEY_ID, SECRET, "某某证券", TEMPLATES, endpoint=fake.url)
        result = sms.send("+8613912345678", "您持有的权证明天是最后行权日。", reference="care-7", kind="event")
        assert result.status == "sent" and result.provider_ref == "000001^0"
        [sent] = fake.sent
        assert (sent["PhoneNumbers"], sent["SignName"], sent["TemplateCode"], sent["OutId"]) == (
            "13912345678", "某某证券", "SMS_300000001", "care-7")
        assert json.loads(sent["TemplateParam"]) == {"content": "您持有的权证明天是最后行权日。"}
        assert sms.send("+8613912345678", "生日快乐", reference="care-8", kind="birthday").status == "sent"
        assert fake.sent[1]["TemplateCode"] == "SMS_300000009"  # no template of its own: the default one
        assert sms.receipts_of("+8613912345678", result.provider_ref, datetime(2026, 11, 25, tzinfo=timezone.utc)) == []
        fake.status[result.provider_ref] = 3
        [receipt] = sms.receipts_of("+8613912345678", result.provider_ref, datetime(2026, 11, 25, tzinfo=timezone.utc))
        assert (receipt.provider_ref, receipt.status) == (result.provider_ref, "delivered")
        sms.close()


def test_a_wrong_secret_a_missing_template_and_a_dead_gateway_are_failed_sends_not_crashes() -> None:
    with FakeAliyun() as fake:
        forged = AliyunSms(KEY_ID, "not-the-secret", "某某证券", TEMPLATES, endpoint=fake.url)
        refused = forged.send("+8613912345678", "x", reference="care-1", kind="event")
        assert refused.status == "failed" and "SignatureDoesNotMatch" in refused.error
        no_template = AliyunSms(KEY_ID, SECRET, "某某证券", {}, endpoint=fake.url)
        assert "no template" in no_template.send("+8613912345678", "x", reference="care-2").error
        assert fake.sent == []
        url = fake.url
    gone = AliyunSms(KEY_ID, SECRET, "某某证券", TEMPLATES, endpoint=url, timeout_s=2)
    down = gone.send("+8613912345678", "x", reference="care-3", kind="event")
    assert down.status == "failed" and down.error.startswith("aliyun unreachable")


def test_receipt_push_and_numbers() -> None:
    body = json.dumps([{"phone_number": "13912345678", "success": True, "err_code": "DELIVERED", "biz_id": "1^0"},
                       {"phone_number": "13912345679", "success": False, "err_code": "MK:0001", "biz_id": "2^0"}])
    assert [(r.provider_ref, r.status, r.detail) for r in parse_report(body.encode())] == [
        ("1^0", "delivered", "DELIVERED"), ("2^0", "failed", "MK:0001")]
    assert mainland_number("+8613912345678") == "13912345678" and mainland_number("+85291234567") == "0085291234567"
