"""Staff login for API clients: a bearer token (the browser screens use the same sessions through a cookie)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from callcenter.services.staff_sessions import LoginThrottled, StaffSessions
from callcenter.web.deps import CoreDep, PrincipalDep, client_ip, get_staff_sessions
from callcenter.web.errors import ApiError
from callcenter.web.text import Text

router = APIRouter(prefix="/api", tags=["auth"])


class LoginIn(BaseModel):
    username: Text = Field(min_length=1, max_length=64)
    password: Text = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    token: str
    role: str
    display_name: str
    csrf_token: str


class MeOut(BaseModel):
    username: str
    display_name: str
    role: str
    group_ids: list[int]


@router.post("/login", response_model=LoginOut, responses={401: {}, 429: {}})
async def login(body: LoginIn, request: Request, core: CoreDep,
                sessions: Annotated[StaffSessions, Depends(get_staff_sessions)]) -> LoginOut:
    try:
        result = await anyio.to_thread.run_sync(sessions.login, body.username, body.password, core.clock(),
                                                client_ip(request))
    except LoginThrottled as exc:
        raise ApiError(429, "login_throttled", headers={"Retry-After": str(exc.retry_after_s)}) from None
    if result is None:
        raise ApiError(401, "bad_credentials")
    token, principal = result
    return LoginOut(token=token, role=principal.role, display_name=principal.display_name,
                    csrf_token=principal.csrf_token)


@router.post("/logout", status_code=204, responses={401: {}})
async def logout(request: Request, principal: PrincipalDep,
                 sessions: Annotated[StaffSessions, Depends(get_staff_sessions)]) -> None:
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.cookies.get("cc_session", "")
    await anyio.to_thread.run_sync(sessions.logout, token)


@router.get("/me", response_model=MeOut, responses={401: {}})
async def me(principal: PrincipalDep) -> MeOut:
    return MeOut(username=principal.username, display_name=principal.display_name, role=principal.role,
                 group_ids=sorted(principal.group_ids))
