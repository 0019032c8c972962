"""FastAPI dependencies: the wired App, the current staff member, role checks, CSRF."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from callcenter.bootstrap import App
from callcenter.services.staff_sessions import Principal, StaffSessions
from callcenter.services.throttles import ThrottlePolicies
from callcenter.web.errors import ApiError

SESSION_COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_core(request: Request) -> App:
    return request.app.state.core


CoreDep = Annotated[App, Depends(get_core)]


def get_staff_sessions(request: Request) -> StaffSessions:
    return request.app.state.staff_sessions


def make_staff_sessions(core: App) -> StaffSessions:
    return StaffSessions(core.sessions, idle=timedelta(minutes=core.settings.session_idle_minutes),
                         absolute=timedelta(hours=core.settings.session_absolute_hours),
                         policies=ThrottlePolicies.from_settings(core.settings))


def client_ip(request: Request) -> str:
    """The address the request came from (uvicorn resolves X-Forwarded-For from trusted proxies only)."""
    return request.client.host if request.client else ""


async def current_principal(request: Request) -> Principal:
    """Bearer token (API clients) or session cookie (browser; then unsafe methods need the CSRF token)."""
    core: App = request.app.state.core
    sessions: StaffSessions = request.app.state.staff_sessions
    auth = request.headers.get("authorization", "")
    via_cookie = False
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    else:
        token = request.cookies.get(SESSION_COOKIE, "")
        via_cookie = True
    if not token:
        raise ApiError(401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    import anyio.to_thread

    principal = await anyio.to_thread.run_sync(sessions.resolve, token, core.clock())
    if principal is None:
        raise ApiError(401, "unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent:
            form_token = getattr(request.state, "csrf_form_token", "")
            sent = form_token or ""
        if not sent or not hmac.compare_digest(sent, principal.csrf_token):
            raise ApiError(403, "csrf_failed")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise ApiError(403, "forbidden")
        return principal

    return check
