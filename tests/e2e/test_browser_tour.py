"""Every supervisor, QA and client-care screen on the demo brokerage (``demo seed``: 60 clients, six months of
group history, the demo campaigns, a simulated campaign's calls, complaints), in Debian's real headless Chromium
at 1366×768 against the real server on loopback, as supervisor1 would walk them: each renders under the strict
Content-Security-Policy with its figures in words and units, and each is photographed for the README
(``docs/screenshots/`` with CALLCENTER_UPDATE_SCREENSHOTS=1, else test-artifacts/screenshots/)."""

from __future__ import annotations

import array
import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callcenter.adapters.recordings_simulated import wav_bytes
from callcenter.bootstrap import App
from callcenter.demo.campaign_simulation import run_simulated_campaign
from callcenter.demo.seed import DEMO_LOGINS, seed
from callcenter.demo.seed_campaigns import seed_campaigns
from callcenter.domain import quality as qrules
from callcenter.domain.access import Actor
from callcenter.services import quality
from callcenter.services.care.complaints import ComplaintService
from callcenter.store.db import run_in_transaction
from callcenter.services.dialer import campaigns as dialer
from callcenter.store.models import Client, Staff
from callcenter.store.models.dialer import Campaign, Lead
from callcenter.web.app import create_app
from tests.factories import make_staff
from tests.e2e.test_browser_screens import ARTIFACTS, Server, _csp_violations, _save, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = {name: pw for name, pw, _ in DEMO_LOGINS}
# a code or an identifier a person should never read (the no-codes test walks every page for these in full)
RAW = re.compile(r"\b(former_clients|cold_leads|win_back|cold_call|appointment_booked|not_interested|scheduled|"
                 r"in_progress|fund_transfer|None|null|undefined|NaN)\b")


def _login(page: Any, base: str, user: str) -> None:
    page.goto(base + "/login")
    page.fill('input[name="username"]', user)
    page.fill('input[name="password"]', PASSWORD[user])
    page.click("#login-submit")


def _visible_text(page: Any) -> str:
    return str(page.inner_text("main") if page.locator("main").count() else page.inner_text("body"))


def _grade_some_calls(core: App) -> str:
    """A QA member grades three of agent01's recorded calls on a form of the supervisor's (one
    fails a critical item and its agent disputes it), so the quality page has scores, a form and a dispute to
    show. Returns the display name of the graded agent."""
    sup = run_in_transaction(core.sessions, lambda s: s.execute(
        select(Staff.id).where(Staff.username == "supervisor1")).scalar_one())
    qa = Actor.staff("qa", make_staff(core, "qa-tour", "pw-qa-tour-1", "qa"))
    items = qrules.parse_form_lines("开场白规范 | yes_no | 20\n身份核实 | yes_no | 30 | critical\n风险揭示 | scale | 50 | | 5")
    form = run_in_transaction(core.sessions, lambda s: quality.create_form(
        s, Actor.staff("supervisor", sup), "回访质检表", items, 80.0, core.clock()))
    agent, clients = run_in_transaction(core.sessions, lambda s: (
        s.execute(select(Staff.id).where(Staff.username == "agent01")).scalar_one(),
        list(s.execute(select(Client.id).order_by(Client.id).limit(3)).scalars())))
    recs = []
    for i, client in enumerate(clients):  # three of agent01's calls, recorded (3 s of silence each)
        rid = core.recordings.start(f"tour-{i}", agent_id=agent, client_id=client)
        core.recordings.stop(rid, audio=wav_bytes(array.array("h", bytes(2 * 8000 * 3))))
        recs.append((rid, agent))
    tz = ZoneInfo(core.settings.timezone)
    failed = 0
    for rid, _ in recs:
        answers = {"i1": True, "i2": rid != recs[0][0], "i3": 4}
        ev = run_in_transaction(core.sessions, lambda s, rid=rid, answers=answers: quality.evaluate(
            s, core.recordings, qa, rid, form, answers, "", core.clock(), tz).id)
        failed = failed or ev
    me = Actor.staff("agent", agent, frozenset())
    run_in_transaction(core.sessions, lambda s: quality.dispute(s, me, failed, "客户已在IVR验证过身份", core.clock()))
    return str(run_in_transaction(core.sessions, lambda s: s.get(Staff, agent).display_name))


