""""Call this callback now" from the agent desk's callbacks list (issue 13): the callback becomes due now and
the agent's own, the agent goes ready and the dialler's call core places it to them (in Debian's Chromium with
the engine on the simulated PBX); refused in words when the number is on the do-not-call list, outside the
campaign's calling hours, the campaign is not running, the agent is on a call or not in the campaign."""

from __future__ import annotations

import asyncio
import re
from datetime import time, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.adapters.telephony.simulated import SimulatedPbx
from callcenter.bootstrap import App
from callcenter.domain import hearing as H
from callcenter.domain.shift_simulation import CustomerModel
from callcenter.parts.dialer import dialer_deps
from callcenter.services import desk
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog
from callcenter.store.models.dialer import Attempt, Callback, DncEntry, Lead
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, connect_call, page_login
from tests.e2e.test_browser_screens import _csp_violations, _login, browser, serving_with_engine  # noqa: F401

pytestmark = pytest.mark.db
PHONE = "+8613900000077"
WAIT_MS = 20_000  # a bound against hanging, never a timing assertion


def _campaign_with_a_callback(core: App, world: World, *, window: tuple[time, time] = (time(0), time(23, 59, 59)),
                              owner: str = "ag1") -> tuple[int, int]:
    """A running win-back campaign of group 1 with world's client as a lead called once already (not due again),
    and a callback of it booked for two hours from now: (campaign id, callback id)."""
    cid = dialer.create_campaign(core, name="流失客户挽回", kind="former_clients", script_id="win_back",
                                 dial_mode="progressive", window_start=window[0], window_end=window[1], days="every")
    dialer.assign_campaign(core, cid, group_ids=[world.g1])
    add_leads(core, cid, [LeadRow(0, PHONE, "", 0, None, world.mine)])
    now = core.clock()

    def book(s: Any) -> int:
        lead = s.execute(select(Lead).where(Lead.campaign_id == cid)).scalar_one()
        lead.status, lead.attempts, lead.next_attempt_at = "retry", 1, now + timedelta(days=2)
        return dialer.book_callback_in(s, now, due_at=now + timedelta(hours=2), lead_id=lead.id, agent_only=True,
                                       owner_id=world.staff[owner], note="客户说下午方便", created_by=world.staff[owner])

    cb = run_in_transaction(core.sessions, book)
    dialer.campaign_action(core, cid, "start")
    return cid, cb


def _agent(core: App, user: str = "ag1") -> tuple[TestClient, dict[str, str]]:
    c = TestClient(create_app(core), raise_server_exceptions=False)
    return c, {"X-CSRF-Token": page_login(c, user)}


