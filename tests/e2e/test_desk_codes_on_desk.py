"""Dispositions and pause codes per campaign kind, as the administrators configure them (/admin/codes), on the
agent desk: the call card's disposition buttons and the pause choices are those of the call's campaign kind (and
of every kind), and the server accepts only those for that call; with none configured the built-in ones hold."""

from __future__ import annotations

from datetime import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from callcenter.bootstrap import App
from callcenter.services import desk
from callcenter.services.dialer import campaigns as dialer
from callcenter.store.db import run_in_transaction
from callcenter.store.models import DeskCode
from callcenter.store.models.dialer import AgentSession, Attempt, Campaign, Lead
from callcenter.web.app import create_app
from callcenter.web.pages.common import LANG_COOKIE
from tests.e2e.desk_world import World, build, connect_call, page_login

pytestmark = pytest.mark.db


def _dormant_call(core: App, world: World) -> tuple[int, int]:
    """A dormant-client campaign's call reaching ag2 (the client of ag2's group): (campaign id, contact id)."""
    now = core.clock()
    ag2 = world.staff["ag2"]

    def work(s) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
        camp = Campaign(name="沉睡客户唤醒", kind="dormant", script_id="dormant", state="running",
                        window_start=time(9), window_end=time(20), retry_delays={}, created_at=now, updated_at=now)
        s.add(camp)
        s.flush()
        lead = Lead(campaign_id=camp.id, client_id=world.theirs, name="", phone="+8613900000002",
                    status="in_progress", extra={}, created_at=now, updated_at=now)
        s.add(lead)
        s.flush()
        att = Attempt(lead_id=lead.id, campaign_id=camp.id, attempt_no=1, agent_id=ag2, phone=lead.phone,
                      dialled_at=now, answered_at=now, connected_at=now, outcome="human")
        s.add(att)
        s.flush()
        return camp.id, lead.id, att.id

    camp, lead, att = run_in_transaction(core.sessions, work)
    dialer.agent_login(core, ag2)
    dialer.agent_ready(core, ag2)
    facts = desk.ContactFacts(client_id=world.theirs, attempt_id=att, lead_id=lead, campaign_id=camp)
    return camp, run_in_transaction(core.sessions, lambda s: desk.open_contact(s, ag2, facts, core.clock()))


