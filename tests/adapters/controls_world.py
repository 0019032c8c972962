"""The call-controls scenario of tests/live/test_live_controls.py and of its replay (tests/adapters/
test_live_captures.py), built and driven the same way on a fresh database, so the ids in the capture (staff 1, 2,
3: rooms ``agent-1``, ``agent-2``, phones ``Local/<Hz>-<id>@sim-tone``) are the replay's too.

One outbound call: A takes it; hold, resume; a three-way conference with B, B leaves; a transfer to B; a
supervisor whispers to B, barges in, listens. ``pause(name)`` is called at each stretch (live: the test listens
there); ``monitor_up(up)`` after each monitor starts and stops (live: until Asterisk shows it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time as dtime
from itertools import count

from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.call_commands import ClaimedCommand
from callcenter.services.dialer.campaigns import agent_login, agent_ready, assign_campaign, create_campaign, start_campaign
from callcenter.services.dialer.engine import DialerEngine
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.store.db import transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession
from tests.factories import make_staff

CUSTOMER, A, B, SUPERVISOR = 440, 700, 1100, 1600  # each party's tone (Hz)
NUMBER = "+8613900000016"
DIAL_TEMPLATE = f"Local/{CUSTOMER}-{{digits}}@sim-tone"
STRETCHES = ("connected", "hold", "resumed", "conference", "left", "transferred", "whisper", "barge", "listen")


def tone_phone(hz: int, staff_id: int) -> str:
    return f"Local/{hz}-{staff_id}@sim-tone"


@dataclass(frozen=True)
class ControlsWorld:
    campaign_id: int
    a: int
    b: int
    supervisor: int


def build_controls_world(core: App) -> ControlsWorld:
    cid = create_campaign(core, name="控制", kind="cold_leads", script_id="cold_call", window_start=dtime(0),
                          window_end=dtime(23, 59, 59), days="every", amd_policy="off")
    a = make_staff(core, "ctl-a", "pw-agent-123456", "agent")
    b = make_staff(core, "ctl-b", "pw-agent-123456", "agent")
    sup = make_staff(core, "ctl-sup", "pw-super-123456", "supervisor")
    assign_campaign(core, cid, staff_ids=[a, b])
    return ControlsWorld(cid, a, b, sup)


def state_of(core: App, staff_id: int) -> str | None:
    with transaction(core.sessions) as s:
        return s.scalars(select(AgentSession.state).where(AgentSession.staff_id == staff_id,
                                                          AgentSession.ended_at.is_(None))).first()


def contact_of(core: App, staff_id: int) -> DeskContact:
    with transaction(core.sessions) as s:
        row = s.scalars(select(DeskContact).where(DeskContact.agent_id == staff_id)
                        .order_by(DeskContact.id.desc())).first()
        assert row is not None, f"no desk contact of agent {staff_id}"
        s.expunge(row)
        return row


async def until(what: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def run_controls(core: App, engine: DialerEngine, world: ControlsWorld, wall: Callable[[], datetime], *,
                       pause: Callable[[str], Awaitable[None]],
                       monitor_up: Callable[[bool], Awaitable[None]]) -> None:
    a, b, sup = world.a, world.b, world.supervisor
    seq = count(1)

    async def control(kind: str, contact: DeskContact, by: int, **args: object) -> None:
        ok, reason = await engine.command_requested(ClaimedCommand(next(seq), kind, contact.id, contact.attempt_id,
                                                                   by, wall(), dict(args)))
        assert ok, (kind, reason)

    start_campaign(core, world.campaign_id)
    agent_login(core, a, campaign_id=world.campaign_id, phone=tone_phone(A, a))
    agent_ready(core, a)
    await until(lambda: a in engine.core.phones)
    add_leads(core, world.campaign_id, [LeadRow(0, NUMBER, "客户")])  # A alone is ready: the call is A's
    await until(lambda: state_of(core, a) == "talking")
    contact = contact_of(core, a)
    agent_login(core, b, campaign_id=world.campaign_id, phone=tone_phone(B, b))
    await until(lambda: b in engine.core.phones)
    await pause("connected")
    await control("hold", contact, a)
    await pause("hold")
    await control("resume", contact, a)
    await pause("resumed")
    agent_ready(core, b)
    await until(lambda: state_of(core, b) == "ready")
    await control("conference", contact, a, target=b)
    await until(lambda: state_of(core, b) == "talking")
    await pause("conference")
    await control("conference_leave", contact, b)
    await until(lambda: state_of(core, b) == "wrap_up")
    await pause("left")
    agent_ready(core, b)
    await until(lambda: state_of(core, b) == "ready")
    await control("transfer", contact, a, target=b)
    await until(lambda: state_of(core, b) == "talking" and state_of(core, a) == "wrap_up")
    await pause("transferred")
    b_contact = contact_of(core, b)
    assert b_contact.attempt_id == contact.attempt_id  # the same call, now B's
    for mode in ("whisper", "barge", "listen"):
        await control(mode, b_contact, sup, phone=tone_phone(SUPERVISOR, sup))
        await monitor_up(True)
        await pause(mode)
        await control("monitor_stop", b_contact, sup)
        await monitor_up(False)
