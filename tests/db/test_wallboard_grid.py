"""The wall board's snapshot (issue 13): the per-agent grid (state, time in it, campaign, the live call, calls
today; busiest first), each viewer's cut of it (a supervisor their groups' agents, an admin all), the queue
figures (IVR hand-offs waiting and the longest wait, calls in flight by stage, today's service level) and each
campaign's abandon rate against its cap. On SQLite and PostgreSQL (``core``)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.domain.access import Actor, may_watch_agent
from callcenter.services import desk, kpis
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.handoff import HANDOFF_STEP, ROUTED_STEP
from callcenter.store.db import read_only, run_in_transaction
from callcenter.store.models.dialer import AbandonDay, Attempt, Lead
from callcenter.store.models.ivr import IvrSession, IvrStep
from tests.conftest import FixedClock
from tests.e2e.desk_world import World, build, connect_call

pytestmark = pytest.mark.db


def snapshot(core: App) -> dict[str, Any]:
    return read_only(core.sessions, lambda s: kpis.wallboard(s, core.clock(), core.settings.tz, service_level_s=20))


def ivr_call(core: App, n: int, asked: datetime, *, routed: datetime | None = None,
             ended: datetime | None = None, client_id: int | None = None) -> int:
    def work(s: Any) -> int:
        sess = IvrSession(call_id=f"ivr-{n}", channel="ivr-agi", caller=f"+86139000000{n:02d}", started_at=asked,
                          handed_off=True, ended_at=ended, end_reason="caller_hangup" if ended else "",
                          client_id=client_id)
        s.add(sess)
        s.flush()
        s.add(IvrStep(session_id=sess.id, at=asked, step=HANDOFF_STEP, detail="{}"))
        if routed is not None:
            s.add(IvrStep(session_id=sess.id, at=routed, step=ROUTED_STEP, detail=json.dumps({"staff_id": 1})))
        return int(sess.id)

    return run_in_transaction(core.sessions, work)


def test_the_grid_shows_every_signed_in_agent_busiest_first(core: App, clock: FixedClock) -> None:
    world: World = build(core)
    t0 = clock.now
    st = world.staff
    desk.set_state(core, st["ag1"], "ready")
    desk.set_state(core, st["ag2"], "paused", reason="break")
    dialer.agent_login(core, st["bo1"])  # signed in, not ready yet (the dialler's own "login" pause)
    clock.now = t0 + timedelta(seconds=30)
    connect_call(core, world)  # world's attempt reaches ag1: the desk contact, ag1 talking
    clock.now = t0 + timedelta(seconds=75)
    board = snapshot(core)

    rows = board["agent_rows"]
    assert [r["staff_id"] for r in rows] == [st["ag1"], st["ag2"], st["bo1"]]  # talking, then paused longest first
    ag1, ag2, bo1 = rows
    assert ag1 == {"staff_id": st["ag1"], "name": "ag1", "group_id": world.g1, "group": "服务一组", "state": "talking",
                   "reason": "", "state_s": 45, "campaign": "老客户回访季", "direction": "outbound", "talk_s": 45,
                   "calls_today": 1}
    assert (ag2["state"], ag2["reason"], ag2["state_s"], ag2["group"], ag2["talk_s"], ag2["direction"]) == \
        ("paused", "break", 75, "服务二组", None, "")
    assert (bo1["state"], bo1["reason"], bo1["calls_today"]) == ("paused", "", 0)  # the dialler's reason not shown
    assert board["agents"] == {"talking": 1, "paused": 2}
    assert board["connected"] == 1 and board["in_flight"] == 1  # world's call to ag1

    # ag1 hangs up and sets the disposition: wrap-up, then ready; the call is counted today, no live call
    contact_id = run_in_transaction(core.sessions, lambda s: desk.status(s, st["ag1"], clock.now).contact_id)
    clock.now = t0 + timedelta(seconds=100)
    run_in_transaction(core.sessions, lambda s: desk.hang_up_in(s, st["ag1"], contact_id, clock.now))
    board = snapshot(core)
    ag1 = next(r for r in board["agent_rows"] if r["staff_id"] == st["ag1"])
    assert (ag1["talk_s"], ag1["calls_today"]) == (None, 1)

    dialer.agent_logout(core, st["ag2"])  # signed out: off the grid
    assert st["ag2"] not in {r["staff_id"] for r in snapshot(core)["agent_rows"]}


def test_each_viewer_sees_the_agents_of_their_groups(core: App) -> None:
    world = build(core)
    st = world.staff
    for name in ("ag1", "ag2", "bo2"):
        desk.set_state(core, st[name], "ready")
    board = snapshot(core)
    sup = Actor.staff("supervisor", st["sup1"], {world.g1})
    adm = Actor.staff("admin", st["adm"])
    agent = Actor.staff("agent", st["ag1"], {world.g1})
    assert [r["name"] for r in kpis.board_for(board, sup)["agent_rows"]] == ["ag1"]
    assert kpis.board_for(board, sup)["agents"] == {"ready": 1}
    assert sorted(r["name"] for r in kpis.board_for(board, adm)["agent_rows"]) == ["ag1", "ag2", "bo2"]
    assert kpis.board_for(board, adm)["agents"] == {"ready": 3}
    assert kpis.board_for(board, agent)["agent_rows"] == []  # agents watch nobody
    # the rule: one owner (domain.access)
    assert may_watch_agent(sup, world.g1) and not may_watch_agent(sup, world.g2) and not may_watch_agent(sup, None)
    assert may_watch_agent(adm, None) and not may_watch_agent(Actor.staff("qa", 9), world.g1)


def test_queue_figures_hand_offs_calls_in_flight_and_service_level(core: App, clock: FixedClock) -> None:
    world = build(core)
    now = clock.now
    ivr_call(core, 1, now - timedelta(seconds=50))  # waiting 50 s: past the 20 s threshold
    ivr_call(core, 2, now - timedelta(seconds=8))  # waiting 8 s: undecided yet
    ivr_call(core, 3, now - timedelta(seconds=90), routed=now - timedelta(seconds=80))  # answered in 10 s
    ivr_call(core, 4, now - timedelta(seconds=200), routed=now - timedelta(seconds=160))  # answered in 40 s
    ivr_call(core, 5, now - timedelta(seconds=60), ended=now - timedelta(seconds=55))  # gave up after 5 s: not counted
    ivr_call(core, 6, now - timedelta(hours=2))  # its end never recorded: nobody on the line, but missed today
    ivr_call(core, 7, now - timedelta(days=1), routed=now - timedelta(days=1) + timedelta(seconds=5))  # yesterday

    def dial(s: Any) -> None:  # one call ringing, one answered and waiting for an agent (world's: connected)
        for n, answered in ((1, False), (2, True)):
            lead = Lead(campaign_id=world.campaign, phone=f"+8613912345670{n}", status="in_progress", extra={},
                        created_at=now, updated_at=now)
            s.add(lead)
            s.flush()
            s.add(Attempt(lead_id=lead.id, campaign_id=world.campaign, phone=lead.phone, dialled_at=now,
                          answered_at=now if answered else None))
        s.add(AbandonDay(campaign_id=world.campaign, day=date(2026, 11, 25), humans=20, abandoned=1, connected=19))

    run_in_transaction(core.sessions, dial)
    board = snapshot(core)
    assert (board["ivr_waiting"], board["ivr_longest_s"]) == (2, 50)  # 1 and 2; 6 is older than MAX_WAIT
    assert (board["ringing"], board["answered"], board["connected"], board["in_flight"]) == (1, 1, 1, 3)
    # decided today: 1 (missed), 3 (met), 4 (missed), 6 (missed); 2 undecided, 5 gave up in time, 7 yesterday
    assert board["service_level"] == {"threshold_s": 20, "offered": 4, "met": 1, "rate": 0.25}
    (camp,) = board["campaigns"]
    assert camp["abandon_today"] == pytest.approx(0.05) and camp["abandon_cap"] == pytest.approx(0.03)
    assert camp["over_cap"] is True


def test_an_empty_floor(core: App) -> None:
    board = snapshot(core)
    assert board["agent_rows"] == [] and board["agents"] == {}
    assert (board["ivr_waiting"], board["ivr_longest_s"], board["in_flight"]) == (0, None, 0)
    assert board["service_level"]["rate"] is None and board["service_level"]["offered"] == 0


def test_the_queue_by_service_group_and_each_viewers_cut_of_it(core: App, clock: FixedClock) -> None:
    """Per service group: the IVR hand-offs waiting (by the caller's client record), the longest of those waits,
    the group's agents signed in, ready and talking; a supervisor sees their groups' rows (and the callers of no
    group, without other groups' agents), an admin every row."""
    from tests.factories import make_client

    world = build(core)
    st, now = world.staff, clock.now
    other, _ = make_client(core, accounts=[(1_00, 0)], group_id=world.g2)

    def identified(ivr_id: int, client_id: int) -> None:
        run_in_transaction(core.sessions, lambda s: setattr(s.get(IvrSession, ivr_id), "client_id", client_id))

    identified(ivr_call(core, 1, now - timedelta(seconds=40)), world.mine)  # group 1, waiting 40 s
    identified(ivr_call(core, 2, now - timedelta(seconds=15)), world.mine)  # group 1, waiting 15 s
    identified(ivr_call(core, 3, now - timedelta(seconds=70)), world.theirs)  # group 2, waiting 70 s
    identified(ivr_call(core, 4, now - timedelta(seconds=90), routed=now - timedelta(seconds=60)), other)  # answered
    ivr_call(core, 5, now - timedelta(seconds=25))  # not identified: no group
    desk.set_state(core, st["ag1"], "ready")
    desk.set_state(core, st["bo1"], "ready")
    desk.set_state(core, st["ag2"], "paused", reason="meal")
    connect_call(core, world)  # ag1 talking
    board = snapshot(core)
    assert (board["ivr_waiting"], board["ivr_longest_s"]) == (4, 70)
    by = {g["group_id"]: g for g in board["groups"]}
    assert [g["group"] for g in board["groups"]] == ["服务一组", "服务二组", ""]  # by name, the no-group row last
    assert by[world.g1] == {"group_id": world.g1, "group": "服务一组", "waiting": 2, "longest_s": 40, "signed_in": 2,
                            "ready": 1, "talking": 1}
    assert by[world.g2] == {"group_id": world.g2, "group": "服务二组", "waiting": 1, "longest_s": 70, "signed_in": 1,
                            "ready": 0, "talking": 0}
    assert by[None] == {"group_id": None, "group": "", "waiting": 1, "longest_s": 25, "signed_in": 0, "ready": 0,
                        "talking": 0}

    sup = Actor.staff("supervisor", st["sup1"], {world.g1})
    adm = Actor.staff("admin", st["adm"])
    assert [g["group_id"] for g in kpis.board_for(board, sup)["groups"]] == [world.g1, None]
    assert [g["group_id"] for g in kpis.board_for(board, adm)["groups"]] == [world.g1, world.g2, None]
    assert kpis.board_for(board, Actor.staff("agent", st["ag1"], {world.g1}))["groups"] == []
    assert kpis.board_for(board, Actor.staff("supervisor", 99, set()))["groups"] == [by[None]]

    # the hand-off answered leaves its group's queue; an empty floor has no row
    run_in_transaction(core.sessions, lambda s: s.add(IvrStep(
        session_id=s.execute(select(IvrSession.id).where(IvrSession.call_id == "ivr-3")).scalar_one(), at=now,
        step=ROUTED_STEP, detail="{}")))
    by = {g["group_id"]: g for g in snapshot(core)["groups"]}
    assert (by[world.g2]["waiting"], by[world.g2]["longest_s"], by[world.g2]["signed_in"]) == (0, None, 1)


def test_the_wall_board_page_shows_the_viewers_groups_queue(core: App, clock: FixedClock) -> None:
    from fastapi.testclient import TestClient

    from callcenter.web.app import create_app
    from tests.e2e.desk_world import page_login

    world = build(core)
    now = clock.now
    for n, client in ((1, world.mine), (2, world.theirs)):
        ivr = ivr_call(core, n, now - timedelta(seconds=30 * n))
        run_in_transaction(core.sessions, lambda s, i=ivr, c=client: setattr(s.get(IvrSession, i), "client_id", c))
    c = TestClient(create_app(core))
    page_login(c, "sup1")
    html = c.get("/supervisor/wallboard").text
    assert f'<tr data-group="{world.g1}" class="waiting"><td>服务一组</td><td class="num group-waiting">1</td>' in html
    assert f'data-group="{world.g2}"' not in html and "服务二组" not in html.split('id="wb-groups"')[1].split("</table>")[0]
    assert "各服务小组排队" in html
