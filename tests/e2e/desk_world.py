"""A small brokerage for the screen tests: two service groups, their agents, a supervisor, an admin, a client
in each group, a win-back campaign with a lead and an attempt routed to agent ag1."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Staff
from callcenter.store.models.dialer import Attempt, Campaign, Lead
from tests.factories import make_client, make_group, make_staff

PASSWORDS = {"ag1": "pw-agent-1", "bo1": "pw-back-1", "ag2": "pw-agent-2", "bo2": "pw-back-2",
             "sup1": "pw-super-1", "adm": "pw-admin-1"}


@dataclass
class World:
    g1: int
    g2: int
    staff: dict[str, int]
    mine: int
    theirs: int
    campaign: int
    lead: int
    attempt: int


def build(core: App) -> World:
    g1, g2 = make_group(core, "服务一组"), make_group(core, "服务二组")
    staff = {
        "ag1": make_staff(core, "ag1", PASSWORDS["ag1"], "agent", group_id=g1),
        "bo1": make_staff(core, "bo1", PASSWORDS["bo1"], "agent", group_id=g1),
        "ag2": make_staff(core, "ag2", PASSWORDS["ag2"], "agent", group_id=g2),
        "bo2": make_staff(core, "bo2", PASSWORDS["bo2"], "agent", group_id=g2),
        "sup1": make_staff(core, "sup1", PASSWORDS["sup1"], "supervisor", supervises=[g1]),
        "adm": make_staff(core, "adm", PASSWORDS["adm"], "admin"),
    }

    def back_office(s) -> None:  # type: ignore[no-untyped-def]
        for name in ("bo1", "bo2"):
            s.get(Staff, staff[name]).back_office = True

    run_in_transaction(core.sessions, back_office)
    mine, _ = make_client(core, accounts=[(120_000_00, 0), (5_000_00, 0)], group_id=g1)
    theirs, _ = make_client(core, accounts=[(1_00, 0)], group_id=g2)
    now = core.clock()

    def dialler(s) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
        camp = Campaign(name="老客户回访季", kind="former_clients", script_id="win_back", state="running",
                        window_start=time(9), window_end=time(20), retry_delays={}, created_at=now, updated_at=now)
        s.add(camp)
        s.flush()
        lead = Lead(campaign_id=camp.id, client_id=mine, name="", phone="+8613900000001", status="in_progress",
                    extra={}, created_at=now, updated_at=now)
        s.add(lead)
        s.flush()
        att = Attempt(lead_id=lead.id, campaign_id=camp.id, attempt_no=2, agent_id=staff["ag1"],
                      phone=lead.phone, dialled_at=now, answered_at=now, connected_at=now, outcome="human")
        s.add(att)
        s.flush()
        return camp.id, lead.id, att.id

    campaign, lead, attempt = run_in_transaction(core.sessions, dialler)
    return World(g1, g2, staff, mine, theirs, campaign, lead, attempt)


def call_event(world: World) -> dict[str, object]:
    return {"type": "call_connected", "attempt_id": world.attempt, "client_id": world.mine, "lead_id": world.lead,
            "campaign_id": world.campaign, "attempt_no": 2}


def connect_call(core: App, world: World) -> dict[str, object]:
    """What the dialler does when world's attempt reaches ag1: the desk contact opened in the connecting
    transaction, then the ``contact_opened`` event (its payload, to publish on the agent's topic)."""
    from callcenter.domain.events import ContactOpened
    from callcenter.services import desk

    ag1 = world.staff["ag1"]
    facts = desk.ContactFacts(client_id=world.mine, attempt_id=world.attempt, lead_id=world.lead,
                              campaign_id=world.campaign, attempt_no=2)
    contact_id = run_in_transaction(core.sessions, lambda s: desk.open_contact(s, ag1, facts, core.clock()))
    return ContactOpened(staff_id=ag1, contact_id=contact_id, client_id=world.mine, attempt_id=world.attempt,
                         campaign_id=world.campaign).to_payload()


def page_login(client: TestClient, user: str) -> str:
    """Log in through the HTML form (cookie session); returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": user, "password": PASSWORDS[user], "csrf": token},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get(r.headers["location"])
    assert home.status_code == 200
    return re.search(r'name="csrf-token" content="([^"]+)"', home.text).group(1)  # type: ignore[union-attr]
