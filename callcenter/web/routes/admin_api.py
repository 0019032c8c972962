"""Administrators' JSON API: the failed-login and PIN throttles (list, unlock with a reason, audit-logged).
Administrators only: any other role gets 403."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from callcenter.web.text import MultilineText, Text
from callcenter.bootstrap import App
from callcenter.services.staff_sessions import Principal
from callcenter.services.throttles import Scope, ThrottlePolicies, Throttles, UnlockRefused
from callcenter.web.deps import CoreDep, require_roles
from callcenter.web.errors import ApiError

router = APIRouter(prefix="/api/admin", tags=["admin"])

AdminDep = Annotated[Principal, Depends(require_roles("admin"))]


def _throttles(core: App) -> Throttles:
    return Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock)


class UnlockIn(BaseModel):
    scope: Scope  # login_user | login_ip | ivr_account | ivr_caller
    subject: Text = Field(max_length=64)  # the username, IP address, fund account number or caller ID
    reason: MultilineText = Field(min_length=1, max_length=500)


@router.get("/throttles", responses={401: {}, 403: {}})
async def list_throttles(core: CoreDep, admin: AdminDep) -> list[dict[str, Any]]:
    """Every throttle counter that counts at the moment, those backing off first."""
    views = await anyio.to_thread.run_sync(_throttles(core).counting, admin)
    return [v.as_dict() for v in views]


@router.post("/throttles/unlock", responses={401: {}, 403: {}, 422: {}})
async def unlock(body: UnlockIn, core: CoreDep, admin: AdminDep) -> dict[str, Any]:
    """Clear one counter (a staff login's username or IP, an IVR fund account or caller ID); audit-logged."""
    try:
        result = await anyio.to_thread.run_sync(_throttles(core).unlock, admin, body.scope, body.subject,
                                                body.reason)
    except UnlockRefused as exc:
        raise ApiError(422, exc.code) from None
    return {"audit_id": result.audit_id, "before": result.before.as_dict(), "after": result.after.as_dict()}
