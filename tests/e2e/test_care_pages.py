"""The client-care screens: roles, CSRF, group scoping, and a complaint's life on the pages — opened from the
agent endpoint, listed for the supervisor, overdue once the clock passes its due time, closed, and followed by
the satisfaction call-back care schedules by itself. Also the 财经秘书 endpoints, 回访 coverage and the
reminder plan page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.services.care.subscriptions import SubscriptionService
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db

SUP_PAGES = ["/supervisor/care/complaints", "/supervisor/care/callbacks", "/supervisor/care/reminders"]


@pytest.fixture
def world(core: App) -> World:
    return build(core)


def login_as(core: App, user: str | None) -> tuple[TestClient, str]:
    c = TestClient(create_app(core), raise_server_exceptions=True)
    return c, (page_login(c, user) if user else "")


def row(html: str, table_id: str, attr: str, value: int) -> str | None:
    """The <tr> with data-<attr>=value inside the table with that id, or None."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    if table is None:
        return None
    found = re.search(rf'<tr[^>]*data-{attr}="{value}".*?</tr>', table.group(0), re.S)
    return found.group(0) if found else None


@pytest.mark.parametrize("role,want", [(None, "login"), ("ag1", 403), ("sup1", 200), ("adm", 200)])
def test_supervisor_pages_by_role(core: App, world: World, role: str | None, want: object) -> None:
    c, _ = login_as(core, role)
    for path in SUP_PAGES:
        r = c.get(path, follow_redirects=False)
        if want == "login":
            assert r.status_code == 303 and r.headers["location"] == "/login", path
        else:
            assert r.status_code == want, (path, r.text[:200])
    if role in ("sup1", "adm"):
        assert 'href="/supervisor/care/complaints"' in c.get("/supervisor/wallboard").text  # the nav link


def test_agent_endpoints_need_login_csrf_and_a_visible_client(core: App, world: World) -> None:
    anon, _ = login_as(core, None)
    assert anon.get(f"/api/care/clients/{world.mine}/subscriptions").status_code == 401
    c, csrf = login_as(core, "ag1")
    body = {"category": "service_attitude", "text": "客服态度差"}
    assert c.post(f"/api/care/clients/{world.mine}/complaints", json=body).status_code == 403  # no CSRF token
    h = {"X-CSRF-Token": csrf}
    r = c.post(f"/api/care/clients/{world.theirs}/complaints", json=body, headers=h)
    assert r.status_code == 404, r.text
    assert c.get(f"/api/care/clients/{world.theirs}/subscriptions").status_code == 404
    assert c.get(f"/agent/care/clients/{world.theirs}").status_code == 404
    assert c.post(f"/api/care/clients/{world.theirs}/subscriptions", json={"topic": "ipo", "enabled": True},
                  headers=h).status_code == 404
    assert c.post(f"/api/care/clients/{world.mine}/complaints", json={**body, "category": "nonsense"},
                  headers=h).status_code == 422
    # a contact that is not this agent's call with this client cannot be linked
    assert c.post(f"/api/care/clients/{world.mine}/complaints", json={**body, "contact_id": 999999},
                  headers=h).status_code == 404
    assert SubscriptionService(core.sessions, core.clock).get(world.theirs).topics["ipo"] is False


def test_complaint_life_on_the_pages(core: App, world: World, clock) -> None:  # type: ignore[no-untyped-def]
    agent, a_csrf = login_as(core, "ag1")
    r = agent.post(f"/api/care/clients/{world.mine}/complaints", headers={"X-CSRF-Token": a_csrf},
                   json={"category": "fund_transfer", "text": "银证转账资金未到账"})
    assert r.status_code == 201, r.text
    opened = r.json()
    cid = opened["id"]
    assert opened["status"] == "open" and opened["overdue"] is False
    assert opened["owner_id"] == world.staff["sup1"]  # the supervisor of the client's group
    listed = agent.get(f"/api/care/clients/{world.mine}/complaints").json()
    assert [x["id"] for x in listed] == [cid]

    sup, s_csrf = login_as(core, "sup1")
    page = sup.get("/supervisor/care/complaints").text
    assert row(page, "complaints", "complaint", cid) is not None
    assert row(page, "overdue", "complaint", cid) is None and 'id="no-overdue"' in page

    clock.now += timedelta(hours=25)  # fund-transfer complaints are due within 24 hours
    (agent, a_csrf), (sup, s_csrf) = login_as(core, "ag1"), login_as(core, "sup1")  # the sessions went idle
    page = sup.get("/supervisor/care/complaints").text
    over = row(page, "overdue", "complaint", cid)
    assert over is not None and "overdue" in over
    assert "overdue" in (row(page, "complaints", "complaint", cid) or "")
    assert 'id="overdue-flag"' in sup.get(f"/supervisor/care/complaints/{cid}").text

    # the other group's supervisor view: an agent may not open the page, a post without CSRF is refused
    assert agent.get(f"/supervisor/care/complaints/{cid}").status_code == 403
    r = sup.post(f"/supervisor/care/complaints/{cid}/note", data={"text": "已联系银行"}, follow_redirects=False)
    assert r.status_code == 403

    r = sup.post(f"/supervisor/care/complaints/{cid}/note", data={"text": "已联系银行核查", "csrf": s_csrf},
                 follow_redirects=False)
    assert r.status_code == 303
    r = sup.post(f"/supervisor/care/complaints/{cid}/assign", data={"owner_id": world.staff["adm"], "csrf": s_csrf},
                 follow_redirects=False)
    assert r.status_code == 303
    r = sup.post(f"/supervisor/care/complaints/{cid}/move", data={"to_status": "in_progress", "csrf": s_csrf},
                 follow_redirects=False)
    assert r.status_code == 303
    # closing needs a resolution
    r = sup.post(f"/supervisor/care/complaints/{cid}/move", data={"to_status": "closed", "csrf": s_csrf},
                 follow_redirects=False)
    assert r.status_code == 422
    r = sup.post(f"/supervisor/care/complaints/{cid}/move",
                 data={"to_status": "closed", "resolution": "银行已补入账，客户认可", "csrf": s_csrf},
                 follow_redirects=False)
    assert r.status_code == 303
    # a closed complaint cannot be resolved again (only reopened)
    r = sup.post(f"/supervisor/care/complaints/{cid}/move", data={"to_status": "resolved", "csrf": s_csrf},
                 follow_redirects=False)
    assert r.status_code == 409

    detail = sup.get(f"/supervisor/care/complaints/{cid}").text
    assert "已关闭" in detail and 'id="overdue-flag"' not in detail
    history = re.search(r'<table[^>]*id="history".*?</table>', detail, re.S).group(0)  # type: ignore[union-attr]
    assert "登记" in history and "已联系银行核查" in history and "处理中 → 已关闭" in history
    assert 'id="satisfaction"' in detail and "投诉后满意度回访" in detail
    page = sup.get("/supervisor/care/complaints").text
    assert row(page, "overdue", "complaint", cid) is None

    callbacks = sup.get("/supervisor/care/callbacks").text
    scheduled = re.search(r'<table[^>]*id="scheduled".*?</table>', callbacks, re.S)
    assert scheduled is not None and 'data-purpose="satisfaction"' in scheduled.group(0)
    assert f'href="/supervisor/care/complaints/{cid}"' in scheduled.group(0)


