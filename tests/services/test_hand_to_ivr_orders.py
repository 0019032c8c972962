"""The card's "hand to the IVR order menu" (agents never place orders for a client): the route writes an
``transfer_ivr`` call control to the ``orders`` entry for the dialler that owns the call; that dialler's call core
sends the caller's channel back to the hotline at the order menu (the simulated PBX; the AMI adapter's Setvar +
Redirect is in tests/adapters/test_ami_send_to_ivr.py, proven live in tests/live/test_live_handoff.py) and the agent goes to wrap-up."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.call_commands import claim
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models import CallCommand
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.ivr import IvrSession
from callcenter.ports import channel_variables as V
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login
from tests.services.test_handoff_queue import Time, contacts, engine_on, hand_off, ready, state_of
from tests.services.test_integration_desk_dialer import drive

pytestmark = pytest.mark.db


@pytest.fixture
def time_(core: App) -> Time:
    return Time(core)


@pytest.fixture
def world(core: App, time_: Time) -> World:
    return build(core)


async def test_a_handed_off_client_goes_back_to_the_order_menu(core: App, world: World, time_: Time) -> None:
    core.bus.bind_loop(asyncio.get_running_loop())
    ag1, ag2 = world.staff["ag1"], world.staff["ag2"]
    ivr_id = hand_off(core, "agi-trade", world.mine)
    ready(core, ag1)
    engine, pbx = engine_on(core, time_.vclock, "e1", auto_wrap_up_s=None)
    await pbx.start()
    await drive(engine, pbx, time_.vclock, 5, until=lambda: bool(contacts(core)))
    with transaction(core.sessions) as s:
        contact_id = s.scalars(select(DeskContact.id)).one()
    web = TestClient(create_app(core), raise_server_exceptions=False)
    h = {"X-CSRF-Token": page_login(web, "ag1")}
    other = TestClient(create_app(core), raise_server_exceptions=False)
    assert other.post(f"/api/desk/contacts/{contact_id}/ivr-orders",
                      headers={"X-CSRF-Token": page_login(other, "ag2")}).status_code == 404  # not their call
    card = web.get(f"/agent/contacts/{contact_id}/card")
    assert card.status_code == 200 and 'id="to-ivr-orders"' in card.text and "转电话委托菜单" in card.text
    assert web.post(f"/api/desk/contacts/{contact_id}/ivr-orders", headers=h).status_code == 200
    with transaction(core.sessions) as s:
        cmd = s.scalars(select(CallCommand)).one()
        assert (cmd.kind, json.loads(cmd.args), cmd.attempt_id, cmd.dialer_id, cmd.state) == (
            "transfer_ivr", {"menu": "orders"}, None, "e1", "pending")  # the controls' "back to the IVR"
    (claimed,) = run_in_transaction(core.sessions, lambda s: claim(s, "e1", core.clock()))
    ok, _ = await engine.command_requested(claimed)
    assert ok
    call_id = V.handoff_call_id(ivr_id)
    assert pbx.ivr_returns == [(call_id, "orders")] and call_id not in pbx.calls
    await drive(engine, pbx, time_.vclock, 1)
    assert state_of(core, ag1) == "wrap_up" and call_id not in engine.core.inbound
    with transaction(core.sessions) as s:
        assert s.get(DeskContact, contact_id).hung_up_at is not None  # the call left the agent
        ivr = s.get(IvrSession, ivr_id)
        assert ivr is not None and ivr.ended_at is not None  # that IVR session is over; the caller starts a new one
    assert web.post(f"/api/desk/contacts/{contact_id}/ivr-orders", headers=h).status_code == 409  # over already
    again, reason = await engine.command_requested(claimed)
    assert (again, reason) == (False, "no_live_call")  # the call is no longer ours: nothing sent twice
    assert len(pbx.ivr_returns) == 1
