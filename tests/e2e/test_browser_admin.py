"""The administrators' area and the API docs in Debian's Chromium (issue 13): an admin lifts an IVR lockout
with a reason and finds it in the audit log; every admin page renders (screenshots for the README); /docs and
/redoc render the operations with every request outside the server refused (an offline intranet)."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuthThrottle
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build
from tests.e2e.test_browser_screens import ARTIFACTS, Server, _csp_violations, _login, _save, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]

ACCOUNT = "390000000700"


def _offline(page: Any, base: str) -> list[str]:
    """Refuse every request that is not to the server under test; returns what was refused."""
    refused: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort("internetdisconnected")

    page.route("**/*", route)
    return refused


def test_admin_lifts_an_ivr_lockout_and_the_audit_log_shows_it(core: App, browser: Any) -> None:  # noqa: F811
    world: World = build(core)
    now = core.clock()
    run_in_transaction(core.sessions, lambda s: s.add(AuthThrottle(scope="ivr_account", subject=ACCOUNT,
                                                                   failures=8, last_failure_at=now)))
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        outside = _offline(page, srv.url)
        _login(page, srv.url, "adm")
        page.wait_for_url("**/supervisor/wallboard")
        page.click("text=系统管理")
        page.wait_for_url("**/admin")
        _save(page, "admin-home.png", ARTIFACTS)
        page.click("#admin-nav >> text=解锁")
        row = page.locator('#locks-list tr[data-scope="ivr_account"]')
        assert "3900****0700" in row.inner_text() and "8" in row.inner_text()
        _save(page, "admin-unlock.png", ARTIFACTS)
        page.select_option("#unlock-scope", "ivr_account")
        page.fill("#unlock-subject", ACCOUNT)
        page.fill("#unlock-reason", "客户持身份证到柜台核实")
        page.click("#unlock-submit")
        page.wait_for_selector("#admin-notice")
        assert "失败 8 次" in page.inner_text("#admin-notice")
        assert page.locator("#locks-none").count() == 1
        page.click("#admin-nav >> text=审计日志")
        entry = page.locator('#audit-list tr[data-action="unlock_ivr_account"]')
        text = entry.inner_text()
        assert "解除语音自助锁定（资金账号）" in text and "客户持身份证到柜台核实" in text
        assert "3900****0700" in text and "失败次数: 8 → 0" in text and "adm" in text
        _save(page, "admin-audit.png", ARTIFACTS)
        for section, name in (("staff", "admin-staff.png"), ("dnc", "admin-dnc.png"),
                              ("bulletins", "admin-bulletins.png"), ("codes", "admin-codes.png")):
            page.goto(f"{srv.url}/admin/{section}")
            page.wait_for_selector("#admin-nav a.current")
            _save(page, name, ARTIFACTS)
        assert blocked == [] and outside == []
    assert world.staff["adm"]


def test_api_docs_render_the_operations_offline(core: App, browser: Any) -> None:  # noqa: F811
    build(core)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        outside = _offline(page, srv.url)
        _login(page, srv.url, "sup1")
        page.wait_for_url("**/supervisor/wallboard")
        page.goto(srv.url + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/api/transfers" in " ".join(paths) and len(paths) > 10
        _save(page, "api-docs.png", ARTIFACTS)
        page.goto(srv.url + "/redoc")
        page.wait_for_selector("[data-section-id^='tag/'], [data-section-id^='operation/']", timeout=30_000)
        assert "/api/transfers" in page.inner_text("body")
        assert outside == []
        # ReDoc's "API docs by Redocly" badge points at its CDN: the page's policy keeps it out, nothing else
        assert all("cdn.redoc.ly/redoc/logo-mini.svg" in b for b in blocked), blocked
