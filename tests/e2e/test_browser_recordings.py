"""Real headless Chromium (Debian's /usr/bin/chromium through Playwright) plays a recording of the simulated PBX:
on the QA page, the ``<audio>`` element loads the WAV over range requests and reports its duration; on the
recordings list a supervisor's audio elements do too. Screenshot: test-artifacts/screenshots/qa-recording.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.bootstrap import App
from callcenter.adapters.recordings_simulated import record_simulated_call
from callcenter.services.recordings import RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog
from callcenter.store.models.recordings import Recording
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, build
from tests.e2e.test_browser_screens import ARTIFACTS, Server, _csp_violations, _save, browser  # noqa: F401
from tests.factories import make_staff

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.db]


def _login(page: Any, base: str, user: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill('input[name="username"]', user)
    page.fill('input[name="password"]', password)
    page.click("#login-submit")


def _duration(page: Any, selector: str) -> float:
    page.wait_for_function("sel => { const a = document.querySelector(sel); "
                           "return a !== null && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0; }",
                           arg=selector, timeout=10_000)
    return float(page.evaluate("sel => document.querySelector(sel).duration", selector))


def test_the_audio_element_loads_a_recording_and_reports_its_duration(core: App, browser: Any,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), core.clock)
    world = build(core)
    make_staff(core, "qa1", "pw-qa-browser-1", "qa")
    rid = record_simulated_call(core.recordings, "browser-call", started_at=core.clock(),
                                agent_id=world.staff["ag1"], client_id=world.mine)
    expected = run_in_transaction(core.sessions, lambda s: s.get(Recording, rid).duration_s)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "qa1", "pw-qa-browser-1")
        page.wait_for_url("**/qa")
        page.goto(f"{srv.url}/qa/recordings/{rid}")
        assert _duration(page, "#qa-audio") == pytest.approx(expected, abs=0.05)
        _save(page, "qa-recording.png", ARTIFACTS)
        assert blocked == []

        sup = browser.new_page(locale="zh-CN")
        _login(sup, srv.url, "sup1", PASSWORDS["sup1"])
        sup.wait_for_url("**/supervisor/wallboard")
        sup.goto(f"{srv.url}/recordings")
        assert _duration(sup, f'tr[data-recording="{rid}"] audio') == pytest.approx(expected, abs=0.05)
    plays = run_in_transaction(core.sessions, lambda s: s.execute(
        select(func.count()).select_from(AuditLog).where(AuditLog.action == "recording_play")).scalar_one())
    assert plays >= 2  # the browsers' audio requests, each audit-logged


def test_the_callback_record_plays_its_recording_in_chromium(core: App, browser: Any, clock: Any,  # noqa: F811
                                                             tmp_path: Path) -> None:
    """The regulator's record of a 回访 (the five answers and the call): its audio element loads the recording
    over range requests and reports the recording's duration; the page is the printable record."""
    from datetime import date

    from callcenter.services.care.callbacks import callbacks_of, record_callback_result
    from callcenter.services.care.regulatory import build_regulatory_callbacks
    from callcenter.store.models import Client
    from tests.e2e.test_regulator_records import ANSWERS

    core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), core.clock)
    world = build(core)
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Client, world.mine), "opened_on", date(2026, 3, 2)))
    clock.now = clock.now.replace(year=2026, month=3, day=10)
    build_regulatory_callbacks(core, date(2026, 3, 10))
    [cb] = [c for c in callbacks_of(core, world.mine) if c.purpose == "regulatory_new"]
    rid = record_simulated_call(core.recordings, "callback-call", started_at=core.clock(),
                                agent_id=world.staff["ag1"], client_id=world.mine)
    record_callback_result(core, cb.id, "done", ANSWERS, staff_id=world.staff["ag1"])
    expected = run_in_transaction(core.sessions, lambda s: s.get(Recording, rid).duration_s)
    with Server(create_app(core)) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "sup1", PASSWORDS["sup1"])
        page.wait_for_url("**/supervisor/wallboard")
        page.goto(f"{srv.url}/supervisor/care/callbacks/{cb.id}/record")
        assert _duration(page, "#record-audio") == pytest.approx(expected, abs=0.05)
        assert page.locator("#items tr").count() == 5
        _save(page, "callback-record.png", ARTIFACTS)
        assert blocked == []