def _add_code(c: TestClient, csrf: str, code_type: str, code: str, zh: str, en: str, kind: str) -> None:
    r = c.post("/admin/codes", data={"csrf": csrf, "code_type": code_type, "code": code, "label_zh": zh,
                                     "label_en": en, "campaign_kind": kind, "position": "0"}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _buttons(html: str) -> list[str]:
    import re

    return re.findall(r'class="disp" data-disposition="([^"]+)">([^<]*)<', html)


def test_an_admin_configured_code_is_on_the_desk_for_its_kind_only_and_the_server_holds_to_it(core: App) -> None:
    world = build(core)
    ag1, ag2 = world.staff["ag1"], world.staff["ag2"]
    adm = TestClient(create_app(core), raise_server_exceptions=True)
    csrf = page_login(adm, "adm")
    _add_code(adm, csrf, "disposition", "policy_explained", "已讲解政策", "Policy explained", "former_clients")
    _add_code(adm, csrf, "disposition", "reactivated", "已激活", "Re-activated", "dormant")
    _add_code(adm, csrf, "pause", "coaching", "辅导", "Coaching", "former_clients")

    # ag1: a win-back (former_clients) call
    dialer.agent_login(core, ag1)
    dialer.agent_ready(core, ag1)
    contact1 = connect_call(core, world)["contact_id"]
    a1 = TestClient(create_app(core), raise_server_exceptions=False)
    h1 = {"X-CSRF-Token": page_login(a1, "ag1")}
    card1 = a1.get(f"/agent/contacts/{contact1}/card")
    assert card1.status_code == 200
    codes1 = dict(_buttons(card1.text))
    assert codes1["policy_explained"] == "已讲解政策" and "reactivated" not in codes1
    assert codes1["not_interested"] == "不感兴趣"  # the codes for every kind are there too
    status1 = a1.get("/api/desk/status").json()
    assert {"code": "coaching", "label": "辅导"} in status1["pause_codes"]

    # ag2: a dormant-client call: the other kind's code is not on this desk, its own is
    _, contact2 = _dormant_call(core, world)
    a2 = TestClient(create_app(core), raise_server_exceptions=False)
    h2 = {"X-CSRF-Token": page_login(a2, "ag2")}
    codes2 = dict(_buttons(a2.get(f"/agent/contacts/{contact2}/card").text))
    assert codes2["reactivated"] == "已激活" and "policy_explained" not in codes2
    assert "coaching" not in [p["code"] for p in a2.get("/api/desk/status").json()["pause_codes"]]
    a2.cookies.set(LANG_COOKIE, "en")
    assert ("reactivated", "Re-activated") in _buttons(a2.get(f"/agent/contacts/{contact2}/card").text)
    a2.cookies.set(LANG_COOKIE, "zh-CN")

    # the server accepts only this call's kind's codes
    bad = a2.post(f"/api/desk/contacts/{contact2}/dispose", headers=h2, json={"disposition": "policy_explained"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_disposition"
    assert a2.post(f"/api/desk/contacts/{contact2}/dispose", headers=h2,
                   json={"disposition": "reactivated"}).status_code == 200
    assert a1.post(f"/api/desk/contacts/{contact1}/dispose", headers=h1,
                   json={"disposition": "reactivated"}).status_code == 422
    assert a1.post(f"/api/desk/contacts/{contact1}/dispose", headers=h1,
                   json={"disposition": "policy_explained"}).status_code == 200
    disposed = run_in_transaction(core.sessions, lambda s: s.get(Attempt, world.attempt).disposition)
    assert disposed == "policy_explained"

    # pause codes: those of the campaign the agent's session works
    def works(s, staff_id: int, campaign_id: int | None) -> None:  # type: ignore[no-untyped-def]
        s.execute(select(AgentSession).where(AgentSession.staff_id == staff_id, AgentSession.ended_at.is_(None))
                  ).scalar_one().campaign_id = campaign_id

    run_in_transaction(core.sessions, lambda s: works(s, ag1, world.campaign))
    page = a1.get("/agent").text
    assert '<option value="coaching">辅导</option>' in page
    ok = a1.post("/api/desk/state", headers=h1, json={"state": "paused", "reason": "coaching"})
    assert ok.status_code == 200 and ok.json()["reason"] == "coaching"
    assert a1.get("/api/desk/status").json()["reason_label"] == "辅导"
    assert "辅导" in a1.get("/agent").text  # the status bar names it
    assert '<option value="coaching">' not in a2.get("/agent").text
    refused = a2.post("/api/desk/state", headers=h2, json={"state": "paused", "reason": "coaching"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "bad_reason"
    assert a2.post("/api/desk/state", headers=h2, json={"state": "paused", "reason": "meal"}).status_code == 200


def test_with_no_code_configured_the_desk_offers_the_built_in_ones(core: App) -> None:
    world = build(core)
    run_in_transaction(core.sessions, lambda s: s.execute(delete(DeskCode)))
    ag1 = world.staff["ag1"]
    dialer.agent_login(core, ag1)
    dialer.agent_ready(core, ag1)
    contact = connect_call(core, world)["contact_id"]
    a1 = TestClient(create_app(core), raise_server_exceptions=False)
    h1 = {"X-CSRF-Token": page_login(a1, "ag1")}
    codes = [code for code, _ in _buttons(a1.get(f"/agent/contacts/{contact}/card").text)]
    assert codes[:3] == ["appointment_booked", "second_call", "callback"] and len(codes) == 10
    assert [p["code"] for p in a1.get("/api/desk/status").json()["pause_codes"]] == [
        "break", "meal", "training", "meeting", "admin"]
    assert a1.post(f"/api/desk/contacts/{contact}/dispose", headers=h1,
                   json={"disposition": "nonsense"}).status_code == 422
    assert a1.post(f"/api/desk/contacts/{contact}/dispose", headers=h1,
                   json={"disposition": "callback"}).status_code == 200
