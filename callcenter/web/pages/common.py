"""Shared bits of the HTML pages: templates with the locale, the page principal (redirect to the login page
instead of a JSON 401; the CSRF token of a posted form), cookies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from callcenter.domain.money import fen_to_yuan
from callcenter.domain.masking import mask_digits_in_text
from callcenter.i18n import has, t
from callcenter.services.staff_sessions import Principal
from callcenter.web.deps import SAFE_METHODS, current_principal
from callcenter.web.errors import ApiError

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LANG_COOKIE = "cc_lang"
LOGIN_CSRF_COOKIE = "cc_login_csrf"


class LoginRequired(Exception):
    pass


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.globals["t"] = t
    env.filters["yuan"] = lambda fen: "—" if fen is None else f"{fen_to_yuan(int(fen)):,}"
    env.filters["signed_yuan"] = lambda fen: "—" if fen is None else f"{fen_to_yuan(int(fen)):+,}"
    # 万元 (ten thousand yuan), the unit brokerages report group assets in
    env.filters["signed_wan"] = lambda fen: "—" if fen is None else f"{Decimal(int(fen)) / 1_000_000:+,.2f}"
    env.filters["money"] = lambda v: f"{Decimal(str(v)):,.2f}"
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f}%"
    return templates


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    return "en" if lang == "en" else "zh-CN"


def tz_of(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.core.settings.timezone)


async def page_principal(request: Request) -> Principal:
    """Like the API principal, but: the CSRF token may come in a posted form field ``csrf``, and an
    unauthenticated browser is sent to the login page."""
    if request.method not in SAFE_METHODS:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            token = form.get("csrf")
            request.state.csrf_form_token = token if isinstance(token, str) else ""
    try:
        return await current_principal(request)
    except ApiError as exc:
        if exc.status == 401 and request.method in SAFE_METHODS:
            raise LoginRequired() from None
        raise


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def roles(*allowed: str) -> Any:
    async def check(principal: PagePrincipal) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, "forbidden")
        return principal

    return Depends(check)


def render(request: Request, name: str, principal: Principal | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    lang = lang_of(request)
    templates: Jinja2Templates = request.app.state.page_templates
    return templates.TemplateResponse(request, name, {"lang": lang, "_": lambda key, **p: t(f"web.{key}", lang, **p),
                                                      "principal": principal, **ctx}, status_code=status_code)


def login_redirect() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def parts_line(core: Any, lang: str, tz: ZoneInfo) -> list[dict[str, str]]:
    """The wall board's "parts" line: each engine part with its state in words (and why, when it is not running),
    from the runtime supervisor's board. Empty when the engine's parts are not run by ``callcenter run``."""
    out = []
    for name, part in core.parts.snapshot().items():
        state = str(part["state"])
        since = datetime.fromisoformat(str(part["since"])).astimezone(tz).strftime("%H:%M:%S")
        out.append({"name": name, "label": t(f"web.parts.names.{name}", lang) if has(f"web.parts.names.{name}") else name,
                    "state": state, "state_label": t(f"web.parts.state.{state}", lang),
                    "since": t("web.parts.since", lang, time=since),
                    "error": mask_digits_in_text(str(part.get("error", "")))})
    return out