def test_refusals_are_sentences_and_change_nothing(core: App) -> None:
    world = build(core)
    cid, cb = _campaign_with_a_callback(core, world)
    a, h = _agent(core)

    def dial() -> Any:
        return a.post(f"/api/desk/callbacks/{cb}/dial", headers=h)

    r = dial()
    assert r.status_code == 409 and r.json()["error"]["code"] == "log_in_first", r.text
    assert r.json()["error"]["message"] == "请先签入"
    desk.set_state(core, world.staff["ag1"], "paused", reason="break")
    # another agent's own callback is not theirs to place (and not even shown)
    other, oh = _agent(core, "bo1")
    desk.set_state(core, world.staff["bo1"], "ready")
    assert other.post(f"/api/desk/callbacks/{cb}/dial", headers=oh).status_code == 404
    # on a call: finish it first
    dialer.agent_ready(core, world.staff["ag1"])
    contact = connect_call(core, world)["contact_id"]
    assert dial().json()["error"]["code"] == "finish_call_first"
    assert a.post(f"/api/desk/contacts/{contact}/dispose", headers=h, json={"disposition": "completed"}).status_code == 200
    # the number on the do-not-call list (an entry the list got another way: add_dnc itself cancels the callbacks)
    def listed(s: Any) -> int:
        e = DncEntry(phone=PHONE, campaign_id=None, reason="client_request", at=core.clock())
        s.add(e)
        s.flush()
        return int(e.id)

    dnc = run_in_transaction(core.sessions, listed)
    r = dial()
    assert r.status_code == 409 and r.json()["error"]["code"] == "on_dnc" and "免打扰" in r.json()["error"]["message"]
    run_in_transaction(core.sessions, lambda s: s.delete(s.get(DncEntry, dnc)))
    # the campaign paused
    dialer.campaign_action(core, cid, "pause")
    assert dial().json()["error"]["code"] == "campaign_not_running"
    dialer.campaign_action(core, cid, "resume")
    cb_row = run_in_transaction(core.sessions, lambda s: (s.get(Callback, cb).due_at, s.get(Callback, cb).status))
    assert cb_row[1] == "pending" and cb_row[0] > core.clock() + timedelta(hours=1)  # unchanged by the refusals
    ok = dial()
    assert ok.status_code == 200 and ok.json()["state"] == "ready" and ok.json()["campaign_id"] == cid
    row = run_in_transaction(core.sessions, lambda s: (s.get(Callback, cb).due_at, s.get(Callback, cb).owner_id))
    assert row == (core.clock(), world.staff["ag1"])
    audit = run_in_transaction(core.sessions, lambda s: s.execute(select(AuditLog.staff_id).where(
        AuditLog.action == "callback_dial_now")).scalars().all())
    assert audit == [world.staff["ag1"]]


def test_outside_the_calling_hours_the_desk_says_so(core: App) -> None:
    world = build(core)
    _, cb = _campaign_with_a_callback(core, world, window=(time(20), time(21)))  # the suite's clock: 10:30
    a, h = _agent(core)
    desk.set_state(core, world.staff["ag1"], "paused", reason="break")
    r = a.post(f"/api/desk/callbacks/{cb}/dial", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "outside_calling_hours"
    assert r.json()["error"]["message"] == "现在不在该活动的呼叫时段内"


@pytest.mark.browser
@pytest.mark.slow
def test_the_agent_calls_a_callback_now_and_the_dialler_places_it_to_them(core: App, browser: Any) -> None:  # noqa: F811
    world = build(core)
    ag1 = world.staff["ag1"]
    cid, cb = _campaign_with_a_callback(core, world)
    model = CustomerModel(talk_mean_s=900.0, talk_sd_s=5.0, human_answer_min_s=0.5, human_answer_max_s=1.0)
    pbx = SimulatedPbx(model, outcomes={PHONE: "human"})
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="browser", campaign_ids={cid}, sync_s=0.3)
    with serving_with_engine(core, pbx, engine) as srv:
        page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        blocked = _csp_violations(page)
        _login(page, srv.url, "ag1")
        page.wait_for_url("**/agent")
        page.select_option("#pause-reason", "break")
        page.click("#btn-pause")  # signed in, on a break: the dialler routes nothing to them
        page.wait_for_selector("#statusbar[data-state='paused']")
        page.click(f"#callback-list .callback-item[data-callback='{cb}']")
        page.wait_for_selector("#callback-detail", state="visible")
        assert "下午方便" in page.inner_text("#cb-note")
        page.click("#cb-dial")
        page.wait_for_selector("#call-card #call-controls", timeout=WAIT_MS)  # the dialler placed it to ag1
        page.wait_for_selector("#statusbar[data-state='talking']", timeout=WAIT_MS)
        assert page.inner_text("#client-name").startswith("测试")

        def placed(s: Any) -> tuple[str, str, int | None, int | None]:
            row = s.get(Callback, cb)
            att = s.get(Attempt, row.attempt_id)
            return row.status, att.mode, att.agent_id, att.callback_id

        assert run_in_transaction(core.sessions, placed) == ("placed", "callback", ag1, cb)
        call_id = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, next(iter(engine.calls))), srv.loop).result(5)
        assert asyncio.run_coroutine_threadsafe(
            asyncio.sleep(0, pbx.hears(H.customer(call_id), H.agent(ag1))), srv.loop).result(5)
        assert blocked == []


