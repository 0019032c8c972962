"""Server-rendered screens (Jinja2) for agents and supervisors, their JSON actions, and live push (SSE).

``install(app)`` adds everything to the FastAPI app built by ``create_app``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from callcenter.web import live
from callcenter.web.pages import admin, agent, auth, controls, recordings, supervisor
from callcenter.web.pages.common import STATIC_DIR, LoginRequired, make_templates


def install(app: FastAPI) -> None:
    app.state.page_templates = make_templates()
    for router in (auth.router, agent.pages, agent.api, supervisor.router, live.router, recordings.router,
                   controls.api, admin.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)
