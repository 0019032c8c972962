"""Recording and 质检 screens over HTTP: who may list, play and download (a route x role matrix, every access —
granted or refused — audit-logged), range requests (206, 416), legal hold by admins, the audio element on the
agent card's contact history when agents may listen, and the QA flow (form, evaluation, dispute, decision)."""

from __future__ import annotations

import array
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.bootstrap import App
from callcenter.adapters.recordings_simulated import wav_bytes
from callcenter.services.recordings import RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.recordings import QaEvaluation, Recording
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, World, build
from tests.factories import make_staff

pytestmark = pytest.mark.db
QA_PASSWORD = "pw-qa-staff-1"
RAISE = False  # the app answers 500 like in production; True to see a traceback


@pytest.fixture
def world(core: App, tmp_path) -> World:  # type: ignore[no-untyped-def]
    core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), core.clock)
    w = build(core)
    w.staff["qa1"] = make_staff(core, "qa1", QA_PASSWORD, "qa")
    return w


def record(core: App, agent: int, client: int | None = None, seconds: float = 2.0, contact: int | None = None) -> int:
    svc = core.recordings
    rid = svc.start(f"call-{agent}-{contact}-{seconds}", agent_id=agent, client_id=client, desk_contact_id=contact)
    samples = array.array("h", [(i * 37) % 2000 - 1000 for i in range(int(seconds * 8000))])
    svc.stop(rid, core.clock() + timedelta(seconds=seconds), audio=wav_bytes(samples))
    return int(rid)


