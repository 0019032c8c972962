"""``POST /sms/aliyun/report/<token>``: the delivery receipts Aliyun SMS pushes (``SmsReport``, a JSON array).
Aliyun does not sign them, so the URL carries a secret token (setting ``aliyun_sms_report_token``; the route
exists only when it is set); answered as Aliyun asks (``{"code": 0}``)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from callcenter.adapters.sms_aliyun import parse_report
from callcenter.bootstrap import App
from callcenter.services.care.dispatch import apply_sms_receipts


def make_router(core: App) -> APIRouter:
    router = APIRouter()
    expected = core.settings.aliyun_sms_report_token.get_secret_value()

    @router.post("/sms/aliyun/report/{token}", include_in_schema=False)
    async def report(token: str, request: Request) -> Response:
        if not expected or not hmac.compare_digest(token, expected):
            return Response("not found", status_code=404, media_type="text/plain")
        try:
            receipts = parse_report(await request.body())
        except (ValueError, KeyError):
            return Response('{"code": 1, "msg": "unreadable"}', status_code=400, media_type="application/json")
        await asyncio.to_thread(apply_sms_receipts, core, receipts)
        return Response('{"code": 0, "msg": "ok"}', media_type="application/json")

    return router
