"""POST /api/transfers — the custody service for supervisors, on the clients of the groups they supervise (the
IVR calls the same service as the authenticated client). Agents and admins get 403: neither moves client money
(``callcenter.domain.access``). An account the caller may not touch answers 404 exactly like one that does not
exist; an idempotency key belongs to the caller alone."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from callcenter.services.access import staff_actor
from callcenter.services.staff_sessions import Principal
from callcenter.services.transfers import IdempotencyConflict, TransferCommand
from callcenter.web.deps import CoreDep, require_roles
from callcenter.web.errors import ApiError, error_body
from callcenter.web.text import Text

router = APIRouter(prefix="/api", tags=["transfers"])

STATUS_CODES = {"done": 201, "pending": 202, "rejected": 422, "failed": 409, "voided": 409}
NOT_FOUND_CODES = {"unknown_account"}  # no such account, or one the caller may not touch: the same 404


class TransferIn(BaseModel):
    kind: Literal["bank_to_fund", "fund_to_bank", "fund_to_fund"]
    fund_account: Text = Field(min_length=6, max_length=20, pattern=r"^\d+$", description="资金账号 (source for fund_to_fund)")
    to_fund_account: Text | None = Field(default=None, min_length=6, max_length=20, pattern=r"^\d+$")
    amount: Text = Field(min_length=1, max_length=20, pattern=r"^\d+(\.\d+)?$", description="yuan, e.g. '1234.56'")


class TransferOut(BaseModel):
    status: str
    reference: str
    kind: str
    amount: str
    error_code: str = ""
    message: str = ""


@router.post("/transfers", response_model=TransferOut, status_code=201,
             responses={202: {}, 401: {}, 403: {}, 404: {}, 409: {}, 422: {}, 428: {}})
async def create_transfer(
    body: TransferIn,
    core: CoreDep,
    principal: Annotated[Principal, Depends(require_roles("supervisor"))],
    idempotency_key: Annotated[Text | None, Header(alias="Idempotency-Key", max_length=128)] = None,
) -> JSONResponse:
    if not idempotency_key or not idempotency_key.strip():
        raise ApiError(428, "idempotency_key_required")
    cmd = TransferCommand(
        idempotency_key=idempotency_key.strip(), kind=body.kind, fund_account_no=body.fund_account,
        to_fund_account_no=body.to_fund_account, amount_yuan=body.amount, channel="api",
        actor=staff_actor(principal),
    )
    try:
        outcome = await anyio.to_thread.run_sync(core.transfers.transfer, cmd)
    except IdempotencyConflict:
        raise ApiError(409, "idempotency_conflict") from None
    payload = TransferOut(status=outcome.status, reference=outcome.reference, kind=outcome.kind or body.kind,
                          amount=outcome.amount or body.amount, error_code=outcome.error_code, message=outcome.message)
    if outcome.status in ("rejected", "failed", "voided"):
        body_json = error_body(outcome.error_code, outcome.message, transfer=payload.model_dump())
        status = 404 if outcome.error_code in NOT_FOUND_CODES else STATUS_CODES[outcome.status]
        return JSONResponse(body_json, status_code=status)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(payload.model_dump(), status_code=STATUS_CODES[outcome.status], headers=headers)
