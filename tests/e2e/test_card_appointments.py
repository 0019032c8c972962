"""预约服务 and 行情报警 from the agent's call card, and the supervisors' appointment list: the card offers the next
free slots per kind and books one for the client of the call (the same slot again answers the first booking); a
price alert at the client's request; a supervisor of the client's group lists, then cancels it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services import desk
from callcenter.store.db import transaction
from callcenter.store.models import Appointment, PriceAlert
from callcenter.web.app import create_app
from tests.e2e.desk_world import build, call_event, page_login

pytestmark = pytest.mark.db


def test_card_books_appointments_sets_alerts_and_supervisors_manage_them(core: App) -> None:
    world = build(core)
    c = TestClient(create_app(core), raise_server_exceptions=False)
    h = {"X-CSRF-Token": page_login(c, "ag1")}
    cid = desk.contact_from_event(core.sessions, world.staff["ag1"], call_event(world), core.clock())
    card = c.get(f"/agent/contacts/{cid}/card").text
    assert 'id="appt-slot"' in card and "投资顾问回电 · 11月25日 星期三 13:00" in card
    body = {"kind": "analyst_callback", "slot_start": "2026-11-25T13:00:00+08:00", "note": "问科创板"}
    first = c.post(f"/api/desk/contacts/{cid}/appointments", headers=h, json=body)
    assert first.status_code == 200, first.text
    again = c.post(f"/api/desk/contacts/{cid}/appointments", headers=h, json=body)
    assert again.json()["id"] == first.json()["id"]
    late = c.post(f"/api/desk/contacts/{cid}/appointments", headers=h,
                  json={**body, "slot_start": "2026-11-25T12:00:00+08:00"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "outside_hours"
    assert "服务时间" in late.json()["error"]["message"]
    other = TestClient(create_app(core), raise_server_exceptions=False)
    oh = {"X-CSRF-Token": page_login(other, "ag2")}
    assert other.post(f"/api/desk/contacts/{cid}/appointments", headers=oh, json=body).status_code == 404
    with transaction(core.sessions) as s:
        row = s.scalars(select(Appointment)).one()
        assert (row.client_id, row.channel, row.booked_by, row.note) == (world.mine, "agent", world.staff["ag1"],
                                                                         "问科创板")
    card = c.get(f"/agent/contacts/{cid}/card").text
    listed = card.split('id="client-appointments"')[1].split("</ul>")[0]
    assert "11月25日 星期三 13:00" in listed and "投资顾问回电" in listed
    # 行情报警 at the client's request
    ok = c.post(f"/api/desk/contacts/{cid}/price-alerts", headers=h,
                json={"code": "600000", "direction": "above", "price": "12.50"})
    assert ok.status_code == 200, ok.text
    assert c.post(f"/api/desk/contacts/{cid}/price-alerts", headers=h,
                  json={"code": "999999", "direction": "above", "price": "1"}).status_code == 422
    with transaction(core.sessions) as s:
        alert = s.scalars(select(PriceAlert)).one()
        assert (alert.client_id, alert.code, alert.threshold_li, alert.source) == (world.mine, "600000", 12500, "agent")
    # the supervisor of the client's group lists it and cancels it
    sup = TestClient(create_app(core), raise_server_exceptions=False)
    csrf = page_login(sup, "sup1")
    page = sup.get("/supervisor/appointments")
    assert page.status_code == 200 and f'data-appointment="{row.id}"' in page.text and "问科创板" in page.text
    assert c.get("/supervisor/appointments").status_code == 403  # agents have no such page
    done = sup.post(f"/supervisor/appointments/{row.id}", data={"csrf": csrf, "action": "cancel"},
                    follow_redirects=False)
    assert done.status_code == 303, done.text
    with transaction(core.sessions) as s:
        assert s.get(Appointment, row.id).status == "cancelled"
    early = sup.post(f"/supervisor/appointments/{row.id}", data={"csrf": csrf, "action": "done"},
                     follow_redirects=False)
    assert early.status_code == 409  # cancelled: nothing to close


def test_supervisors_set_a_slots_capacity_on_the_appointments_page(core: App) -> None:
    """The slot grid on the supervisor's appointments page: a form per slot; 0 closes it (the grid says so, the
    agent's card no longer offers it), a bad value is a sentence; agents may not post it."""
    import re

    build(core)
    sup = TestClient(create_app(core), raise_server_exceptions=False)
    csrf = page_login(sup, "sup1")
    page = sup.get("/supervisor/appointments?kind=analyst_callback&day=2026-11-25")
    assert page.status_code == 200 and 'id="slots"' in page.text and "时段与容量" in page.text
    starts = re.findall(r'data-slot="([^"]+)"', page.text)
    assert starts[0] == "2026-11-25T09:00:00+08:00" and "2026-11-25T13:00:00+08:00" in starts
    thirteen = "2026-11-25T13:00:00+08:00"
    assert thirteen in [s.isoformat() for s in core.appointments.free_slots("analyst_callback", limit=3)]
    done = sup.post("/supervisor/appointment-slots", data={"csrf": csrf, "kind": "analyst_callback", "start": thirteen,
                                                           "capacity": "0", "reason": "外出"}, follow_redirects=False)
    assert done.status_code == 303 and "saved=1" in done.headers["location"], done.text
    page = sup.get(done.headers["location"])
    row = page.text.split(f'data-slot="{thirteen}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>0 <span" in row and "本时段单独设置" in row and 'id="slots-saved"' in page.text
    assert thirteen not in [s.isoformat() for s in core.appointments.free_slots("analyst_callback", limit=3)]
    bad = sup.post("/supervisor/appointment-slots", data={"csrf": csrf, "kind": "analyst_callback",
                                                          "start": "2026-11-25T13:10:00+08:00", "capacity": "2"})
    assert bad.status_code == 422 and "整点或半点" in bad.text
    agent = TestClient(create_app(core), raise_server_exceptions=False)
    a_csrf = page_login(agent, "ag1")
    assert agent.post("/supervisor/appointment-slots", data={"csrf": a_csrf, "kind": "analyst_callback",
                                                             "start": thirteen, "capacity": "5"}).status_code == 403
