"""The agent desk for a real shift (issue 13), in real headless Chromium against the real server on loopback:
the talk script's current step and its answers in view at 1366×768 and 1920×1080 on a live call; the wrap-up
countdown from the server's ``wrap_up_limit_s`` (and the screen going ready when the server says so); the
keyboard shortcuts and their ? overlay (not while typing); the agent's figures today and the callbacks list
refreshed after a disposition, a callback opening its client."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.bootstrap import App
from callcenter.services.dialer.campaigns import change_agent_state, open_session
from callcenter.store.db import run_in_transaction
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, connect_call
from tests.e2e.test_browser_screens import ARTIFACTS, Server, _csp_violations, _login, _save, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]


def _in_view(page: Any, selector: str, width: int, height: int) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (selector, box, width, height)


def _ready_with_a_call(page: Any, srv: Server, core: App, world: World) -> None:
    _login(page, srv.url, "ag1")
    page.wait_for_url("**/agent")
    page.click("#btn-ready")
    page.wait_for_selector("#statusbar[data-state='ready']")
    page.wait_for_selector("#live-indicator.ok")
    srv.call(core.bus.publish, f"agent:{world.staff['ag1']}", connect_call(core, world))
    page.wait_for_selector('#script-step[data-step="opening"]', timeout=5000)
    page.wait_for_selector("#statusbar[data-state='talking']")


@pytest.mark.parametrize("width,height", [(1366, 768), (1920, 1080)])
def test_the_current_script_step_and_its_answers_are_in_view_on_a_live_call(core: App, browser: Any,
                                                                             width: int, height: int) -> None:
    world = build(core)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
        blocked = _csp_violations(page)
        _ready_with_a_call(page, srv, core, world)
        page.wait_for_selector(f'#call-card details#care-box .care-panel[data-client="{world.mine}"]', state="attached",
                               timeout=5000)
        answers = page.locator("#script-step .answer")
        assert answers.count() >= 2
        _in_view(page, "#script-step", width, height)  # no scrolling: the step and every answer button
        for i in range(answers.count()):
            _in_view(page, f"#script-step .answer >> nth={i}", width, height)
        _in_view(page, "#client-name", width, height)  # the client summary beside the script
        _in_view(page, "#note", width, height)
        _in_view(page, "#hang-up", width, height)  # the call's main actions beside it
        _in_view(page, "#dispositions .disp >> nth=0", width, height)
        script = page.locator("#script-panel").bounding_box()
        summary = page.locator("#client-summary").bounding_box()
        assert script is not None and summary is not None and summary["x"] > script["x"]  # side by side
        assert page.get_attribute("#care-box", "open") is None  # the client-care panel starts collapsed
        care = page.locator("#care-box").bounding_box()
        assert care is not None and care["y"] > script["y"] + script["height"]  # below the script, never above
        if width == 1366:
            _save(page, "agent-screen-1366.png", ARTIFACTS)
        assert blocked == []


def test_wrap_up_countdown_shortcuts_today_and_callbacks(core: App, browser: Any) -> None:
    world = build(core)
    ag1 = world.staff["ag1"]
    core.settings.wrap_up_limit_s = 0.0
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.wait_for_selector("#live-indicator.ok")
        page.wait_for_selector("#today-calls:text-is('0')")  # GET /api/desk/today on load
        assert page.is_visible("#no-callbacks")
        # the help overlay lists the shortcuts; Esc closes it
        page.keyboard.press("?")
        page.wait_for_selector("#help-overlay", state="visible")
        assert page.locator("#help-keys tr").count() >= 6
        assert "挂断" in page.inner_text("#help-keys") and "就绪" in page.inner_text("#help-keys")
        page.keyboard.press("Escape")
        page.wait_for_selector("#help-overlay", state="hidden")
        page.keyboard.press("r")  # ready by key
        page.wait_for_selector("#statusbar[data-state='ready']")
        srv.call(core.bus.publish, f"agent:{ag1}", connect_call(core, world))
        page.wait_for_selector('#script-step[data-step="opening"]', timeout=5000)
        page.wait_for_selector("#statusbar[data-state='talking']")
        # typing in the notes: the letters go into the note, no shortcut fires
        page.keyboard.press("n")
        page.keyboard.type("hdp1r?")
        assert page.input_value("#note") == "hdp1r?"
        assert page.is_hidden("#help-overlay")
        assert page.get_attribute("#statusbar", "data-state") == "talking"
        assert page.get_attribute("#script-step", "data-step") == "opening"
        page.keyboard.press("Escape")  # leaves the notes; the keys are shortcuts again
        page.keyboard.press("1")  # the script's first answer
        page.wait_for_selector('#script-step:not([data-step="opening"])')
        page.keyboard.press("h")  # hang up
        page.wait_for_selector("#statusbar[data-state='wrap_up']")
        page.wait_for_selector("#wrap-info[data-mode='manual']")
        assert "不限时" in page.inner_text("#wrap-info")
        # a disposition that books a callback: today's figures and the callbacks list refresh without a reload
        page.fill("#callback-at", "2026-12-02T10:30")
        page.click('#dispositions button[data-disposition="callback"]')
        page.wait_for_selector("#closed")
        page.wait_for_selector("#today-calls:text-is('1')")
        assert "需回电 1" in page.inner_text("#today-dispositions")
        page.wait_for_selector("#callback-list .callback-item")
        assert page.is_hidden("#no-callbacks")
        page.click("#callback-list .callback-item")
        page.wait_for_selector("#callback-detail", state="visible")
        assert page.inner_text("#cb-name").startswith("测试")
        assert "12-02 10:30" in page.inner_text("#cb-due")
        page.wait_for_selector(f'#cb-care .care-panel[data-client="{world.mine}"]', timeout=5000)
        assert page.get_attribute("#callback-list .callback-item", "aria-pressed") == "true"

        # with a limit the screen counts the wrap-up down (the limit comes from the server)
        core.settings.wrap_up_limit_s = 600.0
        page.reload()
        page.wait_for_selector("#wrap-info[data-mode='countdown']")
        left = int(page.get_attribute("#wrap-info", "data-left") or 0)
        assert 0 < left <= 600
        assert "剩余" in page.inner_text("#wrap-info")
        _save(page, "agent-wrap-up.png", ARTIFACTS)

        # when it runs out the screen waits for the server, and shows ready when the dialler has ended it
        core.settings.wrap_up_limit_s = 1.0
        page.reload()
        page.wait_for_selector("#wrap-info[data-mode='ending']", timeout=5000)
        assert page.get_attribute("#statusbar", "data-state") == "wrap_up"  # the screen never decides by itself

        def dialler_ends_wrap_up(s: Any) -> None:  # what the dialler's tick records at the deadline (no event)
            sess = open_session(s, ag1)
            assert sess is not None and sess.state == "wrap_up"
            change_agent_state(s, sess, "ready", core.clock(), reason="auto_wrap_up")

        run_in_transaction(core.sessions, dialler_ends_wrap_up)
        page.wait_for_selector("#statusbar[data-state='ready']", timeout=10000)  # read from GET /api/desk/status
        assert page.is_hidden("#wrap-info")
        page.context.add_cookies([{"name": "cc_lang", "value": "en", "url": srv.url}])  # the English desk
        page.reload()
        page.wait_for_selector("#today-calls:text-is('1')")
        assert page.inner_text("#help-title") == "Keyboard shortcuts" and "My day" in page.inner_text("#today-panel")
        assert blocked == []


def test_the_help_overlay_keeps_the_focus_inside_and_gives_it_back(core: App, browser: Any) -> None:
    """The ? overlay is a modal dialog: Tab and Shift+Tab cycle its own controls (never the page behind it), a
    click outside cannot take the focus out, and Esc closes it with the focus back where it was."""
    build(core)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.wait_for_selector("#live-indicator.ok")
        page.focus("#btn-help")
        page.keyboard.press("Enter")  # the ? button opens it too
        page.wait_for_selector("#help-overlay", state="visible")

        def focused() -> str:
            return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))

        def inside() -> bool:
            return bool(page.evaluate("document.getElementById('help-overlay').contains(document.activeElement)"))

        assert focused() == "help-close"
        seen = []
        for _ in range(5):  # forwards: round and round inside
            page.keyboard.press("Tab")
            assert inside(), focused()
            seen.append(focused())
        assert set(seen) == {"help-list", "help-close"} and seen[0] != seen[1]
        for _ in range(3):
            page.keyboard.press("Shift+Tab")
            assert inside(), focused()
        page.evaluate("document.getElementById('btn-ready').focus()")  # a script (or a click) cannot take it out
        assert inside(), focused()
        page.keyboard.press("Escape")
        page.wait_for_selector("#help-overlay", state="hidden")
        assert focused() == "btn-help"  # back where it was
        page.keyboard.press("Tab")
        assert not inside()
        # by key from the page: ? opens, Esc gives the focus back to what had it
        page.focus("#btn-pause")
        page.keyboard.press("?")
        page.wait_for_selector("#help-overlay", state="visible")
        assert focused() == "help-close"
        page.keyboard.press("Escape")
        page.wait_for_selector("#help-overlay", state="hidden")
        assert focused() == "btn-pause"
        assert blocked == []