def test_every_supervisor_screen_on_the_demo_brokerage(core: App, browser: Any) -> None:  # noqa: F811
    today = date(2026, 11, 25)  # the suite's clock: a Wednesday, 10:30 in Shanghai
    assert seed(core.sessions, clients=60, today=today) is not None
    seed_campaigns(core, today=today, cold_leads=20)
    with ThreadPoolExecutor(1) as pool:  # its own event loop (Playwright's runs in this thread)
        pool.submit(lambda: asyncio.run(run_simulated_campaign(core, agents=3, leads=30, seed=3))).result(300)
    complaints = ComplaintService.for_app(core)
    clients = run_in_transaction(core.sessions, lambda s: list(s.execute(select(Client.id).order_by(Client.id)
                                                                         .limit(3)).scalars()))
    first = complaints.open(clients[0], "fund_transfer", "银证转账提交后两小时仍未到账，客户要求说明原因", channel="agent")
    complaints.open(clients[1], "service_attitude", "坐席回电晚了一天", channel="ivr")
    campaign = run_in_transaction(core.sessions, lambda s: s.execute(
        select(Campaign.id).where(Campaign.kind == "former_clients").order_by(Campaign.id).limit(1)).scalar_one())

    def book(s: Any) -> None:  # two callbacks agents booked on the win-back campaign's first leads
        agent = s.execute(select(Staff.id).where(Staff.username == "agent01")).scalar_one()
        leads = list(s.execute(select(Lead.id).where(Lead.campaign_id == campaign).order_by(Lead.id).limit(2)).scalars())
        for i, (lead, only) in enumerate(zip(leads, (True, False))):
            dialer.book_callback_in(s, core.clock(), due_at=core.clock() + timedelta(hours=2 + i * 3), lead_id=lead,
                                    agent_only=only, owner_id=agent, note="客户说下午方便" if only else "",
                                    created_by=agent)

    run_in_transaction(core.sessions, book)
    graded = _grade_some_calls(core)

    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport=VIEWPORT, locale="zh-CN")
        blocked = _csp_violations(page)
        page.goto(srv.url + "/login")
        page.wait_for_selector("#login-submit")
        _save(page, "login.png", ARTIFACTS)
        _login(page, srv.url, "supervisor1")
        page.wait_for_url("**/supervisor/wallboard")

        shots = [
            ("/supervisor/campaigns", "campaigns.png", "#new-campaign"),
            (f"/supervisor/campaigns/{campaign}", "campaign.png", "#segment-count:text-matches('^[0-9]+$')"),
            ("/supervisor/callbacks", "booked-callbacks.png", "#booked-callbacks"),
            ("/supervisor/reports?kind=outbound&by=campaign", "reports.png", "table"),
            ("/supervisor/reports?kind=inbound&by=day", "reports-inbound.png", "main"),
            ("/supervisor/reports?kind=complaints&by=campaign", "reports-complaints.png", "main"),
            ("/supervisor/groups", "groups.png", "main"),
            ("/supervisor/appointments", "appointments.png", "main"),
            ("/supervisor/quality", "quality.png", "main"),
            ("/recordings", "recordings.png", "main"),
            ("/supervisor/care/complaints", "complaints.png", "main"),
            (f"/supervisor/care/complaints/{first}", "complaint.png", "main"),
            ("/supervisor/care/callbacks", "care-callbacks.png", "main"),
            ("/supervisor/care/regulator", "regulator.png", "main"),
        ]
        for path, name, ready in shots:
            response = page.goto(srv.url + path)
            assert response is not None and response.status == 200, (path, response and response.status)
            page.wait_for_selector(ready)
            text = _visible_text(page)
            assert not RAW.search(text), (path, RAW.search(text))
            _save(page, name, ARTIFACTS)

        # what the pages say, not just that they render
        page.goto(srv.url + "/supervisor/campaigns")
        for row in page.locator("#campaign-list tbody tr").all():  # rows their own height beside the tall form
            box = row.bounding_box()
            assert box is not None and box["height"] < 60, box
        page.goto(srv.url + "/supervisor/reports")
        tabs = [t.bounding_box() for t in page.locator("#report-kinds a").all()]
        assert len(tabs) == 4 and all(a["x"] + a["width"] < b["x"] for a, b in zip(tabs, tabs[1:]))  # apart
        page.goto(srv.url + "/supervisor/groups")
        ranking = page.inner_text("main")
        assert "万元" in ranking or "¥" in ranking  # money with its unit
        page.goto(srv.url + "/supervisor/reports?kind=outbound&by=campaign")
        assert "模拟活动 3" in page.inner_text("main")
        page.goto(srv.url + "/supervisor/care/complaints")
        assert "银证转账" in page.inner_text("main") or "转账" in page.inner_text("main")
        page.goto(srv.url + "/supervisor/quality")
        quality_text = page.inner_text("main")
        assert graded in quality_text and "回访质检表" in quality_text and "客户已在IVR验证过身份" in quality_text
        assert blocked == []
