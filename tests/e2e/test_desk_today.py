"""Issue 13: the agent's own figures today and a live callbacks list, from the desk API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import Callback
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, build

pytestmark = pytest.mark.db


def test_the_agents_day_counts_their_own_calls_only(core: App) -> None:
    world = build(core)
    now = core.clock()
    ag1, ag2 = world.staff["ag1"], world.staff["ag2"]

    def work(s) -> None:  # type: ignore[no-untyped-def]
        s.add_all([
            DeskContact(agent_id=ag1, client_id=world.mine, started_at=now - timedelta(minutes=30),
                        hung_up_at=now - timedelta(minutes=27), ended_at=now - timedelta(minutes=26),
                        disposition="appointment_booked"),
            DeskContact(agent_id=ag1, client_id=world.mine, started_at=now - timedelta(minutes=10),
                        hung_up_at=now - timedelta(minutes=9), ended_at=now - timedelta(minutes=8),
                        disposition="callback"),
            DeskContact(agent_id=ag1, client_id=world.mine, started_at=now - timedelta(days=2),
                        hung_up_at=now - timedelta(days=2) + timedelta(minutes=5), disposition="callback"),
            DeskContact(agent_id=ag2, client_id=world.theirs, started_at=now - timedelta(minutes=5),
                        disposition=""),
            Callback(owner_id=ag1, phone="+8613900000001", due_at=now + timedelta(hours=1), status="pending",
                     agent_only=True, note="下午回电", created_at=now, lead_id=world.lead, campaign_id=world.campaign),
        ])

    run_in_transaction(core.sessions, work)
    api = TestClient(create_app(core))
    token = api.post("/api/login", json={"username": "ag1", "password": PASSWORDS["ag1"]}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    day = api.get("/api/desk/today", headers=headers).json()
    # the fixed clock is a trading day's noon: the two calls of the last half hour are today's, not the old one
    assert (day["calls"], day["talk_seconds"], day["appointments"]) == (2, 240, 1)
    assert day["dispositions"] == {"appointment_booked": 1, "callback": 1}
    assert day["callbacks_due"] == 1
    cbs = api.get("/api/desk/callbacks", headers=headers).json()
    assert [(c["note"], c["overdue"]) for c in cbs] == [("下午回电", False)] and "****" in cbs[0]["phone"]
    assert cbs[0]["client_id"] == world.mine and cbs[0]["name"].startswith("测试")  # the desk opens that client
