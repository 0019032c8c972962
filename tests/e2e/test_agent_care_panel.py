"""Real headless Chromium against the real server on loopback: a call pops on the agent screen, the client-care
panel loads into the call card, the agent opens a complaint from it (linked to the call on screen) and switches
one 财经秘书 alert on, both without a page reload; the database shows the complaint and the subscription."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareOptOut, CareSubscription, Complaint
from callcenter.store.models.desk import DeskContact
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, connect_call
from tests.e2e.test_browser_screens import ARTIFACTS, Server, _login, _save, browser  # noqa: F401 (fixture)

# The screen learns which client is on the call from the card's data-client attribute (agent.js reads
# #call-card[data-client]) and then loads the care panel for that client.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]


def test_agent_opens_a_complaint_and_switches_an_alert_from_the_care_panel(core: App, browser: Any) -> None:
    world: World = build(core)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.click("#btn-ready")
        page.wait_for_selector("#statusbar[data-state='ready']")  # selectors, not eval: the CSP forbids it
        page.wait_for_selector("#live-indicator.ok")
        srv.call(core.bus.publish, f"agent:{world.staff['ag1']}", connect_call(core, world))
        page.wait_for_selector(f'#call-card details#care-box .care-panel[data-client="{world.mine}"]', state="attached",
                               timeout=5000)
        assert page.get_attribute("#care-box", "open") is None  # collapsed: the script above stays in view
        page.click("#care-box > summary")
        page.wait_for_selector(f'#care-box .care-panel[data-client="{world.mine}"]', state="visible")
        contact_id = int(page.get_attribute("#call-card", "data-contact") or 0)
        # the panel sits below the client's holdings/contacts, inside the card, and is collapsible
        assert page.evaluate("document.querySelector('#call-card section.client').nextElementSibling.id") == "care-box"
        assert "财经秘书" in page.inner_text("#care-box")
        page.evaluate("window.__same_page = true")  # gone if anything reloads the page

        page.select_option("#care-box form.care-complaint select[name=category]", "fund_transfer")
        page.fill("#care-box form.care-complaint textarea[name=text]", "银证转账资金两天未到账")
        page.click('#care-box form.care-complaint button[type="submit"]')
        page.wait_for_selector("#care-box .care-complaints li[data-complaint]", timeout=5000)
        msg = page.inner_text("#care-box .care-msg")
        complaint_id = int(page.get_attribute("#care-box .care-complaints li[data-complaint]", "data-complaint") or 0)
        assert f"已登记投诉单 {complaint_id}" in msg and "处理时限" in msg
        assert page.get_attribute("#care-box .care-msg", "class") == "care-msg ok"

        ipo = '#care-box .care-topics li[data-topic="ipo"]'
        assert page.get_attribute(ipo, "data-enabled") == "false"
        page.click(ipo + " button[data-care-topic]")
        page.wait_for_selector(ipo + '[data-enabled="true"]', timeout=5000)
        assert "已订阅" in page.inner_text(ipo)
        assert page.inner_text("#care-box .care-msg") == "已保存"
        assert page.evaluate("window.__same_page") is True
        _save(page, "agent-care-panel.png", ARTIFACTS)

    def check(s: Any) -> None:
        c = s.execute(select(Complaint).where(Complaint.client_id == world.mine)).scalar_one()
        assert c.id == complaint_id and c.category == "fund_transfer" and c.text == "银证转账资金两天未到账"
        assert c.call_ref == f"desk:{contact_id}" and c.opened_by == world.staff["ag1"]
        sub = s.get(CareSubscription, (world.mine, "ipo"))
        assert sub is not None and sub.enabled is True and sub.source == "agent"
        assert sub.staff_id == world.staff["ag1"]

    run_in_transaction(core.sessions, check)


def test_care_panel_shows_a_refused_action_inline(core: App, browser: Any) -> None:
    """A post the server refuses (here: after the panel loaded, the client moved to another group and the call
    was closed elsewhere, so the client is neither the agent's group's nor on their call: the endpoint answers
    404) is reported inside the panel, and nothing is stored."""
    world: World = build(core)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.click("#btn-ready")
        page.wait_for_selector("#live-indicator.ok")
        srv.call(core.bus.publish, f"agent:{world.staff['ag1']}", connect_call(core, world))
        page.wait_for_selector("#care-box .care-panel", state="attached", timeout=5000)
        page.click("#care-box > summary")  # the panel starts collapsed
        run_in_transaction(core.sessions, lambda s: setattr(s.get(Client, world.mine), "service_group_id", world.g2))
        run_in_transaction(core.sessions, lambda s: s.execute(
            update(DeskContact).where(DeskContact.agent_id == world.staff["ag1"]).values(ended_at=core.clock())))
        page.click('#care-box .care-optouts li[data-channel="sms"] button[data-care-optout]')
        page.wait_for_selector("#care-box .care-msg.bad", timeout=5000)
        assert page.inner_text("#care-box .care-msg").startswith("保存失败：")
        assert 'data-channel="sms"' in page.inner_html("#care-box .care-optouts")

    assert run_in_transaction(core.sessions, lambda s: s.execute(select(CareOptOut)).all()) == []