def test_manual_dial_of_a_number_or_a_client_goes_through_the_campaign_and_its_checks(core: App) -> None:
    world = build(core)
    cid, _ = _campaign_with_a_callback(core, world)
    a, h = _agent(core)

    def dial(**body: Any) -> Any:
        return a.post("/api/desk/dial", headers=h, json=body)

    assert dial(phone="13911112222").json()["error"]["code"] == "log_in_first"
    desk.set_state(core, world.staff["ag1"], "paused", reason="break")
    assert dial(phone="12").status_code == 422 and dial(phone="12").json()["error"]["code"] == "bad_number"
    assert dial().status_code == 422
    assert dial(client_id=world.theirs).status_code == 404  # another group's client: not this agent's to dial
    run_in_transaction(core.sessions, lambda s: s.add(DncEntry(phone="+8613911113333", campaign_id=None,
                                                                reason="client_request", at=core.clock())))
    assert dial(phone="139 1111 3333").json()["error"]["code"] == "on_dnc"
    ok = dial(phone="139-1111-2222")
    assert ok.status_code == 200 and ok.json()["campaign_id"] == cid and ok.json()["state"] == "ready"

    def made(s: Any) -> tuple[str, str, bool, int | None, str]:
        cb = s.get(Callback, ok.json()["callback_id"])
        lead = s.get(Lead, cb.lead_id)
        return lead.phone, lead.status, cb.agent_only, cb.owner_id, cb.status

    assert run_in_transaction(core.sessions, made) == ("+8613911112222", "done", True, world.staff["ag1"], "pending")
    # a client of their own group: the client's mobile, the lead tied to the client
    desk.set_state(core, world.staff["ag1"], "paused", reason="break")
    mine = dial(client_id=world.mine)
    assert mine.status_code == 200
    assert run_in_transaction(core.sessions, lambda s: s.get(Lead, s.get(Callback, mine.json()["callback_id"]).lead_id)
                              .client_id) == world.mine
    # nothing running to dial through
    dialer.campaign_action(core, cid, "stop")
    assert dial(phone="13911114444").json()["error"]["code"] == "no_campaign_to_dial"


def test_supervisors_see_their_groups_booked_callbacks_by_due_time_and_agent(core: App) -> None:
    world = build(core)
    cid, mine = _campaign_with_a_callback(core, world)  # ag1's (group 1), due in two hours
    now = core.clock()

    def more(s: Any) -> tuple[int, int]:
        lead = s.execute(select(Lead).where(Lead.campaign_id == cid)).scalar_one()
        soon = dialer.book_callback_in(s, now, due_at=now + timedelta(minutes=30), lead_id=lead.id, agent_only=True,
                                       owner_id=world.staff["bo1"], note="先发资料", created_by=world.staff["bo1"])
        theirs = dialer.book_callback_in(s, now, due_at=now + timedelta(hours=1), lead_id=lead.id, agent_only=True,
                                         owner_id=world.staff["ag2"], created_by=world.staff["ag2"])
        return soon, theirs

    soon, theirs = run_in_transaction(core.sessions, more)
    sup = TestClient(create_app(core))
    page_login(sup, "sup1")
    html = sup.get("/supervisor/callbacks").text
    order = [int(x) for x in re.findall(r'<tr data-callback="(\d+)"', html)]
    assert order == [soon, mine]  # by due time; ag2's (another group) not shown
    assert "先发资料" in html and "bo1" in html and "+8613900000077" not in html  # the number masked
    only = sup.get(f"/supervisor/callbacks?agent={world.staff['ag1']}").text
    assert [int(x) for x in re.findall(r'<tr data-callback="(\d+)"', only)] == [mine]
    adm = TestClient(create_app(core))
    page_login(adm, "adm")
    assert len(re.findall(r'<tr data-callback="', adm.get("/supervisor/callbacks").text)) == 3
    agent = TestClient(create_app(core))
    page_login(agent, "ag1")
    assert agent.get("/supervisor/callbacks").status_code == 403
    assert theirs
