"""Login and logout pages: a fresh session per login in an HttpOnly, SameSite=Strict cookie (Secure behind
TLS); the login form itself carries a double-submit CSRF token."""

from __future__ import annotations

from typing import Annotated

import hmac
import secrets

import anyio.to_thread
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callcenter.services.staff_sessions import LoginThrottled, StaffSessions
from callcenter.web.deps import SESSION_COOKIE, client_ip, current_principal
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import LANG_COOKIE, LOGIN_CSRF_COOKIE, PagePrincipal, render, secure_cookie
from callcenter.web.text import Text

router = APIRouter(include_in_schema=False)


def home_for(role: str) -> str:
    return "/agent" if role == "agent" else "/qa" if role == "qa" else "/supervisor/wallboard"


@router.get("/", response_class=HTMLResponse)
async def root(request: Request) -> Response:
    try:
        principal = await current_principal(request)
    except ApiError:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(principal.role), status_code=303)


def _login_page(request: Request, error: str = "", status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status_code=status_code, error=error, csrf=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookie(request),
                        path="/login")
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(*, request: Request, username: Annotated[Text, Form(max_length=64)], password: Annotated[Text, Form(max_length=256)],
                       csrf: Annotated[Text, Form(max_length=100)] = "") -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        return _login_page(request, "login.expired", 403)
    core = request.app.state.core
    sessions: StaffSessions = request.app.state.staff_sessions
    try:
        result = await anyio.to_thread.run_sync(sessions.login, username, password, core.clock(), client_ip(request))
    except LoginThrottled as exc:
        return render(request, "login.html", None, status_code=429, error="login.throttled",
                      minutes=max(1, exc.retry_after_s // 60 + 1), csrf="")
    if result is None:
        return _login_page(request, "login.bad_credentials", 401)
    token, principal = result
    response = RedirectResponse(home_for(principal.role), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookie(request),
                        max_age=core.settings.session_absolute_hours * 3600, path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, principal: PagePrincipal) -> Response:
    sessions: StaffSessions = request.app.state.staff_sessions
    await anyio.to_thread.run_sync(sessions.logout, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{lang}")
async def switch_lang(lang: Annotated[Text, Path(max_length=16)], request: Request) -> Response:
    back = request.headers.get("referer", "/")
    target = back if back.startswith(str(request.base_url)) else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(LANG_COOKIE, "en" if lang == "en" else "zh-CN", samesite="strict", httponly=True,
                        max_age=365 * 86400)
    return response
