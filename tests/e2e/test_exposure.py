"""What the web service exposes (hardening finding 14): security headers on every response, a CSP the pages
live with (no inline script), HSTS only behind TLS, no-store on client data, the API docs behind a staff login
by the ``api_docs`` setting, and no ``secret_key`` setting that nothing uses."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, World, build, page_login

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "callcenter" / "web" / "templates"


@pytest.fixture
def world(core: App) -> World:
    return build(core)


def app_with(core: App, **settings: object) -> TestClient:
    tuned = replace(core, settings=core.settings.model_copy(update=settings))
    return TestClient(create_app(tuned), raise_server_exceptions=False)


def bearer(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_every_response_carries_a_strict_csp_and_no_store(core: App, world: World) -> None:
    client = TestClient(create_app(core), raise_server_exceptions=False)
    sup = bearer(client, "sup1")
    for r in (client.get("/login"), client.get("/api/me"), client.get(f"/api/clients/{world.mine}", headers=sup),
              client.post("/api/login", json={"username": "x", "password": "y"}), client.get("/nowhere"),
              client.post("/api/login", content=b"x" * (core.settings.max_request_bytes + 1))):
        csp = r.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["cache-control"] == "no-store", r.request.url
        assert r.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in r.headers  # plain http
    static = client.get("/static/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")


def test_pages_with_client_data_are_no_store(core: App, world: World) -> None:
    client = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(client, "ag1")
    for path in ("/agent", f"/agent/care/clients/{world.mine}"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store", path


def test_hsts_only_over_https_or_a_trusted_proxy(core: App) -> None:
    over_tls = TestClient(create_app(core), base_url="https://testserver").get("/login")
    assert over_tls.headers["strict-transport-security"].startswith("max-age=")
    forwarded = {"X-Forwarded-Proto": "https"}
    assert "strict-transport-security" not in TestClient(create_app(core)).get("/login", headers=forwarded).headers
    trusted = app_with(core, trust_forwarded_proto=True)
    assert trusted.get("/login", headers=forwarded).headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in trusted.get("/login").headers


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.json_blocks: list[str] = []
        self._in_json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "script":
            if names.get("type") == "application/json":
                self._in_json = True
                self.json_blocks.append("")
            elif not names.get("src"):
                self.problems.append("inline <script>")
        for name in ("href", "src", "action"):
            if (names.get(name) or "").lower().startswith("javascript:"):
                self.problems.append(f"{name}=javascript:")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json = False

    def handle_data(self, data: str) -> None:
        if self._in_json:
            self.json_blocks[-1] += data


def test_rendered_screens_have_no_inline_script_and_their_texts_are_json(core: App, world: World) -> None:
    agent = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(agent, "ag1")
    sup = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(sup, "sup1")
    pages = [agent.get("/agent"), sup.get("/supervisor/wallboard"), sup.get("/supervisor/campaigns"),
             sup.get("/supervisor/care/complaints"), agent.get("/login")]
    blocks: dict[str, int] = {}
    for r in pages:
        assert r.status_code == 200, r.request.url
        parser = _Scripts()
        parser.feed(r.text)
        assert parser.problems == [], r.request.url
        for block in parser.json_blocks:
            assert isinstance(json.loads(block), dict)
            blocks[r.request.url.path] = blocks.get(r.request.url.path, 0) + 1
    # data only: the agent screen's and the wall board's sentences, the campaign form's kind -> script map
    assert blocks.get("/agent", 0) >= 1 and blocks.get("/supervisor/wallboard", 0) >= 1
    assert blocks.get("/supervisor/campaigns") == 1 and "/login" not in blocks


def test_no_template_has_inline_script_or_handlers() -> None:
    problems = []
    for path in TEMPLATES.rglob("*.html"):
        source = path.read_text(encoding="utf-8")
        for m in re.finditer(r"<script\b([^>]*)>", source):
            if "src=" not in m.group(1) and 'type="application/json"' not in m.group(1):
                problems.append(f"{path.name}: {m.group(0)}")
        problems += [f"{path.name}: {m.group(0)}" for m in re.finditer(r"\s(on[a-z]+|style)\s*=", source)]
    assert problems == []


def test_api_docs_need_a_staff_login_by_default(core: App, world: World) -> None:
    assert core.settings.api_docs == "staff"
    client = TestClient(create_app(core), raise_server_exceptions=False)
    assert client.get("/openapi.json").status_code == 401
    for path in ("/docs", "/redoc"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    agent = bearer(client, "ag1")
    schema = client.get("/openapi.json", headers=agent)
    assert schema.status_code == 200 and "/api/transfers" in schema.json()["paths"]
    page_login(client, "sup1")  # the browser's cookie session
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    nonce = re.search(r"'nonce-([^']+)'", docs.headers["content-security-policy"]).group(1)  # type: ignore[union-attr]
    assert "<script>" not in docs.text and f'<script nonce="{nonce}">' in docs.text
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]


def test_api_docs_public_or_off_by_the_setting(core: App) -> None:
    public = app_with(core, api_docs="public")
    assert public.get("/openapi.json").status_code == 200 and public.get("/docs").status_code == 200
    off = app_with(core, api_docs="off")
    assert [off.get(p).status_code for p in ("/openapi.json", "/docs", "/redoc")] == [404, 404, 404]


def test_no_secret_key_setting_that_nothing_uses(core: App) -> None:
    """The sessions are server-side (random tokens, only their hash stored; the CSRF token is per session in the
    database): no state is signed, so a secret_key setting would be a promise the code does not keep."""
    assert not hasattr(core.settings, "secret_key")
    assert "SECRET_KEY" not in (ROOT / "README.md").read_text(encoding="utf-8")
