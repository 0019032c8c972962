"""A local fake of Aliyun's SMS API (dysmsapi 2017-05-25) on 127.0.0.1, port 0: it checks every request's
signature with the AccessKey secret as Aliyun does, keeps what it was sent and answers SendSms and
QuerySendDetails in Aliyun's JSON."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from callcenter.adapters.sms_aliyun import sign

KEY_ID, SECRET = "LTAI-test-key", "test-secret-0123"


class FakeAliyun:
    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.status: dict[str, int] = {}  # BizId -> SendStatus (1 waiting, 2 failed, 3 delivered)
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        given = form.pop("Signature", "")
        if form.get("AccessKeyId") != KEY_ID or given != sign("POST", form, SECRET):
            return JSONResponse({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched"},
                                status_code=400)
        if form["Action"] == "SendSms":
            if not form.get("SignName") or not form.get("TemplateCode", "").startswith("SMS_"):
                return JSONResponse({"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"})
            biz = f"{next(self._ids):06d}^0"
            self.sent.append(form)
            self.status[biz] = 1
            return JSONResponse({"Code": "OK", "Message": "OK", "BizId": biz, "RequestId": "R1"})
        if form["Action"] == "QuerySendDetails":
            biz = form["BizId"]
            return JSONResponse({"Code": "OK", "TotalCount": 1, "SmsSendDetailDTOs": {"SmsSendDetailDTO": [
                {"PhoneNum": form["PhoneNumber"], "SendStatus": self.status.get(biz, 1), "ErrCode": "DELIVERED"}]}})
        return JSONResponse({"Code": "InvalidAction"}, status_code=404)

    def __enter__(self) -> "FakeAliyun":
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)  # readiness only
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
