"""``GET /api/desk/status``: the agent's state and open desk contact, read from the database — a call that
reached the agent while no browser was open is there when the screen loads."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.services.dialer import campaigns as dialer
from callcenter.services import desk
from callcenter.store.db import run_in_transaction
from callcenter.web.app import create_app
from tests.e2e.desk_world import build, page_login

pytestmark = pytest.mark.db


def test_status_shows_a_contact_opened_with_no_browser_connected(core: App) -> None:
    world = build(core)
    ag1 = world.staff["ag1"]
    c = TestClient(create_app(core), raise_server_exceptions=False)
    assert c.get("/api/desk/status").status_code == 401
    h = {"X-CSRF-Token": page_login(c, "ag1")}
    r = c.get("/api/desk/status")
    assert r.status_code == 200 and r.json()["state"] == "logged_out" and r.json()["contact"] is None
    assert c.post("/api/desk/state", json={"state": "paused", "reason": "meal"}, headers=h).status_code == 200
    body = c.get("/api/desk/status").json()
    assert (body["state"], body["reason"], body["contact"]) == ("paused", "meal", None)
    dialer.agent_ready(core, ag1)
    facts = desk.ContactFacts(client_id=world.mine, attempt_id=world.attempt, lead_id=world.lead,
                              campaign_id=world.campaign, attempt_no=2)
    contact_id = run_in_transaction(core.sessions, lambda s: desk.open_contact(s, ag1, facts, core.clock()))
    body = c.get("/api/desk/status").json()  # no stream was open: the database says it all
    assert body["state"] == "talking" and body["reason"] == ""
    assert body["contact"] == {"id": contact_id, "client_id": world.mine, "campaign_id": world.campaign,
                               "since": body["contact"]["since"], "direction": "outbound", "hung_up": False,
                               "on_hold": False, "muted": False}
    assert body["contact"]["since"].startswith(core.clock().strftime("%Y-%m-%dT%H:%M:%S"))
    assert c.post(f"/api/desk/contacts/{contact_id}/hangup", headers=h).status_code == 200
    body = c.get("/api/desk/status").json()
    assert body["state"] == "wrap_up" and body["contact"]["hung_up"] is True
    assert body["wrap_up_limit_s"] == 0.0  # the setting: 0, the agent ends the wrap-up
    core.settings.wrap_up_limit_s = 45.0
    assert c.get("/api/desk/status").json()["wrap_up_limit_s"] == 45.0  # the dialler ends it after 45 s
    assert c.post(f"/api/desk/contacts/{contact_id}/dispose", headers=h,
                  json={"disposition": "not_interested"}).status_code == 200
    assert c.get("/api/desk/status").json()["contact"] is None
    # a supervisor's desk status is their own (they may sit at the desk), never the agent's call; QA has no desk
    sup = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(sup, "sup1")
    mine = sup.get("/api/desk/status")
    assert mine.status_code == 200 and mine.json()["contact"] is None and mine.json()["state"] != "wrap_up"
    adm = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(adm, "adm")
    assert adm.get("/api/desk/status").status_code == 403
