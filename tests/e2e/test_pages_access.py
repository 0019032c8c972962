"""The screens' permissions: a route x role matrix, deny by default, CSRF on every cookie-authenticated post,
no reaching another group's client by changing an id, audit of every card opened; and the desk flow."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services import desk
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog
from callcenter.store.models.dialer import Attempt, Callback, DncEntry
from callcenter.web.app import create_app
from callcenter.web.pages import agent, auth, supervisor
from callcenter.web import live
from tests.e2e.desk_world import World, build, call_event, page_login

pytestmark = pytest.mark.db


@pytest.fixture
def world(core: App) -> World:
    return build(core)


@pytest.fixture
def client(core: App) -> TestClient:
    return TestClient(create_app(core), raise_server_exceptions=False, base_url="http://testserver")


def login_as(core: App, user: str | None) -> tuple[TestClient, str]:
    c = TestClient(create_app(core), raise_server_exceptions=False)
    return c, (page_login(c, user) if user else "")


# (method, path, body) -> expected status per role; "login" = redirect to the login page.
PAGES = ["/agent", "/supervisor/wallboard", "/supervisor/campaigns", "/supervisor/reports",
         "/supervisor/reports.csv", "/supervisor/groups"]
EXPECT_GET = {
    None: {p: "login" for p in PAGES},
    "ag1": {"/agent": 200, **{p: 403 for p in PAGES[1:]}},
    "sup1": {p: 200 for p in PAGES},  # a supervisor may sit at the desk to take escalated calls
    "adm": {"/agent": 403, **{p: 200 for p in PAGES[1:]}},
}


@pytest.mark.parametrize("role", [None, "ag1", "sup1", "adm"])
def test_route_role_matrix(core: App, world: World, role: str | None) -> None:
    c, csrf = login_as(core, role)
    for path, want in EXPECT_GET[role].items():
        r = c.get(path, follow_redirects=False)
        if want == "login":
            assert r.status_code == 303 and r.headers["location"] == "/login", path
        else:
            assert r.status_code == want, (path, r.status_code, r.text[:200])
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    r = c.post("/api/desk/state", json={"state": "paused", "reason": "break"}, headers=headers)
    assert r.status_code == {None: 401, "ag1": 200, "sup1": 200, "adm": 403}[role]  # a supervisor at the desk
    r = c.post("/supervisor/campaigns/" + str(world.campaign) + "/action", data={"action": "pause", "csrf": csrf},
               follow_redirects=False)
    assert r.status_code == {None: 401, "ag1": 403, "sup1": 303, "adm": 303}[role]
    r = c.post("/supervisor/groups/assign", data={"month": "2026-11", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == {None: 401, "ag1": 403, "sup1": 403, "adm": 303}[role]


def test_every_screen_route_denies_by_default(client: TestClient, world: World) -> None:
    public = {"/", "/login", "/lang/{lang}"}
    seen = 0
    for router in (auth.router, agent.pages, agent.api, supervisor.router, live.router):
        for route in router.routes:
            if route.path in public:
                continue
            path = route.path.replace("{contact_id}", "1").replace("{campaign_id}", str(world.campaign))
            for method in route.methods:
                r = client.request(method, path, follow_redirects=False)
                assert r.status_code in (303, 401) and (r.status_code == 401 or r.headers["location"] == "/login"), \
                    (method, path, r.status_code)
                seen += 1
    assert seen >= 20


def test_cookie_posts_without_csrf_are_refused(core: App, world: World) -> None:
    c, csrf = login_as(core, "ag1")
    assert c.post("/api/desk/state", json={"state": "ready"}).status_code == 403
    assert c.post("/api/desk/state", json={"state": "ready"}, headers={"X-CSRF-Token": "x" * 32}).status_code == 403
    assert c.post("/api/desk/state", json={"state": "ready"}, headers={"X-CSRF-Token": csrf}).status_code == 200
    s, scsrf = login_as(core, "sup1")
    r = s.post("/supervisor/campaigns", data={"name": "x", "kind": "dormant", "script_id": "dormant"},
               follow_redirects=False)
    assert r.status_code == 403
    assert s.post("/logout", follow_redirects=False).status_code == 403  # logout is a form with the token too
    anon = TestClient(create_app(core), raise_server_exceptions=False)
    anon.get("/login")
    r = anon.post("/login", data={"username": "ag1", "password": "pw-agent-1", "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and "cc_session" not in r.cookies


def test_session_cookie_flags(core: App, world: World) -> None:
    c = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(c, "ag1")
    r = c.get("/login")
    c2 = TestClient(create_app(core), raise_server_exceptions=False)
    import re

    token = re.search(r'name="csrf" value="([^"]+)"', c2.get("/login").text).group(1)  # type: ignore[union-attr]
    r = c2.post("/login", data={"username": "ag1", "password": "pw-agent-1", "csrf": token}, follow_redirects=False)
    cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("cc_session=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_agent_cannot_open_another_groups_client_by_changing_an_id(core: App, world: World) -> None:
    other = desk.contact_from_event(core.sessions, world.staff["ag2"],
                                    {"type": "call_connected", "client_id": world.theirs, "ivr_session_id": 77},
                                    core.clock())
    c, _ = login_as(core, "ag1")
    assert c.get(f"/agent/contacts/{other}/card").status_code == 404
    assert c.get(f"/api/clients/{world.theirs}").status_code == 404
    assert c.get(f"/api/clients/{world.mine}").status_code == 200
    audits = run_in_transaction(core.sessions, lambda s: s.execute(
        select(AuditLog.client_id).where(AuditLog.staff_id == world.staff["ag1"])).scalars().all())
    assert world.theirs not in audits


def test_desk_flow_screen_pop_script_disposition_callback_dnc(core: App, world: World) -> None:
    c, csrf = login_as(core, "ag1")
    h = {"X-CSRF-Token": csrf}
    assert c.post("/api/desk/state", json={"state": "ready"}, headers=h).json()["state"] == "ready"
    cid = desk.contact_from_event(core.sessions, world.staff["ag1"], call_event(world), core.clock())
    assert desk.contact_from_event(core.sessions, world.staff["ag1"], call_event(world), core.clock()) == cid
    card = c.get(f"/agent/contacts/{cid}/card")
    assert card.status_code == 200
    assert "测试" in card.text and "老客户回访季" in card.text and "第 2 次拨打" in card.text
    assert "39" not in card.text.split('id="total-assets"')[0].split("acct")[-1][:4]  # masked accounts only
    assert c.post("/api/desk/state", json={"state": "ready"}, headers=h).status_code == 409  # finish the call first
    r = c.post(f"/api/desk/contacts/{cid}/script", json={"action": "answer", "answer": "listening"}, headers=h)
    assert r.status_code == 200 and r.json()["step"] == "why_left"
    assert c.post(f"/api/desk/contacts/{cid}/script", json={"action": "answer", "answer": "nonsense"},
                  headers=h).status_code == 409
    assert c.post(f"/api/desk/contacts/{cid}/hangup", headers=h).status_code == 200
    r = c.post(f"/api/desk/contacts/{cid}/dispose", headers=h,
               json={"disposition": "callback", "note": "客户下周再联系", "callback_at": "2026-12-01T10:00:00",
                     "callback_agent_only": False, "dnc": False})
    assert r.status_code == 200, r.text
    cb_id = r.json()["callback_id"]

    def check(s) -> None:  # type: ignore[no-untyped-def]
        cb = s.get(Callback, cb_id)
        assert cb.agent_only is False and cb.owner_id == world.staff["ag1"] and cb.status == "pending"
        att = s.get(Attempt, world.attempt)
        assert att.disposition == "callback" and att.notes == "客户下周再联系"
        assert json.dumps(att.script_run, ensure_ascii=False).count("listening") == 1
        assert s.execute(select(AuditLog).where(AuditLog.action == "desk_open_client",
                                                AuditLog.client_id == world.mine)).first() is not None

    run_in_transaction(core.sessions, check)
    assert c.post(f"/api/desk/contacts/{cid}/dispose", headers=h, json={"disposition": "callback"}).status_code == 409
    assert c.post("/api/desk/state", json={"state": "ready"}, headers=h).json()["state"] == "ready"


def test_do_not_call_request(core: App, world: World) -> None:
    c, csrf = login_as(core, "ag1")
    cid = desk.contact_from_event(core.sessions, world.staff["ag1"], call_event(world), core.clock())
    r = c.post(f"/api/desk/contacts/{cid}/dispose", headers={"X-CSRF-Token": csrf},
               json={"disposition": "not_interested", "dnc": True})
    assert r.status_code == 200
    phones = run_in_transaction(core.sessions, lambda s: s.execute(select(DncEntry.phone)).scalars().all())
    assert phones == ["+8613900000001"]


def test_supervisor_campaign_pages_upload_and_reports(core: App, world: World) -> None:
    s, csrf = login_as(core, "sup1")
    r = s.post("/supervisor/campaigns", follow_redirects=False,
               data={"name": "休眠客户激活", "kind": "dormant", "script_id": "dormant", "dial_mode": "predictive",
                     "window_start": "09:00", "window_end": "20:00", "days": "trading", "max_attempts": "3",
                     "group_ids": [str(world.g1)], "csrf": csrf})
    assert r.status_code == 303
    url = r.headers["location"]
    csv_text = "phone,name,priority\n13912345678,张三,1\nnot-a-phone,李四,0\n13912345678,重复,0\n"
    r = s.post(url + "/leads", data={"csrf": csrf}, files={"file": ("leads.csv", csv_text.encode(), "text/csv")})
    assert r.status_code == 200 and 'id="upload-errors"' in r.text and 'data-imported="no"' in r.text
    assert "第 3 行：“not-a-phone”不是有效的手机号或固定电话号码（固话须带区号）" in r.text
    assert "第 4 行：电话号码 139****5678 与第 2 行重复" in r.text
    assert "phone_invalid" not in r.text and "phone_repeated" not in r.text  # sentences, never codes
    assert '<b id="lead-count">0</b>' in r.text  # all or nothing, as the CLI
    good = "phone,name,priority\n13912345678,张三,1\n"
    r = s.post(url + "/leads", data={"csrf": csrf}, files={"file": ("leads.csv", good.encode(), "text/csv")})
    assert r.status_code == 200 and 'data-imported="yes"' in r.text and '<b id="lead-count">1</b>' in r.text
    r = s.post(url + "/action", data={"action": "start", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and "进行中" in s.get(url).text
    r = s.post(url + "/action", data={"action": "start", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303  # a second click changes nothing
    r = s.post(url, data={"name": "休眠客户激活", "kind": "dormant", "script_id": "dormant", "csrf": csrf})
    assert r.status_code == 409 and r.json()["error"]["message"] == "“进行中”状态的活动不能修改（请先暂停）"
    r = s.post(url, data={"name": "x", "kind": "dormant", "script_id": "nosuch", "csrf": csrf})
    assert r.status_code == 422 and r.json()["error"]["message"] == "话术“nosuch”不存在"
    assert s.get("/supervisor/reports?by=campaign").status_code == 200
    rep = s.get("/supervisor/reports.csv?by=agent")
    assert rep.status_code == 200 and rep.headers["content-type"].startswith("text/csv")
    lines = rep.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("外呼报表：") and lines[1].startswith("坐席,拨打,接通")  # translated, never codes
    assert s.get("/supervisor/reports?start=2026-13-01").status_code == 422
    assert s.post(url + "/action", data={"action": "stop", "csrf": csrf}, follow_redirects=False).status_code == 303
    r = s.post(url + "/action", data={"action": "resume", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 409 and r.json()["error"]["message"] == "“已结束”的外呼活动不能继续"
