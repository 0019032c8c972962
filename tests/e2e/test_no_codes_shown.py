"""No code ever shown to a user (issue 13 item 5): every page each role can open, the CSV exports and the main
JSON API answers are walked; the text a person reads (HTML without markup, scripts, attributes; CSV cells; the
``message`` of an error) must hold no raw identifier — a snake_case code (``finish_call_first``,
``fund_transfer``), a machine state word (``scheduled``, ``in_progress``) on a Chinese screen, or a
``key=value`` pair (``callback=2``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.services import admin
from callcenter.services.care.complaints import ComplaintService
from callcenter.services.staff_sessions import staff_principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuthThrottle
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

SNAKE = re.compile(r"(?<![\w./@-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/.@-])")
PAIR = re.compile(r"\b[a-z_]+=\d+")
STATE_WORDS = re.compile(r"\b(draft|scheduled|running|paused|finished|in_progress|wrap_up|logged_out|ready|"
                         r"talking|reserved|open|resolved|closed|pending|done|failed|exhausted)\b")

PAGES = {
    "agent": ["/agent", "/agent/evaluations"],
    "supervisor": ["/supervisor/wallboard", "/supervisor/campaigns", "/supervisor/campaigns/{campaign}",
                   "/supervisor/reports", "/supervisor/reports?by=agent", "/supervisor/reports?by=day",
                   "/supervisor/groups", "/supervisor/care/complaints", "/supervisor/care/callbacks",
                   "/supervisor/care/reminders", "/supervisor/quality", "/recordings"],
    "admin": ["/admin", "/admin/staff", "/admin/locks", "/admin/dnc", "/admin/bulletins", "/admin/codes",
              "/admin/audit", "/supervisor/wallboard", "/supervisor/campaigns"],
}
USERS = {"agent": "ag1", "supervisor": "sup1", "admin": "adm"}
CSVS = {"supervisor": ["/supervisor/reports.csv"], "admin": ["/admin/audit.csv"]}
# Screens issue 13 item 3 rebuilds (the campaign wizard's script titles, the reports' translated headers),
# another helper's work: walked by their own (for now expected to fail) test below, not hidden.
ELSEWHERE = {"/supervisor/campaigns", "/supervisor/campaigns/{campaign}", "/supervisor/reports.csv"}


class _Visible(HTMLParser):
    """The text a person sees: no <script>, <style>, <code> (an identifier an administrator types on purpose),
    <option value> or any attribute."""

    SKIP = {"script", "style", "code", "template"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    return parser.parts


def raw_codes(texts: list[str], lang: str) -> list[str]:
    found = []
    for text in texts:
        found += SNAKE.findall(text) + PAIR.findall(text)
        if lang == "zh-CN":
            found += STATE_WORDS.findall(text)
    return found


@pytest.fixture
def world(core: App) -> World:
    w = build(core)
    now = core.clock()
    adm = staff_principal(core.sessions, "adm")
    assert adm is not None
    run_in_transaction(core.sessions, lambda s: s.add(AuthThrottle(scope="login_user", subject="ag2", failures=7,
                                                                   last_failure_at=now)))
    admin.add_dnc(core, adm, "13912345678", reason="客户要求")
    admin.publish_bulletin(core, adm, lang="zh-CN", title="休市", text="明日休市。")
    ComplaintService.for_app(core).open(w.mine, "fund_transfer", "转账未到账", channel="agent")
    return w


def _walk(core: App, world: World, role: str, lang: str, elsewhere: bool) -> dict[str, list[str]]:
    client = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(client, USERS[role])
    client.cookies.set("cc_lang", lang)
    problems: dict[str, list[str]] = {}
    for path in PAGES[role]:
        if (path in ELSEWHERE) != elsewhere:
            continue
        url = path.format(campaign=world.campaign)
        r = client.get(url)
        assert r.status_code == 200, (role, url, r.status_code)
        codes = raw_codes(visible_text(r.text), lang)
        if codes:
            problems[url] = sorted(set(codes))
    for url in CSVS.get(role, []):
        if (url in ELSEWHERE) != elsewhere:
            continue
        r = client.get(url)
        assert r.status_code == 200
        codes = raw_codes(r.text.splitlines(), lang)
        if codes:
            problems[url] = sorted(set(codes))
    return problems


@pytest.mark.parametrize("role", list(PAGES))
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_no_page_shows_a_raw_code(core: App, world: World, role: str, lang: str) -> None:
    assert _walk(core, world, role, lang, elsewhere=False) == {}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_campaign_and_report_screens_show_no_raw_code(core: App, world: World, lang: str) -> None:
    assert _walk(core, world, "supervisor", lang, elsewhere=True) == {}


def test_api_errors_are_sentences(core: App, world: World) -> None:
    client = TestClient(create_app(core), raise_server_exceptions=False)
    answers = [client.get("/api/me"), client.get("/api/clients/1"),
               client.post("/api/login", json={"username": "x", "password": "y"}),
               client.post("/api/login", json={"username": 1}), client.get("/nowhere"),
               client.post("/api/admin/throttles/unlock", json={})]
    csrf = page_login(client, "ag1")
    answers += [client.get(f"/api/clients/{world.theirs}"), client.get("/api/admin/throttles"),
                client.post("/api/desk/state", json={"state": "paused", "reason": "nap"},
                            headers={"X-CSRF-Token": csrf})]
    for r in answers:
        assert r.status_code >= 400, r.request.url
        message = r.json()["error"]["message"]
        assert raw_codes([message], "zh-CN") == [] and re.search(r"[\u4e00-\u9fff]", message), (r.request.url, message)
        for field in r.json()["error"].get("fields", []):
            assert raw_codes([field["problem"]], "zh-CN") == [], field


def test_the_walker_catches_what_the_issue_saw() -> None:
    """The checks find the codes issue 13 reported, and pass sentences."""
    assert raw_codes(["操作失败：finish_call_first"], "zh-CN") == ["finish_call_first"]
    assert raw_codes(["已预约 callback=2"], "zh-CN") == ["callback=2"]
    assert raw_codes(["状态 scheduled"], "zh-CN") == ["scheduled"]
    assert raw_codes(["已排程", "2026-11-25 10:30", "ag1", "3900****0700", "a.b_c/d.csv"], "zh-CN") == []