def test_supervisor_sees_only_complaints_of_supervised_groups(core: App, world: World) -> None:
    from callcenter.services.care.complaints import ComplaintService

    svc = ComplaintService.for_app(core)
    other = svc.open(world.theirs, "commission", "佣金过高", channel="ivr")
    sup, _ = login_as(core, "sup1")
    assert row(sup.get("/supervisor/care/complaints").text, "complaints", "complaint", other) is None
    assert sup.get(f"/supervisor/care/complaints/{other}").status_code == 404
    adm, _ = login_as(core, "adm")
    assert row(adm.get("/supervisor/care/complaints").text, "complaints", "complaint", other) is not None


def test_agent_switches_subscriptions_and_opt_outs(core: App, world: World) -> None:
    c, csrf = login_as(core, "ag1")
    h = {"X-CSRF-Token": csrf}
    prefs = c.get(f"/api/care/clients/{world.mine}/subscriptions").json()
    assert {x["topic"]: x["enabled"] for x in prefs["topics"]}["ipo"] is False
    r = c.post(f"/api/care/clients/{world.mine}/subscriptions", json={"topic": "ipo", "enabled": True}, headers=h)
    assert r.status_code == 200 and {x["topic"]: x["enabled"] for x in r.json()["topics"]}["ipo"] is True
    assert c.post(f"/api/care/clients/{world.mine}/subscriptions", json={"topic": "weather", "enabled": True},
                  headers=h).status_code == 422
    r = c.post(f"/api/care/clients/{world.mine}/optouts", json={"channel": "sms", "opted_out": True}, headers=h)
    assert r.json()["opted_out"] == ["sms"]
    prefs = SubscriptionService(core.sessions, core.clock).get(world.mine)
    assert prefs.topics["ipo"] is True and prefs.opted_out == frozenset({"sms"})
    panel = c.get(f"/agent/care/clients/{world.mine}").text
    assert 'data-topic="ipo" data-enabled="true"' in panel and "已退订" in panel
    r = c.post(f"/api/care/clients/{world.mine}/optouts", json={"channel": "sms", "opted_out": False}, headers=h)
    assert r.json()["opted_out"] == []


def test_coverage_and_reminder_plan_pages(core: App, world: World, clock) -> None:  # type: ignore[no-untyped-def]
    sup, _ = login_as(core, "sup1")
    page = sup.get("/supervisor/care/callbacks").text
    # two existing clients (opened 2020), none called back this year: 10 % requirement not met
    assert re.search(r'id="existing-clients">2<', page) and re.search(r'id="existing-called">0<', page)
    assert "未达标" in page and "10%" in page
    plan = sup.get("/supervisor/care/reminders?date=" + clock.now.date().isoformat())
    assert plan.status_code == 200 and 'id="plan-summary"' in plan.text
    assert sup.get("/supervisor/care/reminders?date=2026-13-40").status_code == 422


def test_every_care_route_denies_an_anonymous_caller(core: App, world: World) -> None:
    from callcenter.web.pages import care

    c = TestClient(create_app(core), raise_server_exceptions=True)
    seen = 0
    for route in [r for sub in (care.pages, care.agent_pages, care.api) for r in sub.routes]:
        path = route.path.replace("{complaint_id}", "1").replace("{client_id}", str(world.mine))  # type: ignore[attr-defined]
        for method in route.methods:  # type: ignore[attr-defined]
            r = c.request(method, path, follow_redirects=False)
            assert r.status_code in (303, 401), (method, path, r.status_code)
            assert r.status_code == 401 or r.headers["location"] == "/login"
            seen += 1
    assert seen >= 14