def login(core: App, user: str | None) -> tuple[TestClient, str]:
    c = TestClient(create_app(core), raise_server_exceptions=RAISE)
    if user is None:
        return c, ""
    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    password = QA_PASSWORD if user == "qa1" else PASSWORDS[user]
    r = c.post("/login", data={"username": user, "password": password, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    home = c.get(r.headers["location"])
    assert home.status_code == 200, (user, r.headers["location"], home.text[:300])
    return c, re.search(r'name="csrf-token" content="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]


def audit_count(core: App, action: str) -> int:
    return int(run_in_transaction(core.sessions, lambda s: s.execute(
        select(func.count()).select_from(AuditLog).where(AuditLog.action == action)).scalar_one()))


ROLES = [None, "ag1", "sup1", "adm", "qa1"]
# status of GET: the recording of ag1 (group 1) / of ag2 (group 2); "login": sent to the login page
PLAY = {None: ("login", "login"), "ag1": (404, 404), "sup1": (200, 404), "adm": (200, 200), "qa1": (200, 200)}
DOWNLOAD = {None: ("login", "login"), "ag1": (404, 404), "sup1": (404, 404), "adm": (200, 200), "qa1": (404, 404)}
LIST = {None: "login", "ag1": 403, "sup1": 200, "adm": 200, "qa1": 200}


@pytest.mark.parametrize("role", ROLES)
def test_who_may_list_play_and_download(core: App, world: World, role: str | None) -> None:
    mine = record(core, world.staff["ag1"], world.mine)
    theirs = record(core, world.staff["ag2"], world.theirs)
    c, _ = login(core, role)
    for path, want in (("audio", PLAY[role]), ("download", DOWNLOAD[role])):
        for rid, expected in zip((mine, theirs), want):
            before = {a: audit_count(core, a) for a in ("recording_play", "recording_play_refused",
                                                        "recording_download", "recording_download_refused")}
            r = c.get(f"/recordings/{rid}/{path}", follow_redirects=False)
            if expected == "login":
                assert r.status_code == 303 and r.headers["location"] == "/login"
                continue
            assert r.status_code == expected, (role, path, rid, r.status_code)
            action = "recording_play" if path == "audio" else "recording_download"
            logged = action if expected == 200 else action + "_refused"
            after = {a: audit_count(core, a) for a in before}
            assert {a: after[a] - before[a] for a in before} == {a: int(a == logged) for a in before}, (role, path)
            if expected == 200:
                assert r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
                assert ("attachment" in r.headers.get("content-disposition", "")) == (path == "download")
    r = c.get("/recordings", follow_redirects=False)
    if LIST[role] == "login":
        assert r.status_code == 303
    else:
        assert r.status_code == LIST[role]
    if r.status_code == 200:
        shown = {int(x) for x in re.findall(r'data-recording="(\d+)"', r.text)}
        assert shown == ({mine} if role == "sup1" else {mine, theirs})
        assert ("/download" in r.text) == (role == "adm")
        assert audit_count(core, "recording_list") == 1


def test_range_requests(core: App, world: World) -> None:
    rid = record(core, world.staff["ag1"], world.mine, seconds=1.0)
    size = run_in_transaction(core.sessions, lambda s: s.get(Recording, rid).size_bytes)
    full = core.recordings.store.get(run_in_transaction(core.sessions, lambda s: s.get(Recording, rid).storage_key))
    c, _ = login(core, "sup1")
    r = c.get(f"/recordings/{rid}/audio")
    assert r.status_code == 200 and r.headers["accept-ranges"] == "bytes" and r.content == full
    r = c.get(f"/recordings/{rid}/audio", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.headers["content-range"] == f"bytes 0-99/{size}" and r.content == full[:100]
    r = c.get(f"/recordings/{rid}/audio", headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == full[1000:] and r.headers["content-length"] == str(size - 1000)
    r = c.get(f"/recordings/{rid}/audio", headers={"Range": "bytes=-44"})
    assert r.status_code == 206 and r.content == full[-44:]
    r = c.get(f"/recordings/{rid}/audio", headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    assert audit_count(core, "recording_play") == 5  # every request for audio is logged (with its range)


def test_legal_hold_is_for_admins_with_a_reason(core: App, world: World) -> None:
    rid = record(core, world.staff["ag1"], world.mine)
    sup, sup_csrf = login(core, "sup1")
    assert sup.post(f"/recordings/{rid}/hold", data={"action": "hold", "reason": "诉讼", "csrf": sup_csrf},
                    follow_redirects=False).status_code == 403
    adm, csrf = login(core, "adm")
    assert adm.post(f"/recordings/{rid}/hold", data={"action": "hold", "reason": " ", "csrf": csrf},
                    follow_redirects=False).status_code == 422
    assert adm.post(f"/recordings/{rid}/hold", data={"action": "hold", "reason": "监管调查", "csrf": csrf},
                    follow_redirects=False).status_code == 303
    assert adm.post("/recordings/999999/hold", data={"action": "hold", "reason": "x", "csrf": csrf},
                    follow_redirects=False).status_code == 404
    rec = run_in_transaction(core.sessions, lambda s: s.get(Recording, rid))
    assert rec.legal_hold and rec.legal_hold_reason == "监管调查" and rec.legal_hold_by == world.staff["adm"]
    assert audit_count(core, "recording_hold") == 1


def test_the_agent_card_history_plays_own_calls_when_allowed(core: App, world: World) -> None:
    ag1 = world.staff["ag1"]
    now = core.clock()

    def contacts(s) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        past = DeskContact(agent_id=ag1, client_id=world.mine, started_at=now - timedelta(days=2),
                           ended_at=now - timedelta(days=2), disposition="callback", note="上次回访")
        live = DeskContact(agent_id=ag1, client_id=world.mine, started_at=now)
        s.add_all([past, live])
        s.flush()
        return past.id, live.id

    past, live = run_in_transaction(core.sessions, contacts)
    rid = record(core, ag1, world.mine, contact=past)
    c, _ = login(core, "ag1")
    card = c.get(f"/agent/contacts/{live}/card")
    assert card.status_code == 200 and "<audio" not in card.text  # the setting is off
    core.recordings.agent_may_listen = True
    card = c.get(f"/agent/contacts/{live}/card")
    assert f'src="/recordings/{rid}/audio"' in card.text
    assert c.get(f"/recordings/{rid}/audio").status_code == 200
    theirs = record(core, world.staff["ag2"], world.theirs)
    assert c.get(f"/recordings/{theirs}/audio").status_code == 404  # never another agent's call
    assert c.get(f"/recordings/{rid}/download").status_code == 404


def test_qa_flow_form_evaluation_dispute_decision(core: App, world: World) -> None:
    rid = record(core, world.staff["ag1"], world.mine)
    sup, sup_csrf = login(core, "sup1")
    r = sup.post("/supervisor/quality/forms", data={"csrf": sup_csrf, "name": "回访质检", "pass_pct": "80",
                                                    "items": "开场白规范 | yes_no | 20\n不承诺收益 | yes_no | 40 | critical\n"
                                                             "风险揭示 | scale | 40 | | 4\n备注 | comment"},
                 follow_redirects=False)
    assert r.status_code == 303
    bad = sup.post("/supervisor/quality/forms", data={"csrf": sup_csrf, "name": "坏表", "items": "x | scale | 5 | critical"})
    assert bad.status_code == 422 and "critical" in bad.json()["error"]["message"]
    assert sup.post("/supervisor/quality/sample", data={"csrf": sup_csrf, "week": "2026-W48"},
                    follow_redirects=False).status_code == 303
    qa, qa_csrf = login(core, "qa1")
    queue = qa.get("/qa")
    assert f'data-recording="{rid}"' in queue.text
    page = qa.get(f"/qa/recordings/{rid}")
    assert page.status_code == 200 and 'id="qa-audio"' in page.text
    form_id = re.search(r'name="form_id" value="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    assert sup.post(f"/qa/recordings/{rid}/evaluate", data={"csrf": sup_csrf, "form_id": form_id},
                    follow_redirects=False).status_code == 403  # supervisors define, QA staff evaluate
    r = qa.post(f"/qa/recordings/{rid}/evaluate", data={"csrf": qa_csrf, "form_id": form_id, "a_i1": "yes",
                                                        "a_i2": "no", "a_i3": "4", "a_i4": "语速偏快"},
                follow_redirects=False)
    assert r.status_code == 303
    ev = run_in_transaction(core.sessions, lambda s: s.execute(select(QaEvaluation)).scalar_one())
    assert (ev.score_pct, ev.passed, ev.critical_failed) == (0.0, False, True)
    agent, agent_csrf = login(core, "ag1")
    mine = agent.get("/agent/evaluations")
    assert f'data-evaluation="{ev.id}"' in mine.text
    other, other_csrf = login(core, "ag2")
    r = other.post(f"/agent/evaluations/{ev.id}/dispute", data={"csrf": other_csrf, "text": "x"},
                   follow_redirects=False)
    assert r.status_code == 404, r.text
    assert agent.post(f"/agent/evaluations/{ev.id}/dispute", data={"csrf": agent_csrf, "text": "我没有承诺收益"},
                      follow_redirects=False).status_code == 303
    quality_page = sup.get("/supervisor/quality")
    assert f'data-evaluation="{ev.id}"' in quality_page.text
    assert sup.post(f"/supervisor/quality/evaluations/{ev.id}/resolve",
                    data={"csrf": sup_csrf, "decision": "revise", "score_pct": "85", "note": "复核录音"},
                    follow_redirects=False).status_code == 303
    ev = run_in_transaction(core.sessions, lambda s: s.execute(select(QaEvaluation)).scalar_one())
    assert (ev.status, ev.score_pct, ev.passed) == ("revised", 85.0, True)
    month = core.clock().strftime("%Y-%m")
    scores = sup.get(f"/supervisor/quality?month={month}")
    assert "85.0" in scores.text


def test_every_recording_and_quality_route_denies_by_default(core: App, world: World) -> None:
    from callcenter.web.pages import recordings

    rid = record(core, world.staff["ag1"], world.mine)
    c = TestClient(create_app(core), raise_server_exceptions=False)
    seen = 0
    for route in recordings.router.routes:
        path = route.path.replace("{recording_id}", str(rid)).replace("{evaluation_id}", "1")  # type: ignore[attr-defined]
        for method in route.methods:  # type: ignore[attr-defined]
            r = c.request(method, path, follow_redirects=False)
            assert r.status_code in (303, 401) and (r.status_code == 401 or r.headers["location"] == "/login"), \
                (method, path, r.status_code)
            seen += 1
    assert seen >= 12
    assert audit_count(core, "recording_play") == 0
