"""The FastAPI application factory. Routers are combined here; nothing is built at import time."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter import __version__
from callcenter.bootstrap import App
from callcenter.i18n import t
from callcenter.web import errors
from callcenter.web.deps import make_staff_sessions
from callcenter.web.routes import admin_api, auth_api, clients_api, health, transfers_api


class BodyLimit:
    """Refuse oversized requests with 413 (by Content-Length, and by counting a streamed body), and add security
    headers. A plain ASGI middleware: streamed responses (SSE) pass straight through, unbuffered."""

    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"same-origin")]

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # A streamed body without a length: read it here (bounded), refuse it whole, or replay it.
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message, headers=list(message.get("headers", []))
                               + [h for h in self.HEADERS if h[0] not in names])
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(errors.error_body("request_too_large", t("api.request_too_large")), status_code=413)
        await response(scope, receive, send)


def _twilio_voice_router(core: App):
    """The hotline over Twilio webhooks, every request's signature checked against the configured auth token.
    Only mounted when a token is configured (``create_app``): without one there are no Twilio routes at all."""
    from callcenter.ivr.flow import load_flow
    from callcenter.ivr.twilio_voice import make_router
    from callcenter.services.ivr_backend import StoreCallStateStore

    s = core.settings
    return make_router(core.ivr, load_flow(s.flows_path / "hotline.yaml"), s.twilio_auth_token.get_secret_value(),
                       s.twilio_public_url, StoreCallStateStore(core.sessions, core.clock),
                       limits={"pin_failures": s.ivr_pin_attempts_per_call}, replay_wait_s=s.twilio_replay_wait_s,
                       clock=core.clock)


def create_app(core: App) -> FastAPI:
    app = FastAPI(title="证券呼叫中心 · Brokerage call centre", version=__version__)
    app.state.core = core
    app.state.staff_sessions = make_staff_sessions(core)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=core.settings.max_request_bytes)
    for router in (health.router, auth_api.router, clients_api.router, transfers_api.router, admin_api.router):
        app.include_router(router)
    if core.settings.twilio_configured:
        app.include_router(_twilio_voice_router(core))
    __import__("callcenter.web.pages", fromlist=["install"]).install(app)  # agent + supervisor screens, SSE
    app.include_router(__import__("callcenter.web.pages.care", fromlist=["router"]).router)  # client care
    hooks = cast("list[Callable[[FastAPI], None]]", core.extras.get("web_routers", []))
    for hook in hooks:  # other areas add their routers through bootstrap
        hook(app)
    return app
