"""The supervisors' JSON API for integration (issue 13): campaigns, their leads (masked), life-cycle actions,
the reports and the wall board (the viewer's cut), in the OpenAPI schema; supervisors and admin only; codes come
with labels in the caller's language."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.services import desk
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import Lead
from callcenter.web.app import create_app
from callcenter.web.pages.common import LANG_COOKIE
from tests.db.test_wallboard_grid import ivr_call
from tests.e2e.desk_world import World, build, connect_call, page_login

pytestmark = pytest.mark.db


def _client(core: App, user: str) -> tuple[TestClient, dict[str, str]]:
    c = TestClient(create_app(core), raise_server_exceptions=True)
    return c, {"X-CSRF-Token": page_login(c, user)}


def test_campaigns_leads_and_actions(core: App) -> None:
    world: World = build(core)
    now = core.clock()
    run_in_transaction(core.sessions, lambda s: s.add(Lead(campaign_id=world.campaign, phone="+8613912345678",
                                                           name="王五", status="new", extra={}, created_at=now,
                                                           updated_at=now)))
    c, h = _client(core, "sup1")
    camps = c.get("/api/campaigns").json()
    (camp,) = camps
    assert (camp["id"], camp["kind"], camp["kind_label"], camp["state"], camp["state_label"]) == (
        world.campaign, "former_clients", "销户老客户", "running", "进行中")
    assert camp["leads"] == 2 and camp["leads_by_status"] == {"in_progress": 1, "new": 1}
    assert camp["window_start"] == "09:00" and camp["window_end"] == "20:00"
    leads = c.get(f"/api/campaigns/{world.campaign}/leads").json()
    assert [x["status"] for x in leads] == ["in_progress", "new"]
    assert leads[1]["phone"] != "+8613912345678" and leads[1]["phone"].endswith("5678")  # masked
    assert leads[1]["status_label"] == "待拨打"
    assert [x["name"] for x in c.get(f"/api/campaigns/{world.campaign}/leads?status=new").json()] == ["王五"]
    assert len(c.get(f"/api/campaigns/{world.campaign}/leads?offset=1&limit=1").json()) == 1
    assert c.get(f"/api/campaigns/{world.campaign}/leads?status=bogus").status_code == 422
    assert c.get("/api/campaigns/999999").status_code == 404
    paused = c.post(f"/api/campaigns/{world.campaign}/action", json={"action": "pause"}, headers=h)
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    bad = c.post(f"/api/campaigns/{world.campaign}/action", json={"action": "pause"}, headers=h)
    assert bad.status_code in (200, 409)  # pausing a paused campaign changes nothing or is refused in words
    c.cookies.set(LANG_COOKIE, "en")
    assert c.get(f"/api/campaigns/{world.campaign}").json()["state_label"] == "Paused"
    # agents and QA are not in
    agent, _ = _client(core, "ag1")
    for path in ("/api/campaigns", f"/api/campaigns/{world.campaign}/leads", "/api/reports", "/api/wallboard"):
        assert agent.get(path).status_code == 403, path
    assert TestClient(create_app(core)).get("/api/campaigns").status_code == 401


def test_reports_and_the_wall_board_as_the_viewer_may_see_them(core: App) -> None:
    world = build(core)
    st = world.staff
    desk.set_state(core, st["ag1"], "ready")
    desk.set_state(core, st["ag2"], "paused", reason="meal")
    connect_call(core, world)
    ivr_call(core, 1, core.clock() - timedelta(seconds=20), client_id=world.mine)
    sup, _ = _client(core, "sup1")
    board = sup.get("/api/wallboard").json()
    assert [r["name"] for r in board["agent_rows"]] == ["ag1"]  # sup1's group only
    assert board["agent_rows"][0]["state_label"] == "通话中"
    assert [g["group_id"] for g in board["groups"]] == [world.g1]
    assert board["groups"][0]["waiting"] == 1 and board["groups"][0]["talking"] == 1
    assert board["ivr_waiting"] == 1 and board["campaigns"][0]["state_label"] == "进行中"
    adm, _ = _client(core, "adm")
    rows = {r["name"]: r for r in adm.get("/api/wallboard").json()["agent_rows"]}
    assert set(rows) == {"ag1", "ag2"} and rows["ag2"]["reason_label"] == "用餐"

    rep = sup.get("/api/reports", params={"kind": "outbound", "by": "campaign"}).json()
    assert rep["headers"][:2] == ["活动", "拨打"] and rep["rows"][0][0] == "老客户回访季"
    for kind in ("inbound", "transfers", "complaints"):
        r = sup.get("/api/reports", params={"kind": kind})
        assert r.status_code == 200 and r.json()["kind"] == kind and r.json()["headers"], kind
    assert sup.get("/api/reports", params={"start": "2026-12-01", "end": "2026-11-01"}).status_code == 422

    schema = adm.get("/openapi.json")  # api_docs "staff" (the default): any signed-in staff member
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for p in ("/api/campaigns", "/api/campaigns/{campaign_id}", "/api/campaigns/{campaign_id}/leads",
              "/api/campaigns/{campaign_id}/action", "/api/reports", "/api/wallboard"):
        assert p in paths, p
