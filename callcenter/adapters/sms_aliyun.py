"""Aliyun (阿里云) SMS, the ``SmsSender`` port over its documented RPC HTTP API (``dysmsapi``, version
2017-05-25), signed with the AccessKey secret (signature version 1.0, HMAC-SHA1), with httpx.

Why not the official SDK (``alibabacloud-dysmsapi20170525`` on PyPI): it brings the whole Tea/Darabonba runtime
for two calls; the API below is the one it speaks and is documented as stable.

* ``SendSms``: ``PhoneNumbers`` (mainland numbers without +86), ``SignName`` (the registered 短信签名,
  setting ``aliyun_sms_sign_name``), ``TemplateCode`` (a registered template: mainland gateways send no free
  text; setting ``aliyun_sms_templates`` maps a message kind -- the delivery subject's prefix: event,
  birthday, bulletin, market_close, trading -- to a code, ``default`` for the rest), ``TemplateParam`` (JSON:
  the message under the template's variable, setting ``aliyun_sms_template_param``, default ``content``) and
  ``OutId`` (our reference). ``Code == "OK"`` is accepted (status ``sent``, ``BizId`` the provider reference).
* Delivery receipts: ``QuerySendDetails`` (``receipts_of``: polled by phone, BizId and send date;
  ``SendStatus`` 3 delivered, 2 failed, 1 waiting) and the receipt push (``parse_report``: the JSON array
  Aliyun posts, ``success`` per ``biz_id``); both give ``SmsReceipt`` values the care service records
  (``services/care/dispatch.apply_sms_receipts``).

A timeout, a dropped connection, a 5xx or an unreadable answer is a failed send with the reason (the port never
raises for a refused message); the delivery is retried by the care jobs' stale-message pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx

from callcenter.domain.masking import mask_phone
from callcenter.ports.sms import SmsReceipt, SmsResult

log = logging.getLogger(__name__)
ENDPOINT = "https://dysmsapi.aliyuncs.com/"
VERSION = "2017-05-25"


def percent_encode(value: str) -> str:
    """Aliyun's RFC 3986 encoding: unreserved characters kept, space as %20, '*' as %2A, '~' kept."""
    return quote(value, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def mainland_number(to: str) -> str:
    """``+8613912345678`` -> ``13912345678``; numbers of other countries keep their ``00`` international form."""
    if to.startswith("+86"):
        return to[3:]
    return "00" + to[1:] if to.startswith("+") else to


class AliyunSms:
    def __init__(self, access_key_id: str, access_key_secret: str, sign_name: str, templates: Mapping[str, str], *,
                 template_param: str = "content", endpoint: str = ENDPOINT, region: str = "cn-hangzhou",
                 timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 nonce: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        if not (access_key_id and access_key_secret and sign_name):
            raise ValueError("Aliyun SMS needs an AccessKey id and secret and a registered sign name (短信签名)")
        self.key_id, self._secret = access_key_id, access_key_secret
        self.sign_name, self.templates, self.template_param = sign_name, dict(templates), template_param
        self.endpoint, self.region = endpoint, region
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._clock, self._nonce = clock, nonce

    def close(self) -> None:
        self._http.close()

    def _call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        query = {"AccessKeyId": self.key_id, "Action": action, "Format": "JSON", "RegionId": self.region,
                 "SignatureMethod": "HMAC-SHA1", "SignatureNonce": self._nonce(), "SignatureVersion": "1.0",
                 "Timestamp": self._clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "Version": VERSION, **params}
        query["Signature"] = sign("POST", query, self._secret)
        r = self._http.post(self.endpoint, data=query)
        body = r.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        if r.status_code >= 500:
            raise httpx.HTTPStatusError(f"{r.status_code}", request=r.request, response=r)
        return body

    def send(self, to: str, body: str, *, reference: str, kind: str = "") -> SmsResult:
        template = self.templates.get(kind) or self.templates.get("default")
        if not template:
            return SmsResult("failed", "", f"aliyun: no template code for {kind or 'default'} messages")
        params = {"PhoneNumbers": mainland_number(to), "SignName": self.sign_name, "TemplateCode": template,
                  "TemplateParam": json.dumps({self.template_param: body}, ensure_ascii=False),
                  "OutId": reference[:64]}
        try:
            answer = self._call("SendSms", params)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("SMS to %s not sent: %s", mask_phone(to), type(exc).__name__)
            return SmsResult("failed", "", f"aliyun unreachable: {type(exc).__name__}"[:255])
        if answer.get("Code") != "OK":
            log.warning("SMS to %s refused: %s", mask_phone(to), answer.get("Code"))
            return SmsResult("failed", "", f"aliyun {answer.get('Code')}: {answer.get('Message', '')}"[:255])
        return SmsResult("sent", str(answer.get("BizId", "")))

    def receipts_of(self, to: str, biz_id: str, sent_on: datetime) -> list[SmsReceipt]:
        """``QuerySendDetails``: what the gateway knows of one message by now (polled)."""
        answer = self._call("QuerySendDetails", {"PhoneNumber": mainland_number(to), "BizId": biz_id,
                                                 "SendDate": sent_on.strftime("%Y%m%d"), "PageSize": "10",
                                                 "CurrentPage": "1"})
        out: list[SmsReceipt] = []
        for d in (answer.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []:
            status = {3: "delivered", 2: "failed"}.get(int(d.get("SendStatus", 1)))
            if status is not None:
                out.append(SmsReceipt(biz_id, status, str(d.get("ErrCode", ""))))  # type: ignore[arg-type]
        return out


def parse_report(body: bytes) -> list[SmsReceipt]:
    """Aliyun's receipt push (``SmsReport``): a JSON array of ``{"biz_id", "success", "err_code", ...}``."""
    items = json.loads(body)
    if not isinstance(items, list):
        raise ValueError("an SmsReport is a JSON array")
    return [SmsReceipt(str(i["biz_id"]), "delivered" if i.get("success") else "failed", str(i.get("err_code", "")))
            for i in items if isinstance(i, dict) and i.get("biz_id")]
