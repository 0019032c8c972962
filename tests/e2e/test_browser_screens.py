"""Real headless Chromium (Debian's /usr/bin/chromium through Playwright) against the real server on loopback:
an agent logs in, goes ready, gets a simulated call, sees the screen pop, walks a script branch, sets a
disposition and books a callback; a supervisor creates, schedules and starts a campaign and watches the wall
board change. Screenshots go to test-artifacts/screenshots/ (and docs/screenshots/ with CALLCENTER_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.domain.events import ContactOpened
from callcenter.parts.scheduler import CampaignScheduler
from callcenter.services import desk
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import Attempt, Callback, Campaign, Lead
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, World, build

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


class Server:
    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.create_task(self._watch())
        self.loop.run_until_complete(self.server.serve())

    async def _watch(self) -> None:
        while not self.server.started:
            await asyncio.sleep(0)
        self.ready.set()

    def __enter__(self) -> "Server":
        self.thread.start()
        assert self.ready.wait(20)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def call(self, fn: Any, *args: Any) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn, *args)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextlib.contextmanager
def serving_with_engine(core: Any, pbx: Any, engine: Any) -> Iterator[Server]:
    """The web app on a real port with a DialerEngine and its PBX running on the server's own loop
    (as `callcenter run` has them); the engine is stopped when the block ends, whatever happened in it."""
    with Server(create_app(core)) as srv:
        stop: list[asyncio.Event] = []

        async def run_engine() -> None:
            stop.append(asyncio.Event())
            core.bus.bind_loop(asyncio.get_running_loop())
            await pbx.start()
            await engine.run(stop[0])

        srv.call(lambda: srv.loop.create_task(run_engine()))  # type: ignore[union-attr]
        try:
            yield srv
        finally:
            if stop:
                srv.call(stop[0].set)


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _csp_violations(page: Any) -> list[str]:
    """What the browser refused under the page's Content-Security-Policy (reported on the console)."""
    seen: list[str] = []
    page.on("console", lambda msg: seen.append(msg.text) if "Content Security Policy" in msg.text else None)
    return seen


