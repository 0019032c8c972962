"""The wall board's agent grid in real headless Chromium (Debian's /usr/bin/chromium through Playwright) against
the real server on loopback (issue 13): a supervisor sees an agent of their group go from ready to talking, the
time in the state ticking in the browser between snapshots, and never sees an agent of another group (an admin
sees both); the page runs under the strict Content-Security-Policy."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from callcenter.bootstrap import App
from callcenter.services import desk
from callcenter.web import live
from callcenter.web.app import create_app
from tests.conftest import FixedClock
from tests.db.test_wallboard_grid import ivr_call
from tests.e2e.desk_world import World, build, connect_call
from tests.e2e.test_browser_screens import ARTIFACTS, Server, _csp_violations, _login, _save, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]


def test_a_supervisor_watches_their_groups_agent_go_from_ready_to_talking(
        core: App, browser: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(live, "TICK_S", 3600.0)  # snapshots only at the start and per event: the browser ticks
    world: World = build(core)
    ag1, ag2 = world.staff["ag1"], world.staff["ag2"]  # ag1 in sup1's group, ag2 in the other
    desk.set_state(core, ag1, "ready")
    desk.set_state(core, ag2, "ready")
    with Server(create_app(core)) as srv:
        bound = threading.Event()
        srv.call(lambda: (core.bus.bind_loop(asyncio.get_running_loop()), bound.set()))
        assert bound.wait(5)
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "sup1")
        page.wait_for_url("**/supervisor/wallboard")
        mine = f'#wb-agents tr[data-agent="{ag1}"]'
        theirs = f'#wb-agents tr[data-agent="{ag2}"]'
        page.wait_for_selector(mine + '[data-state="ready"]')
        assert page.inner_text(mine + " td:nth-child(3)") == "就绪"  # in words, never the code
        assert page.inner_text(mine + " td:nth-child(2)") == "服务一组"
        # no new snapshot comes (no tick, no event): the time in the state counts on in the browser
        page.wait_for_selector(mine + " td:nth-child(4):text-is('0:02')", timeout=10_000)
        assert page.locator(theirs).count() == 0
        assert page.inner_text('[data-agents="ready"]') == "1"  # sup1's agents only (ag2 is ready too)

        clock.now = clock.now + timedelta(seconds=30)
        connect_call(core, world)  # the dialler connects world's call to ag1: the desk contact, ag1 talking
        srv.call(core.bus.publish, "wallboard", {"type": "agent_state"})
        page.wait_for_selector(mine + '[data-state="talking"]')
        cells = page.locator(mine + " td").all_inner_texts()
        assert cells[2] == "通话中" and cells[4] == "老客户回访季" and cells[5] == "外呼" and cells[7] == "1", cells
        assert page.locator(theirs).count() == 0
        assert page.inner_text('[data-agents="talking"]') == "1"
        assert page.inner_text('[data-agents="ready"]') == "0"
        # the queue by service group, live: sup1's group only; a caller of their group asks for an agent
        group = f'#wb-groups tr[data-group="{world.g1}"]'
        page.wait_for_selector(group + " .group-talking:text-is('1')")
        assert page.inner_text(group + " .group-ready") == "0" and page.inner_text(group + " .group-waiting") == "0"
        assert page.locator(f'#wb-groups tr[data-group="{world.g2}"]').count() == 0
        asked = ivr_call(core, 1, clock.now - timedelta(seconds=12), client_id=world.mine)
        srv.call(core.bus.publish, "wallboard", {"type": "ivr_handoff", "ivr_session_id": asked})
        page.wait_for_selector(group + ".waiting .group-waiting:text-is('1')")
        assert page.inner_text(group + " td:nth-child(1)") == "服务一组"
        page.wait_for_selector(group + " .group-longest:text-matches('0:1[2-9]')")
        _save(page, "wallboard-agents.png", ARTIFACTS)

        admin = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        _login(admin, srv.url, "adm")
        admin.goto(srv.url + "/supervisor/wallboard")
        admin.wait_for_selector(theirs + '[data-state="ready"]')
        admin.wait_for_selector(mine + '[data-state="talking"]')
        assert blocked == []
