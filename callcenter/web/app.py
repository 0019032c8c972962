"""The FastAPI application factory. Routers are combined here; nothing is built at import time."""

from __future__ import annotations


from fastapi import APIRouter, FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter import __version__
from callcenter.bootstrap import App
from callcenter.i18n import t
from callcenter.web import errors
from callcenter.web.deps import make_staff_sessions
from callcenter.web.routes import admin_api, auth_api, clients_api, health, supervisor_api, transfers_api
from callcenter.web.routes import metrics as metrics_route


class BodyLimit:
    """Refuse oversized requests with 413 (by Content-Length, and by counting a streamed body). A plain ASGI
    middleware: streamed responses (SSE) pass straight through, unbuffered. (Security headers: SecurityHeaders.)"""

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

        await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(errors.error_body("request_too_large", t("api.request_too_large")), status_code=413)
        await response(scope, receive, send)


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HSTS = b"max-age=31536000; includeSubDomains"


class SecurityHeaders:
    """Headers on every response (a plain ASGI middleware, so SSE streams pass unbuffered):

    * ``Content-Security-Policy``: scripts and styles from our own origin only (the templates carry no inline
      script or handler; their sentences travel as a JSON data block), ``frame-ancestors 'none'``. A response
      that sets its own policy keeps it (the API docs page, whose policy names its nonce; its assets are shipped in static/apidocs).
    * ``Cache-Control: no-store`` on everything but ``/static``: pages and API answers carry client data.
    * ``Strict-Transport-Security`` only when the request came over https: the server's own TLS, or (with
      ``trust_forwarded_proto``) the ``X-Forwarded-Proto`` of the proxy in front. Over plain http it would be
      ignored at best and, on a misconfigured host, lock users out.
    """

    def __init__(self, app: ASGIApp, trust_forwarded_proto: bool, connect_extra: str = "") -> None:
        self.app = app
        self.trust_forwarded_proto = trust_forwarded_proto
        # the browser softphone's WebSocket to Asterisk (issue 18: softphone_ws_url) is one more connect-src
        self.csp = CSP.replace("connect-src 'self'", f"connect-src 'self' {connect_extra}") if connect_extra else CSP

    def _https(self, scope: Scope) -> bool:
        if scope.get("scheme") == "https":
            return True
        if self.trust_forwarded_proto:
            proto = dict(scope.get("headers", [])).get(b"x-forwarded-proto", b"")
            return proto.split(b",")[0].strip().lower() == b"https"
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(b"content-security-policy", self.csp.encode()), (b"x-content-type-options", b"nosniff"),
                 (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]
        if not scope.get("path", "").startswith("/static/"):
            extra.append((b"cache-control", b"no-store"))
        if self._https(scope):
            extra.append((b"strict-transport-security", HSTS))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                message = dict(message, headers=headers + [h for h in extra if h[0] not in names])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _ws_origin(url: str) -> str:
    """``wss://host:port`` of a WebSocket address (no path: CSP source), or "" for none / not ws(s)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc or any(c in parts.netloc for c in " ;'\""):
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _install_api_docs(app: FastAPI, mode: str) -> None:
    """/openapi.json, /docs and /redoc by the ``api_docs`` setting: "public", "staff" (a logged-in staff session
    or bearer token; a browser without one is sent to the login page) or "off" (no such routes)."""
    if mode == "off":
        return
    import secrets

    from fastapi import Depends
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    from callcenter.web.deps import current_principal
    from callcenter.web.pages.common import page_principal

    async def no_login() -> None:
        return None

    api_gate = Depends(current_principal if mode == "staff" else no_login)
    page_gate = Depends(page_principal if mode == "staff" else no_login)
    assets = "/static/apidocs"  # Swagger UI and ReDoc shipped in the package (static/apidocs/VENDORED.md): offline

    def with_nonce(html: HTMLResponse) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        body = bytes(html.body).decode().replace("<script>", f'<script nonce="{nonce}">')
        policy = (f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
                  f"img-src 'self' data:; connect-src 'self'; font-src 'self'; worker-src 'self' blob:; "
                  f"object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return HTMLResponse(body, headers={"Content-Security-Policy": policy})

    @app.get("/openapi.json", include_in_schema=False, dependencies=[api_gate])
    async def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[page_gate])
    async def swagger() -> HTMLResponse:
        return with_nonce(get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} · API",
                                              swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                                              swagger_css_url=f"{assets}/swagger-ui.css",
                                              swagger_favicon_url=f"{assets}/favicon-32x32.png"))

    @app.get("/redoc", include_in_schema=False, dependencies=[page_gate])
    async def redoc() -> HTMLResponse:
        return with_nonce(get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} · API",
                                         redoc_js_url=f"{assets}/redoc.standalone.js",
                                         redoc_favicon_url=f"{assets}/favicon-32x32.png", with_google_fonts=False))


def _twilio_voice_router(core: App) -> APIRouter:
    """The hotline over Twilio webhooks, every request's signature checked against the configured auth token.
    Only mounted when a token is configured (``create_app``): without one there are no Twilio routes at all."""
    from callcenter.services.ivr.flow import load_flow
    from callcenter.adapters.ivr.twilio_voice import make_router
    from callcenter.services.ivr.store_backend import StoreCallStateStore
    from callcenter.bootstrap import prompt_files, prompt_signer

    s = core.settings
    rest = recorder = None
    if s.record_ivr and core.recordings is not None:  # sessions recorded on Twilio (services.ivr.recording)
        from callcenter.bootstrap import twilio_client
        from callcenter.services.ivr.recording import IvrRecorder

        rest, recorder = twilio_client(s), IvrRecorder(core.recordings, core.sessions)
    # the prompts are the rendered files (<Play> of their signed URLs, served by web/routes/prompts.py), as on AGI
    return make_router(core.ivr, load_flow(s.flows_path / "hotline.yaml"), s.twilio_auth_token.get_secret_value(),
                       s.twilio_public_url, StoreCallStateStore(core.sessions, core.clock),
                       limits={"pin_failures": s.ivr_pin_attempts_per_call}, replay_wait_s=s.twilio_replay_wait_s,
                       clock=core.clock, calls_line=core.twilio_line, prompt_files=prompt_files(s),
                       prompt_signer=prompt_signer(s), action_inline_s=s.twilio_action_inline_s, rest=rest,
                       recorder=recorder)


def create_app(core: App) -> FastAPI:
    # the API docs are our own routes, behind the api_docs setting (_install_api_docs)
    app = FastAPI(title="证券呼叫中心 · Brokerage call centre", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.core = core
    app.state.staff_sessions = make_staff_sessions(core)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=core.settings.max_request_bytes)
    app.add_middleware(SecurityHeaders, trust_forwarded_proto=core.settings.trust_forwarded_proto,  # outermost
                       connect_extra=_ws_origin(core.settings.softphone_ws_url))
    _install_api_docs(app, core.settings.api_docs)
    for router in (health.router, auth_api.router, clients_api.router, transfers_api.router, admin_api.router,
                   supervisor_api.router):
        app.include_router(router)
    app.include_router(metrics_route.router)  # GET /metrics (Prometheus): admin or loopback
    if core.settings.twilio_configured:
        app.include_router(_twilio_voice_router(core))
        if core.twilio_line is not None:  # the Twilio telephony backend's callbacks (twilio_webhooks.py)
            from callcenter.adapters.telephony.twilio_webhooks import make_router as calls_router

            app.include_router(calls_router(core.twilio_line, core.settings.twilio_auth_token.get_secret_value(),
                                            core.settings.twilio_public_url))
    if core.settings.aliyun_sms_report_token.get_secret_value():  # Aliyun's delivery receipts (SmsReport push)
        from callcenter.web.routes.sms_receipts import make_router as sms_receipts_router

        app.include_router(sms_receipts_router(core))
    if core.settings.twilio_configured or core.settings.prompt_url_key.get_secret_value():
        from callcenter.bootstrap import prompt_files, prompt_signer
        from callcenter.web.routes.prompts import make_router as prompts_router

        app.include_router(prompts_router(prompt_files(core.settings), prompt_signer(core.settings)))
    __import__("callcenter.web.pages", fromlist=["install"]).install(app)  # agent + supervisor screens, SSE
    app.include_router(__import__("callcenter.web.pages.care", fromlist=["router"]).router)  # client care
    return app