def _save(page: Any, name: str, artifacts: Path) -> None:
    """Screenshots go to the test artifacts (test-artifacts/screenshots/); with CALLCENTER_UPDATE_SCREENSHOTS=1
    they also replace the ones the README shows (docs/screenshots/)."""
    artifacts.mkdir(parents=True, exist_ok=True)
    target = artifacts / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000  # a real rendered page, not an empty image
    if os.environ.get("CALLCENTER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SCREENSHOTS / name)


def _login(page: Any, base: str, user: str) -> None:
    page.goto(base + "/login")
    page.fill('input[name="username"]', user)
    page.fill('input[name="password"]', PASSWORDS[user])
    page.click("#login-submit")


def test_agent_takes_a_call_walks_the_script_and_books_a_callback(core: App, browser: Any, tmp_path: Path) -> None:
    world: World = build(core)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.click("#btn-ready")
        page.wait_for_selector("#statusbar[data-state='ready']")  # selectors, not eval: the CSP forbids it
        page.wait_for_selector("#live-indicator.ok")
        # the dialler connects a call: it opens the desk contact, then announces it
        ag1 = world.staff["ag1"]
        facts = desk.ContactFacts(client_id=world.mine, attempt_id=world.attempt, lead_id=world.lead,
                                  campaign_id=world.campaign, attempt_no=2)
        contact_id = run_in_transaction(core.sessions, lambda s: desk.open_contact(s, ag1, facts, core.clock()))
        srv.call(core.bus.emit, ContactOpened(staff_id=ag1, contact_id=contact_id, client_id=world.mine,
                                              attempt_id=world.attempt, campaign_id=world.campaign))
        page.wait_for_selector("#client-name", timeout=5000)
        assert page.inner_text("#client-name").startswith("测试")
        assert "第 2 次拨打" in page.inner_text("#attempt-no")
        assert page.get_attribute("#script-step", "data-step") == "opening"
        page.click('button.answer[data-answer="listening"]')
        page.wait_for_selector('#script-step[data-step="why_left"]')
        page.reload()  # a screen (re)opened mid-call shows the open call from GET /api/desk/status
        page.wait_for_selector('#script-step[data-step="why_left"]', timeout=5000)
        page.wait_for_selector("#statusbar[data-state='talking']")
        page.fill("#note", "客户因搬家销户，愿意了解远程交易")
        _save(page, "agent-screen.png", ARTIFACTS)
        page.fill("#callback-at", "2026-12-02T10:30")
        page.check('input[name="cb-who"][value="agent"]')
        page.click('#dispositions button[data-disposition="callback"]')
        page.wait_for_selector("#closed")
        page.wait_for_selector("#statusbar[data-state='wrap_up']")
        assert blocked == []  # the whole screen works under the strict Content-Security-Policy

    def check(s: Any) -> None:
        cb = s.execute(select(Callback)).scalar_one()
        assert cb.agent_only is True and cb.owner_id == world.staff["ag1"] and cb.client_id == world.mine
        assert cb.due_at.isoformat().startswith("2026-12-02T02:30")  # 10:30 Shanghai
        att = s.get(Attempt, world.attempt)
        assert att.disposition == "callback" and "搬家" in att.notes

    run_in_transaction(core.sessions, check)


def test_supervisor_creates_schedules_starts_a_campaign_and_watches_the_wall_board(core: App, browser: Any,
                                                                                   tmp_path: Path) -> None:
    world = build(core)
    sched = core.scheduler  # built once by the composition root; started here as the scheduler part does
    assert sched is not None
    sched.start()
    try:
        with Server(create_app(core)) as srv:
            sched_loop_bound = threading.Event()
            srv.call(lambda: (core.bus.bind_loop(asyncio.get_running_loop()), sched_loop_bound.set()))
            assert sched_loop_bound.wait(5)
            page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
            blocked = _csp_violations(page)
            _login(page, srv.url, "sup1")
            page.wait_for_url("**/supervisor/wallboard")
            page.goto(srv.url + "/supervisor/campaigns")
            page.fill('#new-campaign input[name="name"]', "权证到期提醒")
            page.select_option('#new-campaign select[name="kind"]', "reminder")
            page.select_option('#new-campaign select[name="script_id"]', "reminder")
            page.check(f'#new-campaign input[name="group_ids"][value="{world.g1}"]')
            page.click('#new-campaign button[type="submit"]')
            page.wait_for_url("**/supervisor/campaigns/*")
            campaign_id = int(page.url.rsplit("/", 1)[1])
            page.fill("#schedule-at", "2027-01-04T09:30")
            page.click("#schedule-add")
            page.wait_for_selector("#schedule-list tbody tr")
            assert "2027-01-04 09:30" in page.inner_text("#schedule-list")
            assert sched.jobs(campaign_id)[0].action == "campaign_start"
            assert "已排程" in page.inner_text("#campaign-state")
            page.click("#campaign-start")
            page.wait_for_selector("#campaign-state")
            assert "进行中" in page.inner_text("#campaign-state")

            core.parts.set("web", "running")  # the engine's parts, as the runtime supervisor reports them
            core.parts.set("dialler", "restarting", error="AMI login refused by 127.0.0.1:5038 (Authentication failed)")
            page.goto(srv.url + "/supervisor/wallboard")
            row = f'#wb-campaigns tr[data-campaign="{campaign_id}"]'
            page.wait_for_selector(row)
            assert page.inner_text(row + " td:nth-child(3)") == "0"
            assert "外呼拨号 重启中 (AMI login refused" in page.inner_text("#wb-parts")
            core.parts.set("dialler", "running")  # the dialler is back: the board's next snapshot says so
            page.wait_for_selector("[data-part=dialler]:text-is('外呼拨号 运行中')")  # a selector: the CSP forbids eval

            def dial(s: Any) -> None:  # the dialler places two calls, one connects
                now = core.clock()
                for n, connected in ((1, True), (2, False)):
                    lead = Lead(campaign_id=campaign_id, phone=f"+861391234567{n}", status="in_progress", extra={},
                                created_at=now, updated_at=now)
                    s.add(lead)
                    s.flush()
                    s.add(Attempt(lead_id=lead.id, campaign_id=campaign_id, phone=lead.phone, dialled_at=now,
                                  answered_at=now if connected else None, connected_at=now if connected else None,
                                  outcome="human" if connected else None))

            run_in_transaction(core.sessions, dial)
            srv.call(core.bus.publish, "wallboard", {"type": "attempt"})
            page.wait_for_selector(f"{row} td:nth-child(3):text-is('2')")
            assert page.inner_text(row + " td:nth-child(5)") == "50.0%"
            assert page.inner_text("#wb-ringing") == "1"  # the new unanswered call
            assert page.inner_text("#wb-connected") == "2"  # the new one + the world's call to ag1
            _save(page, "wallboard.png", ARTIFACTS)
            assert blocked == []
    finally:
        sched.shutdown()
    assert run_in_transaction(core.sessions, lambda s: s.get(Campaign, campaign_id).state) == "running"


def test_campaign_form_defaults_the_script_by_kind_and_counts_a_segment_live(core: App, browser: Any,
                                                                             tmp_path: Path) -> None:
    """Issue 13: the campaign wizard in Chromium under the page's CSP (scripts from /static only)."""
    from datetime import timedelta

    from callcenter.services.dialer.campaigns import create_campaign
    from callcenter.store.models import Client

    world: World = build(core)
    cid = create_campaign(core, name="老客户", kind="former_clients", script_id="win_back", group_ids=[world.g1])
    today = core.clock().date()

    def close_one(s: Any) -> None:
        c = s.execute(select(Client).order_by(Client.id).limit(1)).scalar_one()
        c.status, c.closed_on = "closed", today - timedelta(days=30)

    run_in_transaction(core.sessions, close_one)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "sup1")
        page.goto(srv.url + "/supervisor/campaigns")
        page.select_option('select[name="kind"]', "dormant")
        assert page.input_value('select[name="script_id"]') == "dormant"
        page.select_option('select[name="kind"]', "cold_leads")
        assert page.input_value('select[name="script_id"]') == "cold_call"
        page.goto(srv.url + f"/supervisor/campaigns/{cid}")
        page.wait_for_selector("#segment-count:text-is('1')")
        assert page.is_hidden('label[data-for="holders"]') and page.is_visible('label[data-for="former"]')
        page.select_option('select[name="segment"]', "holders")
        page.fill('input[name="code"]', "12ab")
        page.wait_for_selector("#segment-count:has-text('6 位数字')")  # why, in words
        _save(page, "campaign-wizard.png", ARTIFACTS)
        assert blocked == []
