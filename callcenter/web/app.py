"""The FastAPI application factory. Routers are combined here; nothing is built at import time."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from callcenter import __version__
from callcenter.bootstrap import App
from callcenter.i18n import t
from callcenter.web import errors
from callcenter.web.deps import make_staff_sessions
from callcenter.web.routes import auth_api, clients_api, health, transfers_api


class BodyLimit(BaseHTTPMiddleware):
    """Refuse oversized requests (413) before reading them, by Content-Length and by streamed size."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        too_big = JSONResponse(errors.error_body("request_too_large", t("api.request_too_large")), status_code=413)
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return too_big
        elif request.method in ("POST", "PUT", "PATCH"):
            received = 0
            chunks = []
            async for chunk in request.stream():
                received += len(chunk)
                if received > self.max_bytes:
                    return too_big
                chunks.append(chunk)
            body = b"".join(chunks)

            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": body, "more_body": False}

            request = Request(request.scope, receive)
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _twilio_voice_router(core: App):  # type: ignore[no-untyped-def]
    """The hotline over Twilio webhooks; without a configured auth token every request fails validation (403)."""
    from callcenter.ivr.flow import FLOWS_DIR, load_flow
    from callcenter.ivr.twilio_voice import make_router
    from callcenter.services.ivr_backend import StoreCallStateStore

    s = core.settings
    return make_router(core.ivr, load_flow(FLOWS_DIR / "hotline.yaml"), s.twilio_auth_token.get_secret_value(),
                       s.twilio_public_url, StoreCallStateStore(core.sessions, core.clock),
                       limits={"pin_failures": s.ivr_pin_attempts_per_call})


def create_app(core: App) -> FastAPI:
    app = FastAPI(title="证券呼叫中心 · Brokerage call centre", version=__version__)
    app.state.core = core
    app.state.staff_sessions = make_staff_sessions(core)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=core.settings.max_request_bytes)
    for router in (health.router, auth_api.router, clients_api.router, transfers_api.router):
        app.include_router(router)
    app.include_router(_twilio_voice_router(core))
    __import__("callcenter.web.pages", fromlist=["install"]).install(app)  # agent + supervisor screens, SSE
    for hook in core.extras.get("web_routers", []):  # other areas add their routers through bootstrap
        hook(app)  # type: ignore[operator]
    return app
